"""Images to tensors and back, for the networks: the codecs beside the image I/O of :mod:`i2i.data.images`.

A network's images are C x H x W tensors in [-1, 1]. :func:`prepare_image` makes one from a PIL
image by the numeric rule of :mod:`i2i.data.images` (the values training sees);
:func:`tensor_to_image` (8-bit PIL) and :func:`tensor_to_uint16` (16-bit numpy) turn one back.
:func:`image_grid` lays tensors out as one picture: training's sample grids, the report's
gallery, and the grids of ``i2i sample``, ``interpolate`` and ``reconstruct``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import ImageError
from .images import array_to_tensor, is_deep, network_array, to_mode, unit_image


def tensor_to_image(t: torch.Tensor) -> Image.Image:
    """CxHxW in [-1, 1] -> PIL image (L or RGB): ``round(127.5 * (t + 1))``. The reference's
    ``util.tensor2im`` truncates instead (``astype(np.uint8)``), which darkens every output by half a
    grey level on average; rounding is the unbiased choice (docs/recipes.md)."""
    arr = ((t.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return Image.fromarray(arr[0]) if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0))


def tensor_to_uint16(t: torch.Tensor) -> np.ndarray:
    """CxHxW in [-1, 1] -> HxW (one channel) or HxWxC uint16 array: ``round(65535 * (t + 1) / 2)``, the
    inverse of the numeric rule's ``v / 65535`` (see :mod:`i2i.data.images`)."""
    arr = ((t.detach().float().cpu().clamp(-1, 1) + 1) * 32767.5).round().to(torch.int32).numpy().astype(np.uint16)
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def prepare_image(img: Image.Image, channels: int, size: int | None) -> tuple[torch.Tensor, Image.Image | None, bool]:
    """Model input tensor for ``img`` (``channels`` x H x W in [-1, 1], by the numeric rule of
    :mod:`i2i.data.images`, the same values training sees; ``size``: resized to size x size, bicubic
    first), its alpha channel (or None), and whether it is deep (16-bit or float grayscale, read
    without rounding to 8 bits; one channel repeated when ``channels`` is 3)."""
    deep = is_deep(img)
    alpha = img.getchannel("A") if img.mode in ("RGBA", "LA") else None
    img = unit_image(img) if deep else to_mode(img, channels)
    if size:
        img = img.resize((size, size), Image.BICUBIC)
        alpha = alpha.resize((size, size), Image.BICUBIC) if alpha is not None else None
    return array_to_tensor(network_array(img, channels)), alpha, deep


def input_half(img: Image.Image, direction: str | None, path: Path) -> Image.Image:
    """The half of a side-by-side A|B image that a generator for ``direction`` takes."""
    w, h = img.size
    if w % 2:
        raise ImageError(f"{path}: width {w} is odd, so it is not an A|B pair; drop --ab")
    return img.crop((w // 2, 0, w, h)) if direction == "BtoA" else img.crop((0, 0, w // 2, h))


def image_grid(rows: Sequence[Sequence[torch.Tensor]], max_rows: int | None = None) -> Image.Image:
    """One RGB picture of ``rows`` of CxHxW images in [-1, 1] (1 or 3 channels), as many columns as
    the first row has (a shorter last row is left open), 2-pixel white lines between cells.

    ``max_rows``: only the first so many rows. Images of different sizes (unpaired A and B without a
    crop) sit top-left in white cells of the largest. A batch tensor split into rows works as well:
    ``image_grid(images.split(n))`` lays out N x C x H x W images n to a row.
    """
    from torchvision.utils import make_grid

    rows = rows[:max_rows]
    images = [img.float().cpu().expand(3, -1, -1) for row in rows for img in row]
    h, w = max(img.shape[-2] for img in images), max(img.shape[-1] for img in images)
    images = [torch.nn.functional.pad(img, (0, w - img.shape[-1], 0, h - img.shape[-2]), value=1.0) for img in images]
    grid = make_grid(torch.stack(images), nrow=len(rows[0]), padding=2, pad_value=1.0)
    return tensor_to_image(grid)
