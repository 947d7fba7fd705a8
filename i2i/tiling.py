"""Tiled translation of images too large to translate whole: the one place that decides whether and
how an image is tiled (:func:`plan_tiles`), and the streaming loop that translates it tile by tile
(:func:`tiled_rows`).

The image is reflect-padded as the whole-image path pads it (:class:`PaddedSource`) and cut into
tiles of at most ``tile`` pixels a side that overlap by at least ``overlap``; tile sides and starts
are multiples of the generator's size multiple, so its strided layers meet every tile in the phase
they meet the whole image (tiles cut anywhere else gave 19 dB against the whole image on a tiny
ResNet, whatever the statistics), and as few tiles as cover a side are spread evenly over it
(:meth:`TilePlan.axis`; the same 4000x3000 image went from 47% to about 80% of the whole-image
speed). Tiles are blended with a raised-cosine ramp across the middle half of every overlap; the
outer quarter, the pixels that saw least of their surroundings, gets no weight (:func:`ramps`).

Generators whose layers normalise by their input's own statistics (instance norm) translate every
tile with the whole image's statistics (:mod:`i2i.nets.norm_stats`), from one of three sources:

- the image itself, where one pass over it fits ``--max-memory``: exact (tiled output 55-60 dB from
  the whole-image output on ``tools/bench_tiles.py``'s 2048x1536 images, no seam);
- otherwise the largest thumbnail that fits, after URST (Chen et al., AAAI 2022): cheap, but only
  an estimate (21-34 dB from the exact output there; a sample of full-resolution tiles measured
  24-39 dB and was not kept);
- with ``exact_stats``, :func:`exact_stats`: exact, one tile in memory, about ten times the work.

Rows of output are yielded top to bottom as soon as no later tile touches them, so memory holds one
band of tiles, never the image; the file side (:mod:`i2i.data.regions`) reads regions and writes
rows. A 12000x9000 photo through resnet_9blocks (bf16, 2 cores, ``--max-memory 2G``) peaked at 2.6 GB
at 91% of the whole-image path's pixels per second.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Protocol

from .errors import UsageError

if TYPE_CHECKING:
    import torch

    from .translator import Translator

log = logging.getLogger(__name__)

AUTO_TILE = 1024  # the tile --tile auto uses where memory allows (see tools/bench_tiles.py)
DEFAULT_OVERLAP = 64


class RegionSource(Protocol):
    """An image read by regions (:mod:`i2i.data.regions` has the file and tensor ones)."""

    height: int
    width: int
    channels: int

    def read(self, left: int, top: int, width: int, height: int) -> "torch.Tensor":
        """C x height x width float32 in [-1, 1], the network input values of that region."""

    def thumbnail(self, width: int, height: int) -> "torch.Tensor":
        """C x height x width float32 in [-1, 1], the whole image reduced."""


# --- options ---------------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_memory(text: str) -> int:
    """``"2G"``, ``"512MB"``, ``"1.5GiB"`` or a plain number of bytes -> bytes (powers of 1024)."""
    m = _SIZE.match(str(text))
    if not m:
        raise UsageError(f"--max-memory {text!r}: give a size such as 2G, 512M or 1.5GB")
    n = int(float(m.group(1)) * 1024 ** "_kmgt".index((m.group(2) or "_").lower()))
    if n < 1024**2:
        raise UsageError(f"--max-memory {text!r} is less than 1M; give a size such as 2G, 512M or 1.5GB")
    return n


def parse_tile(text: str | int | None) -> int | None:
    """``--tile``: ``"auto"`` (None) or a tile side in pixels."""
    if text is None or str(text).strip().lower() == "auto":
        return None
    try:
        n = int(str(text))
    except ValueError:
        raise UsageError(f"--tile {text!r}: give auto or a tile side in pixels, such as 1024") from None
    if n < 1:
        raise UsageError(f"--tile {n}: give auto or a tile side in pixels, such as 1024")
    return n


@functools.lru_cache(maxsize=1)
def machine_memory() -> int:
    """Bytes of memory this process may use: the machine's RAM, or its cgroup's limit if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def default_max_memory(device: "torch.device | None" = None) -> int:
    """``--max-memory``'s default: a quarter of the machine's memory (of a GPU's free memory, half)."""
    if device is not None and device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return machine_memory() // 4


# --- the generator's needs ---------------------------------------------------------------------------

def receptive_field(net) -> int:
    """The side, in input pixels, of the region that one output pixel of ``net`` depends on: the
    convolutions' spans chained in the order they run (skip connections add nothing; a U-Net's
    deepest path is its down path and then its up path). resnet_9blocks: 169; unet_256: 1277."""
    import torch.nn as nn

    from .nets.antialias import Downsample, Upsample

    span, jump = 1.0, 1.0
    for m in net.modules():
        if isinstance(m, nn.ConvTranspose2d) or isinstance(m, Upsample):
            k, s = (m.kernel_size[0], m.stride[0]) if isinstance(m, nn.ConvTranspose2d) else (m.filt_size, m.stride)
            span += (math.ceil(k / s) - 1) * jump
            jump /= s
        elif isinstance(m, (nn.Conv2d, Downsample)):
            k, s, d = ((m.kernel_size[0], m.stride[0], m.dilation[0]) if isinstance(m, nn.Conv2d)
                       else (m.filt_size, m.stride, 1))
            span += (k - 1) * d * jump
            jump *= s
    return int(math.ceil(span))


def bytes_per_pixel(translator: "Translator") -> float:
    """Peak memory of translating an image whole, per input pixel, from one forward pass of a small
    probe image: the largest, over the layers as they run, of a layer's input and output plus the
    inputs that enclosing blocks hold for their skip connections (a ResNet block's, every U-Net
    level's). Activations grow with the image; the weights are not counted. Cached on the
    translator; an estimate that errs high (an in-place layer's output is counted as new)."""
    cached = getattr(translator, "_bytes_per_pixel", None)
    if cached is not None:
        return cached
    import torch
    import torch.nn as nn

    def size(t) -> int:
        t = t[0] if isinstance(t, (tuple, list)) else t
        return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0

    held, peak, stack = [0], [0], []
    hooks = []
    for m in translator.net.modules():
        leaf = not list(m.children())
        holds = not leaf and type(m).forward is not nn.Sequential.forward

        def pre(mod, inputs, holds=holds):
            stack.append(size(inputs) if holds else 0)
            held[0] += stack[-1]

        def post(mod, inputs, output, leaf=leaf):
            held[0] -= stack.pop()
            if leaf:
                peak[0] = max(peak[0], held[0] + size(inputs) + size(output))

        hooks += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    side = max(translator.min_size, -(-128 // translator.multiple) * translator.multiple)
    try:
        translator(torch.zeros(1, translator.in_channels, side, side))
    finally:
        for h in hooks:
            h.remove()
    translator._bytes_per_pixel = max(peak[0], 1) / (side * side)
    return translator._bytes_per_pixel


@dataclass(frozen=True)
class TilePlan:
    """How one image is tiled: tiles of at most ``tile`` pixels a side overlapping by at least
    ``overlap``, and the whole image's normalisation statistics measured on a thumbnail of at most
    ``thumbnail`` pixels (None: the image itself, which makes them exact). Tile sides are multiples
    of ``multiple`` and at least ``smallest``."""

    tile: int
    overlap: int
    thumbnail: int | None = None
    multiple: int = 1
    smallest: int = 1
    exact_stats: bool = False  # where the image does not fit: exact streaming statistics, not a thumbnail's

    def axis(self, length: int) -> tuple[int, list[int]]:
        """The tiles along a side of ``length`` pixels (a multiple of :attr:`multiple`: the image
        padded as the generator takes it whole): their size and where they begin, both multiples of
        :attr:`multiple`, so each tile meets the generator's strided layers in the phase the whole
        image does. As few tiles as cover the side with ``overlap``, each shrunk to the least size
        that still does and spread evenly, so no tile is spent on a sliver at the end (4000 pixels in
        tiles of 1024 overlapping by 64: five of 852, not five of 1024)."""
        m = self.multiple
        if length <= self.tile:
            return length, [0]
        n = max(2, -(-(length - self.overlap) // (self.tile - self.overlap)))
        size = -(-(length + (n - 1) * self.overlap) // n)
        smallest = -(-self.smallest // m) * m
        size = min(self.tile, max(smallest, -(-size // m) * m), length)
        if size >= length:
            return length, [0]
        units, step = (length - size) // m, max(1, (size - self.overlap) // m)  # in multiples of m
        gaps = max(1, -(-units // step))
        starts = [(i * units // gaps) * m for i in range(gaps + 1)]
        return size, sorted(set(starts) | {length - size})  # the last ends at the end (a side not a multiple)


def min_tile(translator: "Translator") -> int:
    """The smallest tile ``translator``'s generator can be tiled with: a multiple of its size
    multiple, at least its smallest size and its receptive field (smaller tiles would translate
    every pixel from a cut-off view of its surroundings)."""
    m = translator.multiple
    need = max(translator.min_size, receptive_field(translator.net), m)
    return -(-need // m) * m


def default_overlap(translator: "Translator", tile: int) -> int:
    """The overlap when none is given: :data:`DEFAULT_OVERLAP`, or as much as a small tile allows."""
    return max(0, min(DEFAULT_OVERLAP, tile // 2, tile - translator.multiple))


def check_overlap(overlap: int | None) -> None:
    """Refuse a negative ``--overlap`` (None, the default, is fine)."""
    if overlap is not None and overlap < 0:
        raise UsageError(f"--overlap {overlap}: give 0 or more pixels")


def check_tiling(translator: "Translator", tile: int, overlap: int) -> None:
    """Refuse a tile or overlap that cannot work with this generator: a :class:`UsageError` naming
    the smallest tile (for the overlap given) or the largest overlap (for the tile given) that
    would. A tile must be a multiple of the generator's multiple and at least :func:`min_tile`; the
    overlap at most half the tile, and leave a step of one multiple."""
    m = translator.multiple
    check_overlap(overlap)

    def up(n: int) -> int:
        return -(-n // m) * m

    good = max(min_tile(translator), up(2 * overlap), up(overlap + m), up(tile))
    if tile < min_tile(translator):
        raise UsageError(f"--tile {tile} is too small for this generator ({translator.spec.get('name', 'it')} "
                         f"sees {receptive_field(translator.net)} pixels around each output pixel and takes "
                         f"multiples of {m}); give --tile {good} or more")
    if tile % m:
        raise UsageError(f"--tile {tile} is not a multiple of {m}, which this generator needs; give --tile {good}")
    if 2 * overlap > tile or overlap > tile - m:
        raise UsageError(f"--overlap {overlap} is too much for tiles of {tile} pixels (at most half the tile, "
                         f"leaving a step of {m}); give --overlap {min(tile // 2, tile - m)} or less")


def plan_tiles(translator: "Translator", width: int, height: int, tile: int | None, overlap: int | None,
               max_memory: int | None = None, exact_stats: bool = False) -> TilePlan | None:
    """The one decision of whether and how to tile an image of ``width`` x ``height``: None to
    translate it whole (as ever), else a :class:`TilePlan`.

    ``tile=None`` (``--tile auto``) tiles only an image whose whole translation would need more
    than ``max_memory`` bytes (default :func:`default_max_memory`), with tiles of :data:`AUTO_TILE`
    (or the largest multiple that fits the budget, but never below :func:`min_tile`). A given
    ``tile`` tiles every image larger than one tile. Whole-image statistics come from the image
    itself where it fits the budget (exact), else from the largest thumbnail that fits (an estimate),
    or with ``exact_stats`` from :func:`exact_stats` (exact, about ten times the work). Raises :class:`UsageError`
    for a tile or overlap the generator cannot take (:func:`check_tiling`).
    """
    budget = max_memory or default_max_memory(translator.device)
    m = translator.multiple
    padded = translator.padded_side(height) * translator.padded_side(width)
    bpp = bytes_per_pixel(translator)
    if tile is None:
        if padded * bpp <= budget:
            return None
        fits = int(math.sqrt(budget / bpp)) // m * m
        tile = max(min(AUTO_TILE, fits), min_tile(translator))
        overlap = default_overlap(translator, tile) if overlap is None else min(overlap, tile // 2, tile - m)
        if tile * tile * bpp > budget:
            log.warning("tiles of %d pixels (the smallest this generator takes) need about %.0f MB, over "
                        "--max-memory %.0f MB", tile, tile * tile * bpp / 2**20, budget / 2**20)
    else:
        overlap = default_overlap(translator, tile) if overlap is None else overlap
        check_tiling(translator, tile, overlap)
    if height <= tile and width <= tile:
        return None
    thumbnail = None if padded * bpp <= budget else max(int(budget / bpp), tile * tile)
    return TilePlan(tile, overlap, thumbnail, m, min_tile(translator), exact_stats)


# --- blending ------------------------------------------------------------------------------------------

def ramps(starts: list[int], size: int, length: int) -> "list[torch.Tensor]":
    """Each tile's blending weights along one side (float32, ``size`` long). Across its overlap of L
    pixels with a neighbour, a tile gives its outer L/4 pixels (those that saw least of their
    surroundings) no weight, then rises as ``sin^2`` over the middle L/2 where the neighbour falls as
    ``cos^2``; 1 elsewhere. The weights of the tiles covering a pixel sum to 1 wherever overlaps do
    not meet, and are never all 0."""
    import torch

    pos = torch.arange(size, dtype=torch.float64) + 0.5

    def rise(dist: torch.Tensor, overlap: int) -> torch.Tensor:
        margin = overlap // 4
        ramp = overlap - 2 * margin
        t = ((dist - margin) / max(ramp, 1)).clamp(0, 1)
        return torch.sin(math.pi / 2 * t) ** 2

    out = []
    for i, s in enumerate(starts):
        w = torch.ones(size, dtype=torch.float64)
        if i > 0:
            w *= rise(pos, starts[i - 1] + size - s)
        if i + 1 < len(starts):
            w *= rise(size - pos, s + size - starts[i + 1])
        out.append(w.float())
    return out


def weight_sum(starts: list[int], weights: "list[torch.Tensor]", length: int) -> "torch.Tensor":
    import torch

    total = torch.zeros(length)
    for s, w in zip(starts, weights):
        total[s: s + len(w)] += w
    return total


# --- translation ---------------------------------------------------------------------------------------

def thumbnail_stats(translator: "Translator", source: RegionSource, pixels: int | None = None):
    """The whole image's normalisation statistics (:mod:`i2i.nets.norm_stats`), measured on the
    image itself or, if it has more than ``pixels`` pixels, on a thumbnail of about that many; None
    if the generator has no layer that needs them."""
    from .nets.norm_stats import record_norm_stats, self_normalising

    if not self_normalising(translator.net):
        return None
    scale = 1.0 if pixels is None else min(1.0, math.sqrt(pixels / (source.height * source.width)))
    h, w = max(1, int(source.height * scale)), max(1, int(source.width * scale))
    if scale < 1:
        log.info("whole-image statistics estimated on a %dx%d thumbnail of the %dx%d image, which is too large "
                 "for one statistics pass within --max-memory (--exact-stats measures them exactly, at about "
                 "ten times the work)", w, h, source.width, source.height)
    thumb = source.thumbnail(w, h)
    with record_norm_stats(translator.net) as stats:
        translator(thumb[None])
    return dict(stats)


def tiled_rows(translator: "Translator", source: RegionSource, plan: TilePlan,
               progress: Callable[[int, int], None] | None = None, stats=None) -> Iterator[tuple[int, "torch.Tensor"]]:
    """Translate ``source`` tile by tile and yield its output as ``(top, rows)`` blocks from the top
    down: ``rows`` is C' x h x W float32 in [-1, 1], final. Memory holds one row of tiles and one
    band of output rows. ``stats``: the normalisation statistics to use (default: measured on a
    thumbnail, :func:`thumbnail_stats`). ``progress(done, total)`` counts tiles."""
    import contextlib
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from .nets.norm_stats import fixed_norm_stats

    if stats is None and plan.exact_stats and plan.thumbnail is not None:
        stats = exact_stats(translator, source, plan, progress)
    elif stats is None:
        stats = thumbnail_stats(translator, source, plan.thumbnail)
    image = source
    source = PaddedSource(source, translator)
    H, W = source.height, source.width
    (th, ys), (tw, xs) = plan.axis(H), plan.axis(W)
    log.info("%dx%d in %d tiles of %dx%d pixels", image.width, image.height, len(ys) * len(xs), tw, th)
    wys, wxs = ramps(ys, th, H), ramps(xs, tw, W)
    sum_y, sum_x = weight_sum(ys, wys, H), weight_sum(xs, wxs, W)
    fixed = fixed_norm_stats(translator.net, stats) if stats else contextlib.nullcontext()
    total, done = len(ys) * len(xs), 0
    if progress:
        progress(0, total)
    band = None
    band_top = 0
    with fixed, ThreadPoolExecutor(max_workers=1, thread_name_prefix="i2i-tiles") as reader:
        order = [(y, x) for y in ys for x in xs]
        ahead = reader.submit(source.read, order[0][1], order[0][0], tw, th)
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                tile = ahead.result()
                k = i * len(xs) + j + 1
                if k < len(order):
                    ahead = reader.submit(source.read, order[k][1], order[k][0], tw, th)
                out = translator(tile[None])[0]
                if band is None:
                    band = torch.zeros(out.shape[0], th, W)
                weight = wys[i][:, None] * wxs[j][None, :]
                band[:, y - band_top: y - band_top + th, x: x + tw] += out * weight
                done += 1
                if progress:
                    progress(done, total)
            final = ys[i + 1] if i + 1 < len(ys) else H
            n = final - band_top
            first, last = max(band_top, source.top), min(final, source.top + image.height)
            if last > first:  # the rows of the image itself, without the padding
                rows = band[:, first - band_top: last - band_top, source.left: source.left + image.width]
                norm = sum_y[first:last, None] * sum_x[None, source.left: source.left + image.width]
                yield first - source.top, rows / norm
            keep = band[:, n:].clone()
            band.zero_()
            band[:, : keep.shape[1]] = keep
            band_top = final


class _Reached(Exception):
    """Raised from a hook to stop a forward pass at the layer whose input was wanted."""


def _owned(starts: list[int], size: int, length: int, multiple: int) -> list[tuple[int, int]]:
    """The part of each tile (in its own coordinates) that it alone counts: up to the middle of each
    overlap with a neighbour, rounded to the generator's multiple so the parts also tile its
    downsampled layers exactly."""
    bounds = [0] + [(starts[i] + starts[i - 1] + size) // 2 // multiple * multiple
                    for i in range(1, len(starts))] + [length]
    return [(bounds[i] - s, bounds[i + 1] - s) for i, s in enumerate(starts)]


def exact_stats(translator: "Translator", source: RegionSource, plan: TilePlan,
                progress: Callable[[int, int], None] | None = None):
    """The whole image's normalisation statistics at full resolution, holding one tile in memory:
    one pass over the tiles per self-normalising layer, in the order they run; pass k runs each tile
    up to layer k (the layers before it normalised with the statistics already found), sums that
    layer's input over the part of the tile that is the tile's own, and stops. Each pass costs a
    forward pass up to that layer, about ten whole forward passes in all for resnet_9blocks.
    Pixels near a tile's edge see less than their whole receptive field, so the result matches the
    whole image's to the accuracy of tiling itself (``tools/bench_tiles.py``)."""
    import torch

    from .nets.norm_stats import channel_sums, fixed_norm_stats, moments, self_normalising

    layers = self_normalising(translator.net)
    if not layers:
        return None
    order: list[str] = []
    hooks = [m.register_forward_pre_hook(lambda mod, inp, name=name: order.append(name)) for name, m in layers.items()]
    try:
        side = max(translator.min_size, translator.multiple)
        translator(torch.zeros(1, translator.in_channels, side, side))
    finally:
        for h in hooks:
            h.remove()
    order = list(dict.fromkeys(order))
    padded = PaddedSource(source, translator)
    (th, ys), (tw, xs) = plan.axis(padded.height), plan.axis(padded.width)
    own_y, own_x = _owned(ys, th, padded.height, plan.multiple), _owned(xs, tw, padded.width, plan.multiple)
    placeholder = {name: (torch.zeros(m.num_features), torch.ones(m.num_features)) for name, m in layers.items()}
    found: dict = {}
    total, done = len(order) * len(ys) * len(xs), 0
    for name in order:
        sums = torch.zeros(3, layers[name].num_features, dtype=torch.float64)
        box = {}

        def hook(module, inputs):
            x = inputs[0]
            fy, fx = x.shape[2] / th, x.shape[3] / tw
            (a, b), (c, d) = box["y"], box["x"]
            sums.add_(channel_sums(x[:1, :, round(a * fy): round(b * fy), round(c * fx): round(d * fx)]))
            raise _Reached

        handle = layers[name].register_forward_pre_hook(hook)
        try:
            with fixed_norm_stats(translator.net, {**placeholder, **found}):
                for i, y in enumerate(ys):
                    for j, x in enumerate(xs):
                        box["y"], box["x"] = own_y[i], own_x[j]
                        try:
                            translator(padded.read(x, y, tw, th)[None])
                        except _Reached:
                            pass
                        done += 1
                        if progress:
                            progress(done, total)
        finally:
            handle.remove()
        found[name] = moments(sums)
    return found


class PaddedSource:
    """``source`` reflect-padded as :class:`~i2i.translator.Translator` pads an image it takes whole
    (up to the generator's multiple and smallest size, centred), read by regions in padded
    coordinates: tiles of the padded image translate as the padded whole image does."""

    def __init__(self, source: RegionSource, translator: "Translator"):
        self.source = source
        self.height, self.width = translator.padded_side(source.height), translator.padded_side(source.width)
        self.top, self.left = (self.height - source.height) // 2, (self.width - source.width) // 2

    def read(self, left: int, top: int, width: int, height: int) -> "torch.Tensor":
        from .translator import pad_reflect

        y0, x0 = max(top - self.top, 0), max(left - self.left, 0)
        y1 = min(top + height - self.top, self.source.height)
        x1 = min(left + width - self.left, self.source.width)
        part = self.source.read(x0, y0, x1 - x0, y1 - y0)
        before_y, before_x = y0 - (top - self.top), x0 - (left - self.left)
        return pad_reflect(part, before_x, width - before_x - (x1 - x0), before_y, height - before_y - (y1 - y0))


def translate_tensor(translator: "Translator", x: "torch.Tensor", plan: TilePlan,
                     progress: Callable[[int, int], None] | None = None) -> "torch.Tensor":
    """Tiled translation of one C x H x W tensor in [-1, 1] held in memory (the Python API's path):
    C' x H x W float32 in [-1, 1]."""
    import torch

    from .data.regions import TensorSource

    parts = [rows for _, rows in tiled_rows(translator, TensorSource(x), plan, progress)]
    return torch.cat(parts, dim=1)

