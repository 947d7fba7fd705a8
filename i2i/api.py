"""The Python API: three lines from a trained run to translated images.

    from i2i import load
    model = load("checkpoints/horse2zebra")
    zebra = model(Image.open("horse.jpg"), direction="AtoB")

It is ``i2i translate``'s code path (the same loading, padding to the generator's multiple, 16-bit
and alpha handling, device and precision choice) without the files. Inputs come back in the type
they went in: a PIL image gives a PIL image; a numpy array (HxW or HxWxC, uint8, or float in [0, 1])
gives a uint8 array of the same layout; a tensor (CxHxW or BxCxHxW, float in [0, 1]) gives a float
tensor in [0, 1]; a list gives a list.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import UsageError
from .runtime import resolve
from .translate import Translator, load_translator, prepare_image, tensor_to_image, tensor_to_uint16


class Model:
    """A run's generators, loaded on first use per direction."""

    def __init__(self, source: str | Path | None, direction: str | None, runtime, checkpoints_dir: str | Path):
        self.source, self.runtime, self.checkpoints_dir = source, runtime, checkpoints_dir
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
        t = self.translator(direction)
        if isinstance(images, (list, tuple)):
            return [self._one(t, x) for x in images]
        if torch.is_tensor(images) and images.dim() == 4:
            return self._batch(t, images)
        return self._one(t, images)

    @staticmethod
    def _batch(t: Translator, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != t.in_channels:
            raise UsageError(f"expected {t.in_channels} channels, got a tensor of shape {tuple(x.shape)}")
        return (t(x.float() * 2 - 1) + 1) / 2

    def _one(self, t: Translator, x):
        if isinstance(x, Image.Image):
            tensor, alpha, deep = prepare_image(x, t.in_channels, None)
            y = t(tensor[None])[0]
            if deep:
                return Image.fromarray(tensor_to_uint16(y[:1]))  # 16-bit grayscale in, 16-bit grayscale out
            out = tensor_to_image(y)
            if alpha is not None:
                out = out.convert("RGBA" if out.mode == "RGB" else "LA")
                out.putalpha(alpha)
            return out
        if isinstance(x, np.ndarray):
            arr = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
            chw = torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy())
            chw = chw.expand(t.in_channels, -1, -1) if chw.shape[0] == 1 else chw[: t.in_channels]
            y = self._batch(t, chw[None])[0]
            out = (y.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
            return out[0] if x.ndim == 2 and out.shape[0] == 1 else out.transpose(1, 2, 0)
        if torch.is_tensor(x) and x.dim() == 3:
            return self._batch(t, x[None])[0]
        raise UsageError(f"cannot translate a {type(x).__name__}: give a PIL image, a numpy array, a tensor or a list")


def load(model: str | Path | None = None, direction: str | None = None, device: str = "auto",
         precision: str = "auto", threads: int | None = None, checkpoints_dir: str | Path = "checkpoints") -> Model:
    """Load a run folder, a .safetensors file or a reference .pth generator (None: the newest run)."""
    runtime = resolve(device, precision, threads if threads is not None else torch.get_num_threads())
    return Model(model, direction, runtime, checkpoints_dir)
