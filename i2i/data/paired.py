"""Paired data: a folder of side-by-side A|B images (the reference's "aligned" layout), or two
folders A/ and B/ whose files match by relative path and stem (A/x/1.jpg <-> B/x/1.png)."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import torch
from PIL import Image

from ..errors import ImageError, UsageError
from .images import list_images, upright_size, load_network_image, network_array, read_with_fallback, scan_images

log = logging.getLogger(__name__)


def _stem_key(path: Path, root: Path) -> str:
    return str(path.relative_to(root).with_suffix(""))


def resolve_paired(a: str | Path, b: str | Path | None = None) -> tuple[Path, Path | None]:
    """Decide the layout: two folders (``b`` given, or ``a`` holding A/ and B/), else A|B images.

    A dataset root holding ``train/`` (such as facades/) trains on ``train/``.
    """
    a = Path(a)
    if not a.is_dir():
        raise UsageError(f"--a {a}: no such folder; give a folder of A|B images or of A/ and B/")
    if b is not None:
        b = Path(b)
        if not b.is_dir():
            raise UsageError(f"--b {b}: no such folder")
        return a, b
    if (a / "A").is_dir() and (a / "B").is_dir():
        return a / "A", a / "B"
    if (a / "train").is_dir():
        log.info("using %s (the training split of %s)", a / "train", a)
        return a / "train", None
    return a, None


def match_pairs(root_a: Path, root_b: Path, strict: bool = False) -> list[tuple[Path, Path]]:
    """Pair files of two folders by relative path without extension. Unmatched files are reported
    and skipped (with ``strict``, an error). Two folders of images with no name in common are not
    pairs at all: a :class:`~i2i.errors.UsageError` says they are unpaired data (``--mode cycle``
    or ``--mode dual``)."""
    files_a = {_stem_key(p, root_a): p for p in list_images(root_a)}
    files_b = {_stem_key(p, root_b): p for p in list_images(root_b)}
    if files_a and files_b and not files_a.keys() & files_b.keys():
        first_a, first_b = (files[min(files)].relative_to(root) for files, root in ((files_a, root_a), (files_b, root_b)))
        raise UsageError(f"{root_a} and {root_b}: no file names match ({len(files_a)} image(s) such as {first_a}, "
                         f"{len(files_b)} such as {first_b}), so they are not pix2pix pairs; two unmatched folders "
                         f"are unpaired data: to train on them, add --mode cycle (CycleGAN) or --mode dual, with "
                         f"--a {shlex.quote(str(root_a))} --b {shlex.quote(str(root_b))}")
    only_a, only_b = sorted(files_a.keys() - files_b.keys()), sorted(files_b.keys() - files_a.keys())
    for side, root, other, names in (("A", root_a, root_b, only_a), ("B", root_b, root_a, only_b)):
        if not names:
            continue
        message = f"{root}: {len(names)} file(s) have no partner in {other} (first: {names[0]})"
        if strict:
            raise UsageError(f"{message}; give both files the same name, or drop --strict to skip them")
        log.warning("skipping unmatched files: %s", message)
    return [(files_a[k], files_b[k]) for k in sorted(files_a.keys() & files_b.keys())]


class PairedDataset(torch.utils.data.Dataset):
    """Items are dicts ``{"A": input, "B": target, "path": str}``, tensors in [-1, 1].

    ``direction="BtoA"`` swaps the halves, so "A" is always the network input. Indexed by
    ``(index, seed)`` pairs from :class:`~i2i.data.transforms.EpochSampler`.
    """

    def __init__(self, a, b=None, direction="AtoB", input_nc=3, output_nc=3, transform=None, strict=False):
        root_a, root_b = resolve_paired(a, b)
        self.aligned = root_b is None
        self.direction, self.input_nc, self.output_nc = direction, input_nc, output_nc
        self.transform = transform
        if self.aligned:
            files = list_images(root_a)
            self.items = [(p, None) for p in files]
        else:
            self.items = match_pairs(root_a, root_b, strict)
        if not self.items:
            raise UsageError(f"{root_a}: no images found; expected .jpg/.png files (see datasets/README.md)")
        self.items = self._scan(self.items, strict)

    def _scan(self, items, strict: bool):
        """Check every file once (see :func:`~i2i.data.images.scan_images`): bad ones are skipped with
        their pair, and so are A|B images of odd width (which split into no two equal halves); each
        kind is reported with a count and the first few names, or with ``strict`` is an error.

        Sets ``self.sizes``: {A path: upright (width, height) of its A image (the left half of an
        A|B image)} for the kept items, which :func:`i2i.preflight.check_training` runs through the
        networks. Logs
        a warning when most A|B images are not about twice as wide as tall (ordinary photos, which
        would train on their halves)."""
        where = str(items[0][0].parent)
        files = [p for pair in items for p in pair if p is not None]
        good = set(scan_images(files, where, strict))
        kept, sizes, odd = [], {}, []
        for pa, pb in items:
            if pa not in good or (pb is not None and pb not in good):
                continue
            try:
                width, height = upright_size(pa)
            except ImageError as e:  # gone bad since the scan
                log.warning("skipping %s", e)
                continue
            if pb is None:
                if width % 2:
                    odd.append(f"{pa}: width {width} is odd, so it is not an A|B pair")
                    continue
                width //= 2
            kept.append((pa, pb))
            sizes[pa] = (width, height)
        if odd:
            fix = "crop it to an even width or use separate A/ and B/ folders"
            if strict:
                raise UsageError(f"{odd[0]}; {fix} ({len(odd)} such file(s) in {where}; drop --strict to skip them)")
            for message in odd[:5]:
                log.warning("skipping %s; %s", message, fix)
            log.warning("skipped %d A|B image(s) of odd width of %d in %s", len(odd), len(items), where)
        if not kept:
            raise UsageError(f"{where}: none of the {len(items)} images can be used"
                             + ("; A|B images need an even width" if odd else ""))
        if self.aligned:
            not_ab = sum(1 for w, h in sizes.values() if not 0.9 <= w / h <= 1.1)  # halves not about square
            if not_ab > len(sizes) / 2:
                log.warning(
                    "%s: %d of %d images are not about twice as wide as tall, so they are probably not side-by-side "
                    "A|B pairs (pix2pix trains on their left and right halves); for two folders of unpaired images "
                    "use --mode cycle --a FOLDER_A --b FOLDER_B, for pairs kept in two folders put them in A/ and B/ "
                    "(files matched by name), or make A|B images with i2i prepare combine --a A/ --b B/ --out AB/",
                    where, not_ab, len(sizes))
        self.sizes = sizes
        return kept

    def __len__(self) -> int:
        return len(self.items)

    def load_pair(self, index: int) -> tuple[Image.Image, Image.Image]:
        """The (input, target) pair as upright PIL images, after the direction swap: 8-bit images as
        RGB, deep ones (16-bit or float grayscale) as mode F holding values in [0, 1] (see
        :func:`~i2i.data.images.load_network_image`); :func:`~i2i.data.images.network_array` makes
        the network's input of each."""
        pa, pb = self.items[index]
        if pb is None:
            ab = load_network_image(pa, 3)
            half = ab.size[0] // 2
            a, b = ab.crop((0, 0, half, ab.size[1])), ab.crop((half, 0, 2 * half, ab.size[1]))
        else:
            a, b = load_network_image(pa, 3), load_network_image(pb, 3)
            if b.size != a.size:
                b = b.resize(a.size, Image.BICUBIC)
        if self.direction == "BtoA":
            a, b = b, a
        return a, b

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, 0)
        (a, b), index = read_with_fallback(self.load_pair, index, len(self.items), self.items[index][0].parent)
        a, b = network_array(a, self.input_nc), network_array(b, self.output_nc)
        if self.transform is not None:
            ta, tb = self.transform(a, b, seed)
        else:
            from .transforms import to_tensor

            ta, tb = to_tensor(a), to_tensor(b)
        return {"A": ta, "B": tb, "path": str(self.items[index][0])}
