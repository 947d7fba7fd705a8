"""One folder of images, for the modes that learn a distribution (GAN, VAE).

Images are read recursively. With ``conditional=True`` each image's class is the name of its
first-level subfolder (``faces/smiling/1.jpg`` is class "smiling"); class indices follow the sorted
names and are recorded in the run's config, so ``--label NAME`` means the same thing later.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UsageError
from .images import read_array, read_with_fallback
from .unpaired import readable_images


class ImageFolder(torch.utils.data.Dataset):
    """Items are dicts ``{"A": image tensor, "label": class index (0 without classes), "path": str}``."""

    def __init__(self, root, channels=3, transform=None, conditional=False, strict=False):
        self.root = Path(root)
        self.files = readable_images(root, "--a", strict)
        self.channels, self.transform = channels, transform
        self.classes: list[str] = []
        self.labels = [0] * len(self.files)
        if conditional:
            parts = [f.relative_to(self.root).parts for f in self.files]
            loose = [f for f, p in zip(self.files, parts) if len(p) == 1]
            if loose:
                raise UsageError(f"{loose[0]}: with --conditional every image must sit in a class subfolder "
                                 f"of {self.root} (such as {self.root}/cats/)")
            self.classes = sorted({p[0] for p in parts})
            if len(self.classes) < 2:
                raise UsageError(f"{self.root}: --conditional needs at least two class subfolders, found "
                                 f"{len(self.classes)}")
            index = {c: i for i, c in enumerate(self.classes)}
            self.labels = [index[p[0]] for p in parts]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, 0)
        image, index = read_with_fallback(lambda i: read_array(self.files[i], self.channels),
                                          index, len(self.files), self.root)
        from .transforms import to_tensor

        x = self.transform(image, seed=seed) if self.transform else to_tensor(image)
        return {"A": x, "label": self.labels[index], "path": str(self.files[index])}


def class_folder(cfg, flip: bool) -> ImageFolder:
    """The run's folder as square images, recording its class names in ``cfg.classes`` (a resumed run
    must find the same ones)."""
    from .transforms import SquareAugment

    data = ImageFolder(cfg.a, cfg.output_nc, SquareAugment(cfg.image_size, flip), cfg.conditional, cfg.strict)
    if cfg.classes is not None and cfg.classes != data.classes:
        raise UsageError(f"{cfg.a}: the class folders changed since the run started "
                         f"({', '.join(cfg.classes)} then, {', '.join(data.classes)} now)")
    cfg.classes = data.classes or None
    return data
