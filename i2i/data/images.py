"""The one image loader and writer that every command uses.

Reading applies EXIF orientation and converts to RGB or grayscale (from modes 1, L, LA, P, RGB,
RGBA, CMYK, I;16, I and F); writing is atomic (temp file, then rename) and picks the format from the
file extension, so JPEG in gives JPEG out. Multi-frame files (GIF, animated WebP, multi-page TIFF)
give their first frame, logged once per file. Every failure of one file (not an image, cut short,
an undecodable frame, any decoder exception, a symlink loop, no permission, a FIFO or device file,
a folder named like an image) is an :class:`ImageError` whose message starts with the file's path.

The numeric rule (:func:`network_array`, the one place that decides the network input value of
every pixel, used by prepare, the training datasets, translate and the Python API):

- 8-bit images (modes 1, L, LA, P, RGB, RGBA, CMYK, ...): ``v / 255``, carried as uint8 arrays;
- integer grayscale (Pillow modes I;16, I;16L, I;16B, I;16N, I; numpy uint16 and other integer
  types): ``v / 65535`` clipped to [0, 1], whatever the file's own maximum (200 is 200/65535 in
  every file, also in one whose maximum is 255);
- float images (mode F, such as float TIFFs; numpy floats): taken as values in [0, 1], clipped
  (NaN reads as 0).

Deep (integer or float) images are carried as float32 arrays in [0, 1], never rounded to 8 bits;
one channel is repeated when the network takes three. The network then sees ``2 * value - 1``
(:func:`i2i.data.transforms.to_tensor`).

Images larger than :data:`MAX_PIXELS` (89,478,485 pixels, Pillow's decompression-bomb limit, by
default) are refused before they are decoded; ``--max-pixels`` (or a ``max_pixels`` argument)
moves the limit. Pillow's own process-wide limit (``PIL.Image.MAX_IMAGE_PIXELS``) is never changed:
files are opened through Pillow's format plugins, and i2i's limit is checked instead.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import struct
import threading
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError, UsageError, first_line
from ..io import atomic_write

log = logging.getLogger(__name__)
T = TypeVar("T")

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
DEFAULT_MAX_PIXELS = 89478485  # Pillow's default MAX_IMAGE_PIXELS: about 1/4 GB as RGB bytes
MAX_PIXELS = DEFAULT_MAX_PIXELS  # i2i's own limit (--max-pixels, within max_pixels_scope); Pillow's is left alone


@contextlib.contextmanager
def max_pixels_scope(n: int | None):
    """i2i's pixel limit set to ``n`` (``None``: the default) for the images read inside the ``with``
    block, then put back: a command's or a training run's ``--max-pixels`` never outlives it (a raised
    limit must not carry over to untrusted files read later by the same process). DataLoader workers
    started inside the block (forked) keep it. Library callers can also pass ``max_pixels=`` to
    :func:`open_image` and :func:`check_image`. Pillow's own limit is never touched.
    """
    global MAX_PIXELS
    before = MAX_PIXELS
    MAX_PIXELS = n or DEFAULT_MAX_PIXELS
    try:
        yield
    finally:
        MAX_PIXELS = before


def pixel_limit(max_pixels: int | None = None) -> int:
    """The limit in force: ``max_pixels`` if given, else the process's (``--max-pixels`` or the default)."""
    return max_pixels or MAX_PIXELS


def check_pixels(where, width: int, height: int, max_pixels: int | None = None,
                 fix: str = "pass --max-pixels {n} if the file is trusted") -> None:
    """Raise :class:`ImageError` (``"{where}: WxH is N pixels, over the limit ..."``) if ``width * height``
    exceeds the limit; ``fix`` is the advice, with ``{n}`` standing for the pixel count."""
    limit = pixel_limit(max_pixels)
    n = int(width) * int(height)
    if n > limit:
        raise ImageError(f"{where}: {width}x{height} is {n:,} pixels, over the limit of {limit:,} (a guard against "
                         f"decompression bombs); {fix.format(n=n)}")


LIMIT_FIX = "pass --max-pixels {n} if the file is trusted"


def check_side(option: str, side: int, max_pixels: int | None = None) -> None:
    """Refuse an option that resizes images to ``side`` x ``side`` (``--size``, ``--load-size``,
    ``--crop-size``) when that is over the pixel limit (``max_pixels``, default the process's), before
    anything is read or allocated: raises :class:`~i2i.errors.UsageError` naming the option, with
    both ways out (a smaller side, or ``--max-pixels``, which every command with such an option takes)."""
    from ..errors import UsageError

    limit, n = pixel_limit(max_pixels), int(side) * int(side)
    if n > limit:
        raise UsageError(f"{option} {side} makes {side}x{side} images, {n:,} pixels, over the limit of {limit:,} "
                         f"(a guard against decompression bombs); choose a smaller {option}, or pass --max-pixels {n}")


def _check_pixels(path, size: tuple[int, int], max_pixels: int | None = None, fix: str | None = None) -> None:
    check_pixels(path, size[0], size[1], max_pixels, fix or LIMIT_FIX)


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


_multi_frame_logged: set[str] = set()
_multi_frame_lock = threading.Lock()
_PLUGIN_ERRORS = (SyntaxError, IndexError, TypeError, struct.error)  # "not this format" (as Image.open treats them)


def _open_regular(path):
    """Open ``path`` for reading, refusing anything but a regular file without blocking on it
    (a FIFO opened for reading would wait forever for a writer)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device file"
            raise ImageError(f"{path}: {kind}, not a regular file; remove it or point at the image file itself")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open_plugin(fp, filename: str) -> Image.Image:
    """What ``Image.open`` does, without its check against Pillow's process-wide pixel limit (which
    warns above 1x and raises above 2x ``PIL.Image.MAX_IMAGE_PIXELS``): i2i checks its own limit
    instead, and Pillow's global is never changed. Only the header is read."""
    if os.fstat(fp.fileno()).st_size == 0:
        raise UnidentifiedImageError(f"{filename}: empty file")
    prefix = fp.read(16)
    tried: set[str] = set()
    for loader in (Image.preinit, Image.init):
        loader()
        for fmt in [f for f in Image.ID if f not in tried]:
            tried.add(fmt)
            factory, accept = Image.OPEN[fmt]
            try:
                result = not accept or accept(prefix)
                if not result or isinstance(result, str):
                    continue
                fp.seek(0)
                return factory(fp, filename)
            except _PLUGIN_ERRORS:
                continue
    raise UnidentifiedImageError(f"cannot identify image file {filename!r}")


def _skip_pillow_limit_on_load(img: Image.Image) -> None:
    """TIFF checks Pillow's global limit again when it allocates the frame (warning above 1x, raising
    above 2x). The size has passed i2i's own limit by now, so allocate the frame here, as that step
    would, which skips the repeated check without touching the global."""
    limit = Image.MAX_IMAGE_PIXELS
    tile = getattr(img, "_tile_size", None)
    if (limit and tile and tile[0] * tile[1] > limit and img.format == "TIFF"
            and getattr(img, "_im", None) is None):
        img.im = Image.core.new(img.mode, tile)


def _log_multi_frame(path, img: Image.Image) -> None:
    """Log (once per file) that only the first frame of a multi-frame file is used. A broken later
    frame does not matter: only the first is decoded."""
    try:
        animated = bool(getattr(img, "is_animated", False))
    except Exception:  # noqa: BLE001  (looking for frame 2 failed: a damaged later frame)
        animated = True
    if img.tell() != 0:
        img.seek(0)
    if not animated:
        return
    key = os.path.abspath(path)
    with _multi_frame_lock:
        if key in _multi_frame_logged:
            return
        _multi_frame_logged.add(key)
    log.log(logging.DEBUG if _in_loader_worker() else logging.INFO,  # the scan before training said it once
            "%s: a %s with several frames; only the first frame is used", path, img.format or "file")


def _in_loader_worker() -> bool:
    """Whether this is a DataLoader worker process (which starts afresh every epoch)."""
    import sys

    data = sys.modules.get("torch.utils.data")
    return data is not None and data.get_worker_info() is not None


def _os_reason(e: OSError) -> str:
    if isinstance(e, IsADirectoryError) or e.errno == errno.EISDIR:
        return "is a folder, not an image; rename it, or give the image files inside it"
    if isinstance(e, FileNotFoundError):
        return "no such file (or a symlink to a missing file)"
    if e.errno == errno.ELOOP:
        return "a symlink loop (the link points back at itself); remove or fix the link"
    if isinstance(e, PermissionError):
        return "permission denied; make the file readable (chmod +r) or remove it"
    if e.errno == errno.ENXIO:
        return "a socket or device, not a regular file; remove it or point at the image file itself"
    return f"cannot read the file ({e.strerror or e}); remove or replace the file"


def _image_error(path, e: BaseException) -> ImageError:
    """One line naming ``path`` for any failure to read it."""
    if isinstance(e, ImageError):
        return e
    if isinstance(e, UnidentifiedImageError):
        try:
            empty = os.stat(path).st_size == 0
        except OSError:
            empty = False
        reason = "empty file (0 bytes)" if empty else "not an image (its contents are not a format Pillow reads)"
        return ImageError(f"{path}: {reason}; remove or replace the file")
    if isinstance(e, Image.DecompressionBombError):  # raised by some plugins (GIF, TIFF) while decoding
        return ImageError(f"{path}: Pillow's own pixel limit for this format refuses to decode it ({e}); "
                          "convert it to PNG, or remove the file")
    if isinstance(e, OSError) and not str(e).startswith(("image file is truncated", "broken data stream")) \
            and e.errno is not None:
        return ImageError(f"{path}: {_os_reason(e)}")
    if isinstance(e, MemoryError):
        return ImageError(f"{path}: too large to decode in the memory available; remove or shrink the file")
    text = first_line(e)
    if "truncated" in text:
        return ImageError(f"{path}: truncated: the file ends early; remove or replace the file")
    return ImageError(f"{path}: cannot decode the image ({type(e).__name__}: {text}); remove or replace the file")


def open_image(path: str | Path, max_pixels: int | None = None, limit_fix: str | None = None) -> Image.Image:
    """Open and decode an image, upright (EXIF orientation applied), in its own mode.

    A multi-frame file (GIF, animated WebP, multi-page TIFF) gives its first frame. Images over
    ``max_pixels`` (default: :data:`MAX_PIXELS`) are refused before decoding, with the advice
    ``limit_fix`` (``{n}``: the image's pixel count; default: pass --max-pixels N). Raises
    :class:`ImageError`, whose message starts with ``path``, for every problem with the file.
    """
    try:
        with _open_regular(path) as fp:
            img = _open_plugin(fp, str(path))
            try:
                _check_pixels(path, img.size, max_pixels, limit_fix)
                _log_multi_frame(path, img)
                _skip_pillow_limit_on_load(img)
                img.load()
                return ImageOps.exif_transpose(img)  # a copy, detached from the file
            finally:
                img.close()
    except Exception as e:  # noqa: BLE001  (any decoder error means the file is unusable)
        raise _image_error(path, e) from None


def check_image(path: str | Path, max_pixels: int | None = None, limit_fix: str | None = None) -> tuple[int, int]:
    """A quick check that ``path`` is a complete image without decoding it; returns (width, height).

    Catches empty files, non-images, images over the pixel limit (``max_pixels``, default
    :data:`MAX_PIXELS`), JPEG and PNG files cut short (their end markers are missing), and files
    that are not regular files. Raises :class:`ImageError` whose message starts with ``path``.
    """
    path = Path(path)
    try:
        with _open_regular(path) as fp:
            length = os.fstat(fp.fileno()).st_size
            if length == 0:
                raise ImageError(f"{path}: empty file (0 bytes); remove or replace the file")
            img = _open_plugin(fp, str(path))
            size, fmt = img.size, img.format  # img closes with fp
            _check_pixels(path, size, max_pixels, limit_fix)
            _log_multi_frame(path, img)  # once per file, here in the scan rather than in every worker
            ends = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}.get(fmt)
            if ends:
                fp.seek(max(0, length - 1024))
                if ends not in fp.read():
                    raise ImageError(f"{path}: truncated: the {fmt} file ends early; remove or replace the file")
        return size
    except Exception as e:  # noqa: BLE001  (any decoder error means the file is unusable)
        raise _image_error(path, e) from None


def upright_size(path: str | Path, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) of ``path`` as :func:`open_image` gives it, upright by its EXIF orientation,
    from the file's header alone (nothing decoded; Pillow's global limit neither checked nor
    changed). Raises :class:`ImageError` like :func:`check_image`, which it also runs."""
    width, height = check_image(path, max_pixels)
    try:
        with _open_regular(path) as fp:
            orientation = _open_plugin(fp, str(path)).getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001  (an unreadable EXIF block: open_image keeps the image as stored)
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


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


DEEP_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # integer grayscale deeper than 8 bits
FLOAT_MODES = ("F",)  # 32-bit float grayscale (float TIFFs)
DEEP_FORMATS = {".png", ".tif", ".tiff"}  # outputs that can hold 16 bits per channel
ALPHA_FORMATS = {".png", ".webp", ".tif", ".tiff"}  # outputs that keep an input's alpha channel


def is_deep(img: Image.Image) -> bool:
    """Whether ``img`` holds more than 8 bits per pixel (integer or float grayscale)."""
    return img.mode in DEEP_MODES or img.mode in FLOAT_MODES


def unit_values(arr: np.ndarray) -> np.ndarray:
    """The numeric rule on raw pixel values (see the module doc): uint8 stays uint8 (meaning
    ``v / 255``); other integers become float32 ``v / 65535`` clipped to [0, 1]; floats become
    float32 clipped to [0, 1] (NaN: 0). Same shape as ``arr``."""
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(arr.dtype, np.integer):
        return np.clip(arr.astype(np.float64) / 65535.0, 0.0, 1.0).astype(np.float32)
    if np.issubdtype(arr.dtype, np.floating):
        return np.clip(np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    raise ImageError(f"pixels of type {arr.dtype} are not an image; give uint8, uint16 or float values")


def deep_to_array(img: Image.Image) -> np.ndarray:
    """A deep grayscale image (modes I;16*, I, F) as float32 HxW in [0, 1] by the numeric rule
    (``v / 65535`` for integers, floats as they are), clipped, never rounded to 8 bits."""
    raw = np.asarray(img)
    if img.mode in DEEP_MODES and raw.dtype.kind == "f":  # not expected from Pillow; keep integer meaning
        raw = raw.astype(np.int64)
    return unit_values(raw)


def unit_image(img: Image.Image) -> Image.Image:
    """A deep image as a mode-F image of its values in [0, 1] (see :func:`deep_to_array`), which
    Pillow can crop and resize without rounding; other images are returned as they are."""
    return Image.fromarray(deep_to_array(img), "F") if is_deep(img) else img


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert to 8-bit grayscale (1 channel) or RGB (3 channels); transparency is composited on
    white. Deep images follow the numeric rule, rounded to 8 bits (``round(255 * value)``): this is
    for 8-bit outputs and previews; the network's input comes from :func:`network_array`."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if is_deep(img):
        img = Image.fromarray((deep_to_array(img) * 255.0 + 0.5).astype(np.uint8), "L")
    return img.convert("L" if channels == 1 else "RGB")


def network_array(img: Image.Image, channels: int) -> np.ndarray:
    """The network's input values of ``img`` as an HxWxC array (C = ``channels``, 1 or 3): uint8
    for 8-bit images (exactly ``to_mode(img, channels)``), float32 in [0, 1] for deep images (modes
    I;16*, I, F; one channel repeated to three). This is the numeric rule of the module doc; feed
    the result to :func:`i2i.data.transforms.to_tensor`."""
    if is_deep(img):
        arr = deep_to_array(img)[:, :, None]
        return np.repeat(arr, channels, axis=2) if channels > 1 else arr
    return image_to_array(to_mode(img, channels))


def _converted(path, img: Image.Image, convert: Callable[[Image.Image], T], channels: int) -> T:
    try:
        return convert(img)
    except (ValueError, OSError) as e:  # a mode Pillow cannot convert
        raise ImageError(f"{path}: cannot convert its mode {img.mode} to {'RGB' if channels == 3 else 'grayscale'} "
                         f"({e}); convert the file to PNG or remove it") from None


def load_network_image(path: str | Path, channels: int = 3, max_pixels: int | None = None) -> Image.Image:
    """Read ``path`` for a network, upright: an 8-bit image as RGB or L (``to_mode(img, channels)``), a
    deep image as mode F holding its values in [0, 1] (:func:`unit_image`), so crops and resizes keep
    every bit. :func:`network_array` turns either into the network's input."""
    img = open_image(path, max_pixels)
    return _converted(path, img, lambda i: unit_image(i) if is_deep(i) else to_mode(i, channels), channels)


def array_to_tensor(arr: np.ndarray):
    """HxWxC array (from :func:`network_array`) -> CxHxW float32 torch tensor in [-1, 1].

    uint8 (8-bit images): ``x / 127.5 - 1``. float (deep images, values in [0, 1]): clipped to
    [0, 1] (bicubic resizing can overshoot, as uint8 saturates), then ``x * 2 - 1``. Other dtypes
    raise ``TypeError``.
    """
    import torch  # here, so that reading images does not import torch

    chw = np.ascontiguousarray(arr.transpose(2, 0, 1))
    if not chw.flags.writeable:  # torch warns about read-only arrays (such as np.asarray of a PIL image)
        chw = chw.copy()
    if chw.dtype == np.uint8:
        return torch.from_numpy(chw).float().div_(127.5).sub_(1.0)
    if chw.dtype.kind == "f":
        return torch.from_numpy(np.clip(chw.astype(np.float32), 0.0, 1.0)).mul_(2.0).sub_(1.0)
    raise TypeError(f"array_to_tensor takes uint8 or float arrays in [0, 1], not {chw.dtype}")


def read_array(path: str | Path, channels: int, max_pixels: int | None = None) -> np.ndarray:
    """:func:`network_array` of the file at ``path``: HxWxC, uint8 or float32 in [0, 1]. Raises
    :class:`ImageError` naming the file (see :func:`open_image`)."""
    return network_array(load_network_image(path, channels, max_pixels), channels)


def read_tensor(path: str | Path, channels: int, max_pixels: int | None = None):
    """The network input of the file at ``path``: a ``channels`` x H x W float32 tensor in [-1, 1], by
    the numeric rule (:func:`read_array`, then :func:`array_to_tensor`)."""
    return array_to_tensor(read_array(path, channels, max_pixels))


def load_image(path: str | Path, channels: int = 3, max_pixels: int | None = None) -> Image.Image:
    """Read ``path`` as an upright 8-bit RGB (``channels=3``) or L (``channels=1``) image (deep
    images rounded to 8 bits by the numeric rule; see :func:`to_mode`)."""
    img = open_image(path, max_pixels)
    return _converted(path, img, lambda i: to_mode(i, channels), channels)


def image_to_array(img: Image.Image) -> np.ndarray:
    """HxWxC array of an image's own values (uint8 for 8-bit images; C = 1 for grayscale)."""
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
