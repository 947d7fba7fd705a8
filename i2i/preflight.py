"""Refuse training options that cannot work, before any work: run the shapes of the first steps
through the mode's networks on the meta device.

Whether a step can run depends on the images' sizes after ``--preprocess`` (and ``--load-size``,
``--crop-size``), on the networks' depth (``--net-g``, ``--net-d``, ``--n-layers-d``), their norm,
the batch size and the channels. Instead of a rule per combination, :func:`check_training` builds
the mode itself on the ``meta`` device (shapes without memory or arithmetic) and runs one training
step for every distinct input size the data can produce, at the batch size of a full batch and of
the last, partial batch of an epoch. A step that fails becomes a :class:`~i2i.errors.UsageError`
naming the network, the size and the options to change, with changes that were checked the same way
to work.

Which sizes: every training image's upright size (the paired dataset keeps them from its scan; the
unpaired folders' headers are read here), mapped through
:meth:`~i2i.data.transforms.Augment.output_size`. A network that takes an image takes any larger one
(convolution, padding and norm layers only ever need a minimum size, and sizes are multiples of the
generator's), so the smallest sizes stand for the rest: the sizes not larger in both dimensions
than another one. For unpaired modes, where A and B differ, one step also pairs differing sizes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import traceback
from pathlib import Path

import torch

from .errors import UsageError, first_line

log = logging.getLogger(__name__)

Size = tuple[int, int]  # (height, width)


@dataclasses.dataclass
class Failure:
    """Why the first steps cannot run: ``kind`` "mixed" (a batch of images of different sizes),
    "build" (the networks cannot be built) or "step" (a step raised); ``net`` the failing network's
    name in the mode (None: outside them); ``sizes`` the (height, width) of the A and B tensors and
    ``batch`` the batch size of the step that failed."""

    kind: str
    message: str
    net: str | None = None
    sizes: tuple[Size, Size] | None = None
    batch: int = 1


def check_training(cfg, dataset, world_size: int = 1) -> None:
    """Raise :class:`~i2i.errors.UsageError` when a training step of ``cfg`` on ``dataset`` would fail.

    ``dataset`` is what ``make_dataset(cfg)`` returned (its images already scanned); ``world_size``
    the number of processes sharing each epoch. Nothing is allocated (meta tensors) and the random
    streams are left as they were, so a run that passes trains exactly as it would have. Takes
    about 0.1 to 1 s per distinct smallest input size.
    """
    state = torch.get_rng_state(), random.getstate()
    try:
        raw = _raw_sizes(cfg, dataset)
        per_rank = math.ceil(len(dataset) / world_size)
        failure = _first_failure(cfg, raw, per_rank)
        if failure is None:
            return
        fixes = _fixes(cfg, raw, per_rank, failure)
    finally:  # building networks (even on meta) and image pools draw from the global streams
        torch.set_rng_state(state[0])
        random.setstate(state[1])
    raise UsageError(_message(cfg, failure, raw, fixes))


# --- the sizes the data gives ------------------------------------------------------------------------

def _raw_sizes(cfg, dataset) -> tuple[dict, dict | None]:
    """{upright (width, height): an example file} of the A images and of the B images (None: B takes
    A's size, as in paired data, or the size is fixed by the mode)."""
    from .data.images import upright_size

    def read(files) -> dict:
        sizes: dict = {}
        for f in files:
            try:
                sizes.setdefault(upright_size(f), f)
            except Exception:  # noqa: BLE001  (a file gone bad is skipped by the loader; not ours to judge)
                continue
        return sizes

    task = _task(cfg)
    if task == "paired":
        known, sizes = getattr(dataset, "sizes", {}), {}
        for pa, pb in dataset.items:  # the items left for training (--val-fraction holds some out)
            size = known.get(pa)
            if size is None:
                try:
                    w, h = upright_size(pa)
                except Exception:  # noqa: BLE001
                    continue
                size = (w // 2, h) if pb is None else (w, h)
            sizes.setdefault(size, pa)
        return sizes, None
    if task == "unpaired":
        return read(dataset.files_a), read(dataset.files_b)
    return {(cfg.image_size, cfg.image_size): None}, None


def training_size(cfg, dataset) -> Size:
    """The (height, width) of a typical training tensor of ``cfg`` on ``dataset``: the crop with the
    cropping options, else, of the sizes the images keep (``none``, ``scale_width``: their own size,
    rounded to the generator's multiple, which ``--load-size`` does not cap), the one of median
    area. What ``--precision auto`` times a training step at (:func:`i2i.train.settle_training_precision`).
    With a crop, ``dataset`` is not read (it may be None)."""
    if "crop" in cfg.preprocess:
        return cfg.crop_size, cfg.crop_size
    sizes = sorted(_tensor_sizes(cfg, _raw_sizes(cfg, dataset)[0]), key=lambda hw: (hw[0] * hw[1], hw))
    return sizes[len(sizes) // 2] if sizes else (cfg.load_size, cfg.load_size)


def _task(cfg) -> str:
    from . import modes

    return modes.mode_class(cfg.mode).task


def _augment(cfg):
    from .config import generator_multiple
    from .data.transforms import Augment

    return Augment(cfg.preprocess, cfg.load_size, cfg.crop_size, False, generator_multiple(cfg.net_g))


def _tensor_sizes(cfg, raw: dict) -> dict[Size, object]:
    """{(height, width) of the training tensors: an example file}."""
    if _task(cfg) == "folder":
        return {(cfg.image_size, cfg.image_size): None}
    augment = _augment(cfg)
    out: dict = {}
    for (w, h), f in sorted(raw.items()):
        out.setdefault(augment.output_size(h, w), f)
    return out


def _smallest(sizes) -> list[Size]:
    """The sizes that are not at least as large in both dimensions as another one (in n log n: in
    order of height, then width, a size is such when it is narrower than every size before it)."""
    smallest, narrowest = [], math.inf
    for h, w in sorted(set(sizes)):
        if w < narrowest:
            smallest.append((h, w))
            narrowest = w
    return smallest


def _steps(sizes_a: list[Size], sizes_b: list[Size] | None) -> list[tuple[Size, Size]]:
    """(A size, B size) pairs to run: each smallest size of each side, and one pair of sizes that
    differ when the sides can differ."""
    small_a = _smallest(sizes_a)
    if sizes_b is None:
        return [(s, s) for s in small_a]
    small_b = _smallest(sizes_b)
    pairs = [(a, small_b[0]) for a in small_a] + [(small_a[0], b) for b in small_b[1:]]
    if all(a == b for a, b in pairs):
        differing = next(((a, b) for a in sizes_a for b in sizes_b if a != b), None)
        if differing:
            pairs.append(differing)
    return list(dict.fromkeys(pairs))


# --- running the steps on the meta device ------------------------------------------------------------

def _batch_sizes(cfg, per_rank: int) -> list[int]:
    """A full batch, and the last, partial one of an epoch when there is one."""
    sizes = [min(cfg.batch_size, per_rank)]
    if per_rank % cfg.batch_size and per_rank > cfg.batch_size:
        sizes.append(per_rank % cfg.batch_size)
    return sizes


def _first_failure(cfg, raw: tuple[dict, dict | None], per_rank: int) -> Failure | None:
    sizes_a = _tensor_sizes(cfg, raw[0])
    sizes_b = None if raw[1] is None else _tensor_sizes(cfg, raw[1])
    batches = _batch_sizes(cfg, per_rank)
    if max(batches) > 1 and any(sizes is not None and len(sizes) > 1 for sizes in (sizes_a, sizes_b)):
        return Failure("mixed", "images of different sizes in one batch", batch=max(batches))
    return _run_steps(cfg, _steps(list(sizes_a), None if sizes_b is None else list(sizes_b)), batches)


def _run_steps(cfg, steps: list[tuple[Size, Size]], batches: list[int]) -> Failure | None:
    from . import modes

    meta_cfg = dataclasses.replace(cfg, init="normal", classes=list(cfg.classes) if cfg.classes else cfg.classes)
    try:
        with torch.device("meta"):  # parameters take no memory and no time to initialise
            mode = modes.mode_class(cfg.mode)(meta_cfg, torch.device("meta"))
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001
        if _unsupported(e):
            log.debug("preflight skipped: %s", e)
            return None
        return Failure("build", _first_line(e))
    mode.optimizer_step = lambda name: None  # shapes only: no update (and meta has no fused Adam)
    mode.n_critic = 1  # further critic steps repeat the same shapes
    mode.train(True)
    for batch in batches:
        for size_a, size_b in steps:
            try:  # outside the device context, which would send every operation through Python
                mode.train_step(_batch(cfg, batch, size_a, size_b))
            except Exception as e:  # noqa: BLE001  (what a real first step would raise)
                if _unsupported(e):
                    log.debug("preflight skipped: %s", e)
                    return None
                return Failure("step", _first_line(e), _failing_net(e, mode.nets), (size_a, size_b), batch)
    return None


def _batch(cfg, n: int, size_a: Size, size_b: Size) -> dict:
    meta = torch.device("meta")
    if _task(cfg) == "folder":
        return {"A": torch.empty(n, cfg.output_nc, *size_a, device=meta),
                "label": torch.zeros(n, dtype=torch.long, device=meta)}
    return {"A": torch.empty(n, cfg.input_nc, *size_a, device=meta),
            "B": torch.empty(n, cfg.output_nc, *size_b, device=meta)}


def _unsupported(e: Exception) -> bool:
    """An operation the meta device cannot run (no meta kernel): the check cannot judge, so it passes."""
    text = str(e)
    return isinstance(e, NotImplementedError) or "'Meta' backend" in text or "meta tensor" in text.lower()


def _first_line(e: Exception) -> str:
    return first_line(e).rstrip(".")  # the message goes on after it


def _failing_net(e: Exception, nets: dict) -> str | None:
    """The name of the outermost network whose code raised ``e`` (None: a loss or other code)."""
    by_id = {id(net): name for name, net in nets.items()}
    for frame, _ in traceback.walk_tb(e.__traceback__):
        name = by_id.get(id(frame.f_locals.get("self")))
        if name is not None:
            return name
    return None


# --- what to change ----------------------------------------------------------------------------------

def _flags(cfg, change: dict) -> str:
    from .config import flag

    return " ".join(flag(k, v) for k, v in change.items() if getattr(cfg, k) != v)


def _round_up(n: int, multiple: int) -> int:
    return max(multiple, -(-n // multiple) * multiple)


def _candidates(cfg, failure: Failure, per_rank: int) -> list[dict]:
    """Option changes that may make the steps run, the likeliest first."""
    from .config import generator_multiple

    net = failure.net or ""
    shallower_d, larger, other = [], [], []
    if net.startswith("D") and cfg.net_d == "n_layers":  # a given --n-layers-d is read only by n_layers
        shallower_d = [{"n_layers_d": k} for k in range(cfg.n_layers_d - 1, 0, -1)]
    elif net.startswith("D") and cfg.net_d == "basic":
        shallower_d = [{"net_d": "n_layers", "n_layers_d": k} for k in (2, 1)] + [{"net_d": "pixel"}]
    if _task(cfg) != "folder":
        multiple = generator_multiple(cfg.net_g)
        if "crop" in cfg.preprocess:
            for factor in (2, 4, 8):
                crop = _round_up(cfg.crop_size * factor, multiple)
                change = {"crop_size": crop}
                if cfg.preprocess != "crop" and cfg.load_size < crop:
                    change["load_size"] = max(crop, round(crop * cfg.load_size / max(cfg.crop_size, 1)))
                larger.append(change)
        else:
            crop = _round_up(max(cfg.crop_size, 1), multiple)
            for preprocess in ("resize_and_crop", "scale_width_and_crop", "crop"):
                change = {"preprocess": preprocess}
                if crop != cfg.crop_size:
                    change["crop_size"] = crop
                if preprocess != "crop" and cfg.load_size < crop:
                    change["load_size"] = crop
                other.append(change)
            if cfg.preprocess == "scale_width":
                larger = [{"load_size": _round_up(cfg.load_size * f, multiple)} for f in (2, 4, 8)]
    if failure.batch > 1 or failure.kind == "mixed":
        other.insert(0, {"batch_size": 1})
    elif cfg.batch_size > 1 and failure.batch < cfg.batch_size:  # the last, partial batch
        divisors = [d for d in range(min(cfg.batch_size * 2, per_rank), 1, -1) if per_rank % d == 0]
        other += [{"batch_size": d} for d in sorted(divisors, key=lambda d: abs(d - cfg.batch_size))[:2]]
    if failure.kind == "mixed" or failure.net is None:
        return other + shallower_d + larger
    if net.startswith("D"):
        return shallower_d + larger + other
    return larger + other + shallower_d


def _fixes(cfg, raw, per_rank: int, failure: Failure, wanted: int = 2, tries: int = 8, depth: int = 2) -> list[str]:
    """Up to ``wanted`` option changes under which the same steps run (each checked the same way).

    A change that fixes this failure but meets another is combined with the changes for that one
    (``depth`` changes at most: e.g. ``--batch-size 1`` and a shallower discriminator together).
    """
    from .modes import validate

    found: list[str] = []

    def search(base: dict, current, fail: Failure, level: int):
        for change in _candidates(current, fail, per_rank)[: tries if level == 1 else tries // 2]:
            combined = {**base, **change}
            flags = _flags(cfg, combined)
            if not flags or flags in found:
                continue
            changed = dataclasses.replace(cfg, **combined)
            try:
                validate(changed)
            except UsageError:
                continue
            next_failure = _first_failure(changed, raw, per_rank)
            if next_failure is None:
                found.append(flags)
            elif level < depth:
                search(combined, changed, next_failure, level + 1)
            if len(found) >= wanted:
                return

    search({}, cfg, failure, 1)
    return found[:wanted]


def _describe_sizes(cfg) -> str:
    if _task(cfg) == "folder":
        return f"--image-size {cfg.image_size}"
    if "crop" in cfg.preprocess:
        return f"--crop-size {cfg.crop_size}"
    if cfg.preprocess == "scale_width":
        return f"--preprocess scale_width --load-size {cfg.load_size}"
    return "--preprocess none (the images' own sizes)"


def _net_label(cfg, net: str | None) -> str:
    if net is None:
        return "the losses"
    if net.startswith("D"):
        layers = f" --n-layers-d {cfg.n_layers_d}" if cfg.net_d == "n_layers" else ""
        return f"discriminator {net} (--net-d {cfg.net_d}{layers})"
    return f"generator {net} (--net-g {cfg.net_g})"


def _message(cfg, failure: Failure, raw, fixes: list[str]) -> str:
    where = cfg.a if cfg.b is None else f"{cfg.a} and {cfg.b}"
    advice = (f"use {' or '.join(fixes)}" if fixes else
              "change --crop-size, --load-size, --preprocess, --net-g, --net-d or --n-layers-d")
    if failure.kind == "mixed":
        sizes = {}
        for side in (raw[0], raw[1] or {}):
            for size, f in _tensor_sizes(cfg, side).items():
                sizes.setdefault(size, f)
        shown = ", ".join(f"{w}x{h} ({Path(f).name})" if f is not None else f"{w}x{h}"
                          for (h, w), f in list(sizes.items())[:3])
        return (f"{where}: --batch-size {failure.batch} stacks images of one size, but --preprocess {cfg.preprocess} "
                f"leaves {len(sizes)} sizes here ({shown}{', ...' if len(sizes) > 3 else ''}); {advice}")
    if failure.kind == "build":
        return f"the networks cannot be built: {failure.message}; {advice}"
    (h, w), (hb, wb) = failure.sizes
    size = f"{w}x{h}" if (h, w) == (hb, wb) else f"{w}x{h} (A) and {wb}x{hb} (B)"
    batch = f" in batches of {failure.batch}" if failure.batch > 1 or cfg.batch_size > 1 else ""
    return (f"{where}: a training step fails in {_net_label(cfg, failure.net)} on {size} images from "
            f"{_describe_sizes(cfg)}{batch}: {failure.message}; {advice}")
