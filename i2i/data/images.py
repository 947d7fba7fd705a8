"""The one image loader and writer that every command uses.

Reading applies EXIF orientation and converts to RGB or grayscale; writing is atomic (temp file,
then rename) and picks the format from the file extension, so JPEG in gives JPEG out.
"""

from __future__ import annotations

import os
import logging
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError
from ..io import atomic_write

log = logging.getLogger(__name__)
T = TypeVar("T")

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(root: str | Path) -> list[Path]:
    """Image files under ``root`` (recursive, sorted, hidden files and folders skipped).

    A single image path returns itself.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in filenames if is_image_file(Path(f))]
    return sorted(found)


def open_image(path: str | Path) -> Image.Image:
    """Open and decode an image, upright (EXIF orientation applied), in its own mode."""
    try:
        with Image.open(path) as img:
            img.load()
            return ImageOps.exif_transpose(img)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: cannot read image ({e}); remove or replace the file") from None


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert to grayscale (1 channel) or RGB (3 channels); transparency is composited on white."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode.startswith("I"):  # 16/32-bit grayscale: scale to 8 bits
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return img.convert("L" if channels == 1 else "RGB")


def load_image(path: str | Path, channels: int = 3) -> Image.Image:
    """Read ``path`` as an upright RGB (``channels=3``) or L (``channels=1``) image."""
    return to_mode(open_image(path), channels)


def image_to_array(img: Image.Image) -> np.ndarray:
    """HxWxC uint8 array (C = 1 for grayscale)."""
    arr = np.asarray(img)
    return arr[:, :, None] if arr.ndim == 2 else arr


def save_image(img: Image.Image, path: str | Path, quality: int = 95) -> Path:
    """Write ``img`` to ``path`` atomically; the format follows the extension."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown image extension; use .png or .jpg")
    if fmt == "JPEG" and img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    return atomic_write(path, lambda tmp: img.save(tmp, format=fmt, **options))


def read_with_fallback(read: Callable[[int], T], index: int, count: int, where) -> tuple[T, int]:
    """``read(index)``; if the file has gone bad since the dataset was scanned, log it and read the
    next item instead (up to ten), so one broken file never stops a training run."""
    for _ in range(10):
        try:
            return read(index), index
        except ImageError as e:
            log.warning("skipping %s", e)
            index = (index + 1) % count
    raise ImageError(f"{where}: ten images in a row cannot be read")
