"""Paired data: a folder of side-by-side A|B images (the reference's "aligned" layout), or two
folders A/ and B/ whose files match by relative path and stem (A/x/1.jpg <-> B/x/1.png)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from PIL import Image

from ..errors import UsageError
from .images import image_to_array, list_images, load_image, read_with_fallback, to_mode

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


def match_pairs(root_a: Path, root_b: Path) -> list[tuple[Path, Path]]:
    """Pair files of two folders by relative path without extension; any unmatched file is an error."""
    files_a = {_stem_key(p, root_a): p for p in list_images(root_a)}
    files_b = {_stem_key(p, root_b): p for p in list_images(root_b)}
    only_a, only_b = sorted(files_a.keys() - files_b.keys()), sorted(files_b.keys() - files_a.keys())
    if only_a or only_b:
        side, root, names = ("A", root_a, only_a) if only_a else ("B", root_b, only_b)
        other = root_b if side == "A" else root_a
        raise UsageError(
            f"{root}: {len(names)} file(s) have no partner in {other} (first: {names[0]}); "
            "give both files the same name or move the extra ones out"
        )
    return [(files_a[k], files_b[k]) for k in sorted(files_a)]


class PairedDataset(torch.utils.data.Dataset):
    """Items are dicts ``{"A": input, "B": target, "path": str}``, tensors in [-1, 1].

    ``direction="BtoA"`` swaps the halves, so "A" is always the network input. Indexed by
    ``(index, seed)`` pairs from :class:`~i2i.data.transforms.EpochSampler`.
    """

    def __init__(self, a, b=None, direction="AtoB", input_nc=3, output_nc=3, transform=None):
        root_a, root_b = resolve_paired(a, b)
        self.aligned = root_b is None
        self.direction, self.input_nc, self.output_nc = direction, input_nc, output_nc
        self.transform = transform
        if self.aligned:
            files = list_images(root_a)
            self.items = [(p, None) for p in files]
        else:
            self.items = match_pairs(root_a, root_b)
        if not self.items:
            raise UsageError(f"{root_a}: no images found; expected .jpg/.png files (see datasets/README.md)")
        self.items = self._scan(self.items)

    def _scan(self, items):
        """Read every header once: report unreadable files (skipped) and odd-width A|B images (an error)."""
        good, bad = [], []
        for pa, pb in items:
            try:
                for p in (pa, pb) if pb is not None else (pa,):
                    with Image.open(p) as img:
                        width = img.size[0]
                    if pb is None and width % 2:
                        raise UsageError(f"{p}: width {width} is odd, so it is not an A|B pair; "
                                         "crop it to an even width or use separate A/ and B/ folders")
            except UsageError:
                raise
            except Exception as e:  # noqa: BLE001  (any decoder error means the file is unusable)
                bad.append((pa, e))
                continue
            good.append((pa, pb))
        for p, e in bad[:5]:
            log.warning("skipping unreadable image %s (%s)", p, e)
        if bad:
            log.warning("skipped %d unreadable image(s) of %d", len(bad), len(items))
        if not good:
            raise UsageError(f"{items[0][0].parent}: none of the {len(items)} images can be read")
        return good

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
