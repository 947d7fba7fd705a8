"""The one image loader and writer that every command uses.

Reading applies EXIF orientation and converts to RGB or grayscale (from modes 1, L, LA, P, RGB,
RGBA, CMYK, I;16 and I); writing is atomic (temp file, then rename) and picks the format from the
file extension, so JPEG in gives JPEG out. Every failure is an :class:`ImageError` naming the file.

Images larger than :data:`MAX_PIXELS` (Pillow's decompression-bomb limit, 89 megapixels by default)
are refused before they are decoded; ``--max-pixels`` raises the limit.
"""

from __future__ import annotations

import os
import logging
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError, UsageError
from ..io import atomic_write

log = logging.getLogger(__name__)
T = TypeVar("T")

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89478485  # Pillow's: about 1/4 GB as RGB bytes
MAX_PIXELS = DEFAULT_MAX_PIXELS
Image.MAX_IMAGE_PIXELS = None  # the check below replaces Pillow's warning-then-error with one clear error


def set_max_pixels(n: int | None) -> None:
    """Raise (or lower) the pixel limit for images read from now on (``None``: the default)."""
    global MAX_PIXELS
    MAX_PIXELS = n or DEFAULT_MAX_PIXELS


def _check_pixels(path, size: tuple[int, int]) -> None:
    w, h = size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{path}: {w}x{h} is {w * h:,} pixels, over the limit of {MAX_PIXELS:,} (a guard against "
                         f"decompression bombs); pass --max-pixels {w * h} if the file is trusted")


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
            _check_pixels(path, img.size)
            img.load()
            return ImageOps.exif_transpose(img)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError,
            Image.DecompressionBombError) as e:
        if isinstance(e, UnidentifiedImageError):
            empty = Path(path).stat().st_size == 0
            reason = "empty file (0 bytes)" if empty else "not an image (its contents are not a format Pillow reads)"
        elif "truncated" in str(e):
            reason = "truncated: the file ends early"
        else:
            reason = f"cannot read image ({e})"
        raise ImageError(f"{path}: {reason}; remove or replace the file") from None


def check_image(path: str | Path) -> tuple[int, int]:
    """A quick check that ``path`` is a complete image without decoding it; returns (width, height).

    Catches empty files, non-images, images over the pixel limit, and JPEG and PNG files cut short
    (their end markers are missing). Raises :class:`ImageError` naming the file.
    """
    path = Path(path)
    try:
        length = path.stat().st_size
        if length == 0:
            raise ImageError(f"{path}: empty file (0 bytes); remove or replace the file")
        with Image.open(path) as img:
            size, fmt = img.size, img.format
        _check_pixels(path, size)
        ends = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}.get(fmt)
        if ends:
            with open(path, "rb") as f:
                f.seek(max(0, length - 1024))
                if ends not in f.read():
                    raise ImageError(f"{path}: truncated: the {fmt} file ends early; remove or replace the file")
        return size
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (its contents are not a format Pillow reads); remove it") from None
    except Exception as e:  # noqa: BLE001  (any decoder error means the file is unusable)
        raise ImageError(f"{path}: cannot read image ({e}); remove or replace the file") from None


def scan_images(paths: list[Path], where: str, strict: bool = False) -> list[Path]:
    """The paths that pass :func:`check_image`. The others are reported (a count and the first few)
    and skipped, or with ``strict`` are an error."""
    good, bad = [], []
    for p in paths:
        try:
            check_image(p)
            good.append(p)
        except ImageError as e:
            bad.append(str(e))
    if bad and strict:
        raise UsageError(f"{bad[0]} ({len(bad)} bad file(s) in {where}; drop --strict to skip them)")
    for message in bad[:5]:
        log.warning("skipping %s", message)
    if bad:
        log.warning("skipped %d unreadable image(s) of %d in %s", len(bad), len(paths), where)
    return good


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


DEEP_MODES = ("I;16", "I;16L", "I;16B", "I")  # 16-bit (and 32-bit integer) grayscale
DEEP_FORMATS = {".png", ".tif", ".tiff"}  # outputs that can hold 16 bits per channel


def deep_to_array(img: Image.Image) -> np.ndarray:
    """A 16-bit (or 32-bit integer) grayscale image as float32 HxW in [0, 1], no 8-bit rounding."""
    arr = np.asarray(img, dtype=np.float32)
    top = 255.0 if img.mode == "I" and arr.max() <= 255 else 65535.0
    return np.clip(arr / top, 0.0, 1.0)


def save_image16(arr: np.ndarray, path: str | Path) -> Path:
    """Write a uint16 HxW or HxWx3 array as a 16-bit PNG or TIFF, atomically."""
    path = Path(path)
    if path.suffix.lower() not in DEEP_FORMATS:
        raise ImageError(f"{path}: 16-bit output needs .png or .tif")
    if arr.ndim == 2:
        img = Image.fromarray(arr.astype(np.uint16))  # mode I;16
        fmt = "PNG" if path.suffix.lower() == ".png" else "TIFF"
        return atomic_write(path, lambda tmp: img.save(tmp, format=fmt))
    import cv2  # Pillow has no 16-bit RGB mode; OpenCV (installed with albumentations) writes one

    ok, data = cv2.imencode(path.suffix.lower(), np.ascontiguousarray(arr[:, :, ::-1].astype(np.uint16)))
    if not ok:
        raise ImageError(f"{path}: cannot encode a 16-bit image")
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data.tobytes()))


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
