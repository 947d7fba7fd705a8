"""Paired data: a folder of side-by-side A|B images (the reference's "aligned" layout), or two
folders A/ and B/ whose files match by relative path and stem (A/x/1.jpg <-> B/x/1.png)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from PIL import Image

from ..errors import UsageError
from .images import check_image, image_to_array, list_images, load_image, read_with_fallback, scan_images, to_mode

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
    and skipped (with ``strict``, an error)."""
    files_a = {_stem_key(p, root_a): p for p in list_images(root_a)}
    files_b = {_stem_key(p, root_b): p for p in list_images(root_b)}
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
        their pair (or with ``strict``, an error); an odd-width A|B image is an error."""
        files = [p for pair in items for p in pair if p is not None]
        good = set(scan_images(files, str(items[0][0].parent), strict))
        kept = [(pa, pb) for pa, pb in items if pa in good and (pb is None or pb in good)]
        for pa, pb in kept:
            if pb is None:
                width = check_image(pa)[0]
                if width % 2:
                    raise UsageError(f"{pa}: width {width} is odd, so it is not an A|B pair; "
                                     "crop it to an even width or use separate A/ and B/ folders")
        if not kept:
            raise UsageError(f"{items[0][0].parent}: none of the {len(items)} images can be read")
        return kept

    def __len__(self) -> int:
        return len(self.items)

    def load_pair(self, index: int) -> tuple[Image.Image, Image.Image]:
        """The (input, target) pair as upright PIL images, after the direction swap."""
        pa, pb = self.items[index]
        if pb is None:
            ab = load_image(pa, 3)
            half = ab.size[0] // 2
            a, b = ab.crop((0, 0, half, ab.size[1])), ab.crop((half, 0, 2 * half, ab.size[1]))
        else:
            a, b = load_image(pa, 3), load_image(pb, 3)
            if b.size != a.size:
                b = b.resize(a.size, Image.BICUBIC)
        if self.direction == "BtoA":
            a, b = b, a
        return to_mode(a, self.input_nc), to_mode(b, self.output_nc)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, 0)
        (a, b), index = read_with_fallback(self.load_pair, index, len(self.items), self.items[index][0].parent)
        a, b = image_to_array(a), image_to_array(b)
        if self.transform is not None:
            ta, tb = self.transform(a, b, seed)
        else:
            from .transforms import to_tensor

            ta, tb = to_tensor(a), to_tensor(b)
        return {"A": ta, "B": tb, "path": str(self.items[index][0])}
