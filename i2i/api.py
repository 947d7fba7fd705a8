"""The Python API: three lines from a trained run to translated images.

    from i2i import load
    model = load("checkpoints/horse2zebra")
    zebra = model(Image.open("horse.jpg"), direction="AtoB")

It is ``i2i translate``'s code path (the same loading, padding to the generator's multiple, 16-bit
and alpha handling, device and precision choice) without the files. Inputs come back in the type
they went in: a PIL image gives a PIL image; a numpy array (HxW or HxWxC, uint8, or float in [0, 1])
gives a uint8 array of the same layout; a tensor (CxHxW or BxCxHxW, float in [0, 1]) gives a float
tensor in [0, 1]; a list gives a list.

Pixel values follow the numeric rule of :mod:`i2i.data.images`, as in training and translate:
uint8 ``v / 255``; 16-bit (PIL modes I;16 and I, numpy uint16 and other integer arrays, integer
tensors) ``v / 65535`` clipped to [0, 1]; floats (PIL mode F, float arrays and tensors) clipped to
[0, 1]. A 16-bit grayscale PIL image gives a 16-bit grayscale image when the generator makes one
channel, and an 8-bit RGB image when it makes three (Pillow has no 16-bit RGB mode; give a numpy
array for 16-bit RGB out); an integer array other than uint8 gives a uint16 array.

Images whose whole translation would need more than ``max_memory`` bytes (default: a quarter of
the machine's memory) are translated in overlapping tiles with the whole image's normalisation
statistics (:mod:`i2i.tiling`); ``load(..., tile=N)`` tiles every image larger than N pixels a side.
A BxCxHxW tensor is translated as one batch, untiled.

Every image is checked against the pixel limit (``load(..., max_pixels=N)``; default 89,478,485,
Pillow's decompression-bomb limit) before any work, and refused with an :class:`~i2i.errors.ImageError`.
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data.images import DEFAULT_MAX_PIXELS, array_to_tensor, check_pixels, unit_values
from .errors import I2IError, ImageError, UsageError
from .runtime import resolve
from .data.codecs import prepare_image, tensor_to_image, tensor_to_uint16
from .translator import Translator, load_translator

_LIMIT_FIX = "load the model with i2i.load(..., max_pixels={n}) if the image is trusted"


class Model:
    """A run's generators, loaded on first use per direction.

    ``max_pixels``: the largest image (width x height) accepted (None: 89,478,485, Pillow's default
    decompression-bomb limit); larger ones raise :class:`~i2i.errors.ImageError` before any work.
    """

    def __init__(self, source: str | Path | None, direction: str | None, runtime, checkpoints_dir: str | Path,
                 max_pixels: int | None = None, tile: int | str | None = "auto", overlap: int | None = None,
                 max_memory: int | str | None = None, exact_stats: bool = False):
        if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral)
                                       or max_pixels < 1):
            raise UsageError(f"max_pixels={max_pixels!r}: give a positive whole number of pixels, or None")
        self.max_pixels = int(max_pixels or DEFAULT_MAX_PIXELS)
        self.source, self.runtime, self.checkpoints_dir = source, runtime, checkpoints_dir
        from .tiling import parse_memory, parse_tile

        if overlap is not None and (isinstance(overlap, bool) or not isinstance(overlap, numbers.Integral)
                                    or overlap < 0):
            raise UsageError(f"overlap={overlap!r}: give 0 or more pixels, or None")
        self.tile, self.overlap = parse_tile(tile), None if overlap is None else int(overlap)
        self.max_memory = None if max_memory is None else parse_memory(max_memory)
        self.exact_stats = bool(exact_stats)
        first = load_translator(source, direction, checkpoints_dir, runtime)
        self.default_direction = first.direction
        self._translators: dict[str | None, Translator] = {first.direction: first}

    def translator(self, direction: str | None = None) -> Translator:
        direction = direction or self.default_direction
        if direction not in self._translators:
            self._translators[direction] = load_translator(self.source, direction, self.checkpoints_dir, self.runtime)
        return self._translators[direction]

    def __call__(self, images, direction: str | None = None):
        """Translate one image or a list of them (see the module doc for the accepted types)."""
        if direction not in (None, "AtoB", "BtoA"):
            raise UsageError(f"direction must be 'AtoB' or 'BtoA', not {direction!r}")
        for i, x in enumerate(images if isinstance(images, (list, tuple)) else [images]):
            self.check_size(x, f"image {i} of the list" if isinstance(images, (list, tuple)) else "the image")
        t = self.translator(direction)
        if isinstance(images, (list, tuple)):
            return [self._one(t, x) for x in images]
        if torch.is_tensor(images) and images.dim() == 4:
            return self._batch(t, images)
        return self._one(t, images)

    def check_size(self, x, where: str = "the image") -> None:
        """Refuse ``x`` (a PIL image, numpy array or tensor) if it has more pixels than ``max_pixels``,
        from its size alone (a lazily opened PIL image is not decoded). Raises ImageError."""
        if isinstance(x, Image.Image):
            w, h = x.size
        elif isinstance(x, np.ndarray) or torch.is_tensor(x):
            if x.ndim not in ((2, 3) if isinstance(x, np.ndarray) else (3, 4)):
                raise UsageError(f"{where}: an array or tensor of shape {tuple(x.shape)} is not an image; give HxW, "
                                 "HxWxC (numpy) or CxHxW, BxCxHxW (tensor)")
            h, w = (x.shape[0], x.shape[1]) if isinstance(x, np.ndarray) else tuple(x.shape[-2:])
        else:
            return  # refused with its own message in _one
        check_pixels(where, w, h, self.max_pixels, _LIMIT_FIX)

    @staticmethod
    def _tensor_values(x: torch.Tensor) -> torch.Tensor:
        """A tensor's values by the numeric rule, as floats in [0, 1]."""
        if x.dtype == torch.uint8:
            return x.float() / 255
        if not x.dtype.is_floating_point:
            return (x.double() / 65535).clamp(0, 1).float()
        return torch.nan_to_num(x.float(), nan=0.0, posinf=1.0, neginf=0.0).clamp(0, 1)

    @classmethod
    def _batch(cls, t: Translator, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != t.in_channels:
            raise UsageError(f"expected {t.in_channels} channels, got a tensor of shape {tuple(x.shape)}")
        return (t(cls._tensor_values(x) * 2 - 1) + 1) / 2

    def _translate(self, t: Translator, x: torch.Tensor) -> torch.Tensor:
        """C x H x W in [-1, 1] -> C' x H x W, whole or in tiles (:func:`i2i.tiling.plan_tiles`)."""
        from .tiling import plan_tiles, translate_tensor

        plan = plan_tiles(t, x.shape[2], x.shape[1], self.tile, self.overlap, self.max_memory, self.exact_stats)
        return t(x[None])[0] if plan is None else translate_tensor(t, x, plan)

    def _one(self, t: Translator, x):
        if isinstance(x, Image.Image):
            try:
                tensor, alpha, deep = prepare_image(x, t.in_channels, None)
            except I2IError:
                raise
            except Exception as e:  # noqa: BLE001  (a lazily opened PIL image decodes here)
                raise ImageError(f"the image: cannot decode it ({type(e).__name__}: {e})") from None
            y = self._translate(t, tensor)
            if deep and y.shape[0] == 1:
                return Image.fromarray(tensor_to_uint16(y))  # 16-bit grayscale in, 16-bit grayscale out
            # a 3-channel output of a deep image: Pillow has no 16-bit RGB mode, so 8-bit RGB (a numpy
            # uint16 array in gives a uint16 HxWx3 array out, as translate writes 16-bit RGB files)
            out = tensor_to_image(y)
            if alpha is not None:
                out = out.convert("RGBA" if out.mode == "RGB" else "LA")
                out.putalpha(alpha)
            return out
        if isinstance(x, np.ndarray):
            if x.ndim == 3 and x.shape[2] not in (1, 3, 4):
                raise UsageError(f"a numpy image is HxW or HxWxC with C 1, 3 or 4, not shape {x.shape}")
            arr = unit_values(x)  # uint8 stays uint8; other integers v / 65535, floats clipped to [0, 1]
            arr = arr[:, :, None] if arr.ndim == 2 else arr
            arr = np.repeat(arr, t.in_channels, axis=2) if arr.shape[2] == 1 else arr[:, :, : t.in_channels]
            y = self._translate(t, array_to_tensor(arr))
            if x.dtype != np.uint8 and np.issubdtype(x.dtype, np.integer):
                out = tensor_to_uint16(y)
                out = out[:, :, None] if out.ndim == 2 else out
            else:
                out = ((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy().transpose(1, 2, 0)
            return out[:, :, 0] if x.ndim == 2 and out.shape[2] == 1 else out
        if torch.is_tensor(x) and x.dim() == 3:
            if x.shape[0] != t.in_channels:
                raise UsageError(f"expected {t.in_channels} channels, got a tensor of shape {tuple(x.shape)}")
            return (self._translate(t, self._tensor_values(x) * 2 - 1) + 1) / 2
        raise UsageError(f"cannot translate a {type(x).__name__}: give a PIL image, a numpy array, a tensor or a list")


def load(model: str | Path | None = None, direction: str | None = None, device: str = "auto",
         precision: str = "auto", threads: int | None = None, checkpoints_dir: str | Path = "checkpoints",
         max_pixels: int | None = None, tile: int | str | None = "auto", overlap: int | None = None,
         max_memory: int | str | None = None, exact_stats: bool = False) -> Model:
    """Load a run folder, a .safetensors file or a reference .pth generator (None: the newest run).

    ``max_pixels``: the largest image the model accepts, width x height (None: 89,478,485, Pillow's
    decompression-bomb limit); larger ones raise :class:`~i2i.errors.ImageError` before any work.
    ``tile``, ``overlap``, ``max_memory``, ``exact_stats``: as ``i2i translate``'s ``--tile``,
    ``--overlap``, ``--max-memory`` (in bytes or as "2G") and ``--exact-stats``; see
    :func:`i2i.tiling.plan_tiles`.
    Raises :class:`~i2i.errors.UsageError` for a tile or overlap the generator cannot take.
    """
    runtime = resolve(device, precision, threads if threads is not None else torch.get_num_threads())
    m = Model(model, direction, runtime, checkpoints_dir, max_pixels, tile, overlap, max_memory, exact_stats)
    if m.tile is not None:
        from .tiling import check_tiling, default_overlap

        t = m.translator()
        check_tiling(t, m.tile, default_overlap(t, m.tile) if m.overlap is None else m.overlap)
    return m
