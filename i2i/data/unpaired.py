"""Unpaired data: two plain folders of images (domain A and domain B), read recursively.

An epoch is max(|A|, |B|) items. Item i takes A[i mod |A|] and a B image drawn at random from the
sample's own seed (or B[i mod |B|] with ``serial=True``), each with its own augmentation, as the
reference's unaligned dataset does.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import torch

from ..errors import UsageError
from .images import list_images, read_array, read_with_fallback, scan_images

log = logging.getLogger(__name__)


def readable_images(root: str | Path, option: str, strict: bool = False) -> list[Path]:
    """The images of one folder, each checked once (see :func:`~i2i.data.images.scan_images`)."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{option} {root}: no such folder; give a folder of images")
    files = list_images(root)
    if not files:
        raise UsageError(f"{option} {root}: no images found; expected .jpg/.png files (see datasets/README.md)")
    good = scan_images(files, f"{option} {root}", strict)
    if not good:
        raise UsageError(f"{option} {root}: none of the {len(files)} images can be read")
    return good


class UnpairedDataset(torch.utils.data.Dataset):
    """Items are dicts ``{"A": image of domain A, "B": image of domain B, "path": A's path}``."""

    def __init__(self, a, b, input_nc=3, output_nc=3, transform=None, serial=False, strict=False):
        if b is None:
            raise UsageError("unpaired training needs two folders: --a DOMAIN_A/ --b DOMAIN_B/")
        self.files_a, self.files_b = readable_images(a, "--a", strict), readable_images(b, "--b", strict)
        self.input_nc, self.output_nc, self.transform, self.serial = input_nc, output_nc, transform, serial

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def _load(self, files: list[Path], index: int, channels: int):
        image, index = read_with_fallback(lambda i: read_array(files[i], channels), index,
                                          len(files), files[index].parent)
        return image, files[index]

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, 0)
        rng = random.Random(seed)
        index_b = index % len(self.files_b) if self.serial else rng.randrange(len(self.files_b))
        a, path = self._load(self.files_a, index % len(self.files_a), self.input_nc)
        b, _ = self._load(self.files_b, index_b, self.output_nc)
        if self.transform is None:
            from .transforms import to_tensor

            return {"A": to_tensor(a), "B": to_tensor(b), "path": str(path)}
        return {"A": self.transform(a, seed=seed), "B": self.transform(b, seed=rng.randrange(2**31)), "path": str(path)}
