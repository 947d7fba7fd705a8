"""Augmentation pipelines (albumentations), shared by all datasets.

One pipeline transforms an input and its target together, so both get the same resize, crop and
flip. Each sample is augmented with its own seed (handed out by :class:`EpochSampler`), so results
do not depend on the number of DataLoader workers, workers never repeat each other's crops, and a
resumed run sees exactly the augmentations it would have seen.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations checks PyPI on import otherwise

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from PIL import Image  # noqa: E402

from .images import array_to_tensor  # noqa: E402


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWxC array -> CxHxW float32 tensor in [-1, 1]: uint8 ``x / 127.5 - 1``, float in [0, 1]
    ``x * 2 - 1`` (see :func:`i2i.data.images.array_to_tensor`, which this is)."""
    return array_to_tensor(image)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """HxWxC uint8, or float32 in [0, 1], -> ``height`` x ``width`` x C of the same dtype, by PIL's
    bicubic filter, antialiased when shrinking: what the reference's ``transforms.Resize(size,
    Image.BICUBIC)`` does to its PIL images (data/base_dataset.py, ``get_transform``), so training
    crops carry the same detail as the reference's and as the images i2i translates.

    Each channel is resized on its own (as PIL does inside an RGB image), so any channel count works;
    float images are resized in PIL's 32-bit float mode and clipped back to [0, 1].
    """
    if image.shape[:2] == (height, width):
        return image
    if image.dtype == np.uint8 and image.shape[2] in (1, 3):
        pil = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
        out = np.asarray(pil.resize((width, height), Image.Resampling.BICUBIC))
        return out[:, :, None] if out.ndim == 2 else out
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, c], dtype=image.dtype))  # L or F
                         .resize((width, height), Image.Resampling.BICUBIC)) for c in range(image.shape[2])]
    out = np.stack(planes, axis=2)
    return out if image.dtype == np.uint8 else np.clip(out, 0, 1).astype(image.dtype)


def round_to_multiple(size: int, multiple: int) -> int:
    return max(multiple, int(round(size / multiple)) * multiple)


class Augment:
    """Apply one random geometry to an image, or to an input and its target together, and return
    [-1, 1] tensors.

    ``preprocess`` is one of the reference's options:
    ``resize_and_crop`` (resize to load_size x load_size, random crop_size crop), ``crop``,
    ``scale_width`` (width to load_size, keeping the aspect ratio), ``scale_width_and_crop``, ``none``.
    Without a crop, sizes are rounded to the generator's ``multiple`` (the reference rounds to 4,
    which a U-Net cannot take).
    """

    def __init__(self, preprocess: str, load_size: int, crop_size: int, flip: bool, multiple: int):
        self.preprocess, self.load_size, self.crop_size, self.multiple = preprocess, load_size, crop_size, multiple
        steps: list = []  # the resize comes first, outside the pipeline (see :func:`resize`)
        if "crop" in preprocess:
            steps.append(A.RandomCrop(crop_size, crop_size, pad_if_needed=True, border_mode=cv2.BORDER_REFLECT_101))
        if flip:
            steps.append(A.HorizontalFlip(p=0.5))
        self.pipeline = A.Compose(steps, additional_targets={"target": "image"})

    def resize_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) that an image of ``height`` x ``width`` pixels is resized to before any crop."""
        if self.preprocess == "resize_and_crop":
            return self.load_size, self.load_size
        h, w = height, width
        if self.preprocess.startswith("scale_width"):
            h, w = max(int(self.load_size * h / w), self.crop_size), self.load_size
        if self.preprocess in ("scale_width", "none"):
            h, w = round_to_multiple(h, self.multiple), round_to_multiple(w, self.multiple)
        return h, w

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the tensors made from an image of ``height`` x ``width`` pixels: crop_size
        square for the cropping options (smaller images are reflect-padded), else :meth:`resize_size`.
        What :func:`i2i.preflight.check_training` runs through the networks before training."""
        if "crop" in self.preprocess:
            return self.crop_size, self.crop_size
        return self.resize_size(height, width)

    def __call__(self, a: np.ndarray, b: np.ndarray | None = None, seed: int = 0):
        """HxWxC image(s), uint8 or float32 in [0, 1] (see :func:`to_tensor`) -> tensor, or (tensor, tensor)
        when ``b`` is given (resized to ``a``'s size)."""
        h, w = self.resize_size(*a.shape[:2])
        self.pipeline.set_random_seed(seed)
        if b is None:
            return to_tensor(self.pipeline(image=resize(a, h, w))["image"])
        out = self.pipeline(image=resize(a, h, w), target=resize(b, h, w))
        return to_tensor(out["image"]), to_tensor(out["target"])


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``(index, sample_seed)`` pairs: a fresh permutation and fresh augmentation seeds each
    epoch, both derived from the run seed and the epoch number alone.

    In a distributed run (``world`` > 1) each ``rank`` takes every world-th example of the epoch's
    permutation, padded by wrapping around so all ranks get the same count, as torch's
    DistributedSampler does; one process sees the whole permutation, unpadded.

    ``start`` skips the first samples of this rank's share, which is how a run resumes mid-epoch.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1):
        self.n, self.seed, self.shuffle, self.rank, self.world = n, seed, shuffle, rank, world
        self.per_rank = math.ceil(n / world)
        self.epoch = 0
        self.start = 0

    def __len__(self) -> int:
        return self.per_rank - self.start

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        seeds = torch.randint(0, 2**31 - 1, (self.n,), generator=g)
        positions = [i % self.n for i in range(self.rank, self.per_rank * self.world, self.world)]
        for i in positions[self.start:]:
            yield int(order[i]), int(seeds[i])


class SquareAugment:
    """Resize the shorter side to ``size``, take the centre square, maybe flip: the usual input of
    models that learn a distribution of whole images."""

    def __init__(self, size: int, flip: bool):
        steps = [A.SmallestMaxSize(max_size=size, interpolation=cv2.INTER_AREA), A.CenterCrop(size, size)]
        if flip:
            steps.append(A.HorizontalFlip(p=0.5))
        self.pipeline = A.Compose(steps)

    def __call__(self, image: np.ndarray, seed: int = 0) -> torch.Tensor:
        self.pipeline.set_random_seed(seed)
        return to_tensor(self.pipeline(image=image)["image"])
