"""Images read by regions and written by rows, for tiled translation (:mod:`i2i.tiling`): an image
larger than memory never lives in memory whole.

Reading uses libvips (through pyvips, which ships it as a wheel), which opens most formats (JPEG,
PNG, TIFF and BigTIFF, WebP, GIF) lazily and decodes only the regions asked for; a format it cannot
read (BMP) is decoded whole by the one image loader (:func:`i2i.data.images.open_image`, under
``--max-pixels``). Writing goes through tifffile, which writes a tiled TIFF (BigTIFF above 4 GB) from
a stream of tiles; other formats (JPEG, PNG, WebP) are converted from such a temporary TIFF by
libvips, which streams both ends. Every output appears whole or not at all
(:func:`i2i.io.atomic_write`).

Pixel values follow the numeric rule of :mod:`i2i.data.images`, as for images translated whole:
8-bit images ``v / 255`` (transparency composited on white, RGB to gray by Pillow's luma weights),
16-bit and float grayscale ``v / 65535`` or as they are, never rounded to 8 bits; a 16-bit RGB image
is read as its high bytes, as Pillow reads it. Outputs keep the input's alpha channel (where the
format has one) and depth (16-bit grayscale in, 16-bit out in PNG and TIFF). Streamed images keep
the pixel limit of every decoded image (:data:`i2i.data.images.MAX_PIXELS`, ``--max-pixels``): memory
is bounded, but a small file that claims a huge image would still cost hours of work.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ImageError
from ..io import atomic_write, temp_beside
from .images import ALPHA_FORMATS, DEEP_FORMATS, check_pixels, open_image, pixel_limit

log = logging.getLogger(__name__)

TIFF_TILE = 256
VIPS_SAVERS = {".jpg": "jpegsave", ".jpeg": "jpegsave", ".png": "pngsave", ".webp": "webpsave",
               ".tif": None, ".tiff": None}  # None: written by tifffile directly


class TensorSource:
    """A C x H x W tensor in [-1, 1] held in memory, read by regions."""

    def __init__(self, x: torch.Tensor, alpha: np.ndarray | None = None, deep: bool = False):
        self.x = x
        self.channels, self.height, self.width = x.shape
        self.alpha, self.deep = alpha, deep

    def read(self, left: int, top: int, width: int, height: int) -> torch.Tensor:
        return self.x[:, top: top + height, left: left + width].float()

    def thumbnail(self, width: int, height: int) -> torch.Tensor:
        if (width, height) == (self.width, self.height):
            return self.x.float()
        return F.interpolate(self.x[None].float(), size=(height, width), mode="area")[0]

    def alpha_at(self, top: int, height: int) -> np.ndarray | None:
        return None if self.alpha is None else self.alpha[top: top + height]


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Pillow's RGB -> L: ``(19595 R + 38470 G + 7471 B + 32768) >> 16``."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


class VipsSource:
    """An image file opened lazily with libvips and read by regions, upright (EXIF orientation
    applied), as network input values (see the module doc). Raises :class:`ImageError` naming the
    file if it cannot be opened or is over the pixel limit."""

    def __init__(self, path: str | Path, channels: int, half: str | None = None):
        import pyvips

        self.path = Path(path)
        try:
            image = pyvips.Image.new_from_file(str(path), access="random", fail_on="error")
            check_pixels(path, image.width, image.height, pixel_limit(), "pass --max-pixels {n} if the file is trusted")
            image = image.autorot()
            if image.interpretation == "cmyk":
                image = image.colourspace("srgb")
        except pyvips.Error as e:
            raise ImageError(f"{path}: cannot read it with libvips ({_vips_reason(e)}); remove or replace the file") from None
        if half is not None:
            if image.width % 2:
                raise ImageError(f"{path}: width {image.width} is odd, so it is not an A|B pair; drop --ab")
            w = image.width // 2
            image = image.crop(w if half == "B" else 0, 0, w, image.height)
        self.image, self.channels = image, channels
        self.height, self.width = image.height, image.width
        self.has_alpha = image.bands in (2, 4)
        self.deep = image.bands == 1 and image.format != "uchar"

    def _values(self, region) -> np.ndarray:
        """H x W x C array of a vips region: uint8 (8-bit images) or float32 in [0, 1] (deep)."""
        arr = self._pixels(region)
        arr = arr[:, :, None] if arr.ndim == 2 else arr
        if self.deep:
            if np.issubdtype(arr.dtype, np.integer):
                values = np.clip(arr.astype(np.float64) / 65535.0, 0, 1).astype(np.float32)
            else:
                values = np.clip(np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0), 0, 1)
            return np.repeat(values, self.channels, axis=2) if self.channels > 1 else values
        if arr.dtype != np.uint8:  # 16-bit RGB(A): its high bytes, as Pillow reads it
            arr = (arr.astype(np.uint32) >> 8).astype(np.uint8) if np.issubdtype(arr.dtype, np.integer) \
                else (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
        if self.has_alpha:
            color, a = arr[:, :, :-1].astype(np.uint32), arr[:, :, -1:].astype(np.uint32)
            arr = ((color * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)  # on white
        if self.channels == 1 and arr.shape[2] == 3:
            return _luma(arr)[:, :, None]
        if self.channels == 3 and arr.shape[2] == 1:
            return np.repeat(arr, 3, axis=2)
        return arr

    def _pixels(self, region) -> np.ndarray:
        """Decode ``region``; a decoder error part-way through the file is an :class:`ImageError`."""
        try:
            return np.asarray(region.numpy())
        except Exception as e:  # noqa: BLE001  (libvips reports damage only here, when decoding)
            raise ImageError(f"{self.path}: cannot decode the image; the file may be damaged or cut short "
                             f"(libvips: {_vips_reason(e)}); remove or replace the file") from None

    def read(self, left: int, top: int, width: int, height: int) -> torch.Tensor:
        from .images import array_to_tensor

        return array_to_tensor(self._values(self.image.crop(left, top, width, height)))

    def thumbnail(self, width: int, height: int) -> torch.Tensor:
        from .images import array_to_tensor

        small = self.image.resize(width / self.width, vscale=height / self.height, kernel="linear")
        small = small.crop(0, 0, min(width, small.width), min(height, small.height))
        return array_to_tensor(self._values(small))

    def alpha_at(self, top: int, height: int) -> np.ndarray | None:
        if not self.has_alpha:
            return None
        arr = self._pixels(self.image.crop(0, top, self.width, height)[self.image.bands - 1])
        return arr if arr.dtype == np.uint8 else (arr.astype(np.uint32) >> 8).astype(np.uint8)


def _vips_reason(e: BaseException) -> str:
    """libvips' own reason: the first line of its error log (the last is often a generic
    "unable to write to memory" from the end of the pipeline)."""
    lines = [line.strip() for line in str(getattr(e, "detail", "") or e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def open_source(path: str | Path, channels: int, half: str | None = None):
    """A region source for the file at ``path``: libvips where it reads the format, else the image
    decoded whole by :func:`i2i.data.images.open_image` (under ``--max-pixels``)."""
    import pyvips

    suffix = Path(path).suffix.lower()
    if suffix in VIPS_SAVERS or suffix == ".gif":
        try:
            pyvips.Image.new_from_file(str(path))  # only the header
        except pyvips.Error:
            pass  # the Pillow path below reports the file's problem in the usual words
        else:
            return VipsSource(path, channels, half)
    from .codecs import input_half, prepare_image

    img = open_image(path)
    if half is not None:
        img = input_half(img, "BtoA" if half == "B" else "AtoB", Path(path))
    x, alpha, deep = prepare_image(img, channels, None)
    return TensorSource(x, None if alpha is None else np.asarray(alpha), deep)


# --- writing ---------------------------------------------------------------------------------------

def _pixels(rows: torch.Tensor, deep16: bool, alpha: np.ndarray | None) -> np.ndarray:
    """C x h x W in [-1, 1] -> h x W x C' uint16 (``deep16``) or uint8, with ``alpha`` appended."""
    from .codecs import tensor_to_uint16

    if deep16:
        arr = tensor_to_uint16(rows)
        return arr[:, :, None] if arr.ndim == 2 else arr
    arr = ((rows.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy().transpose(1, 2, 0)
    if alpha is not None:
        arr = np.concatenate([arr, alpha[:, :, None]], axis=2)
    return np.ascontiguousarray(arr)


def _tiff_tiles(blocks: Iterable[np.ndarray], width: int) -> Iterator[np.ndarray]:
    """Re-cut row blocks (h x W x C, top to bottom) into TIFF tiles in the file's order."""
    pending: list[np.ndarray] = []
    count = 0
    for block in blocks:
        pending.append(block)
        count += block.shape[0]
        while count >= TIFF_TILE:
            band = np.concatenate(pending, axis=0)
            yield from (band[:TIFF_TILE, x: x + TIFF_TILE] for x in range(0, width, TIFF_TILE))
            pending, count = [band[TIFF_TILE:]], count - TIFF_TILE
    if count:
        band = np.concatenate(pending, axis=0)
        yield from (band[:, x: x + TIFF_TILE] for x in range(0, width, TIFF_TILE))


def _write_tiff(path: str, blocks: Iterable[np.ndarray], height: int, width: int, channels: int,
                dtype) -> None:
    import tifffile

    nbytes = height * width * channels * np.dtype(dtype).itemsize
    shape = (height, width, channels) if channels > 1 else (height, width)
    tiles = _tiff_tiles(blocks, width) if channels > 1 else (t[:, :, 0] for t in _tiff_tiles(blocks, width))
    photometric = "rgb" if channels in (3, 4) else "minisblack"
    extras = {"extrasamples": ["unassalpha"]} if channels in (2, 4) else {}
    tifffile.imwrite(path, data=tiles, shape=shape, dtype=dtype, tile=(TIFF_TILE, TIFF_TILE),
                     bigtiff=nbytes > 2**32 - 2**26, photometric=photometric, **extras)


def write_rows(dst: str | Path, rows: Iterable[tuple[int, torch.Tensor]], height: int, width: int,
               deep: bool = False, alpha=None) -> Path:
    """Write an image produced as ``(top, rows)`` blocks (:func:`i2i.tiling.tiled_rows`) to ``dst``,
    atomically, holding only a band of rows in memory: a tiled TIFF (BigTIFF when over 4 GB) by
    tifffile, JPEG, PNG and WebP by libvips from a temporary tiled TIFF beside ``dst``, other formats
    (BMP, GIF) whole in memory by Pillow. ``deep``: 16-bit output where the format has it (PNG,
    TIFF). ``alpha(top, h)``: the alpha rows to keep (h x W uint8) or None."""
    dst = Path(dst)
    suffix = dst.suffix.lower()
    deep16 = deep and suffix in DEEP_FORMATS
    keep_alpha = alpha is not None and suffix in ALPHA_FORMATS and not deep16

    rows = iter(rows)
    first = next(rows)
    keep_alpha = keep_alpha and alpha(0, 1) is not None

    def blocks() -> Iterator[np.ndarray]:
        for top, r in itertools.chain([first], rows):
            yield _pixels(r, deep16, alpha(top, r.shape[1]) if keep_alpha else None)

    channels = first[1].shape[0] + (1 if keep_alpha else 0)
    dtype = np.uint16 if deep16 else np.uint8
    if suffix not in VIPS_SAVERS:
        from PIL import Image

        from .images import save_image

        arr = np.concatenate(list(blocks()), axis=0)
        return save_image(Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr), dst)
    if VIPS_SAVERS[suffix] is None:
        return atomic_write(dst, lambda tmp: _write_tiff(tmp, blocks(), height, width, channels, dtype))

    def convert(tmp: str) -> None:
        import pyvips

        staging = temp_beside(dst)
        try:
            _write_tiff(staging, blocks(), height, width, channels, dtype)
            image = pyvips.Image.new_from_file(staging, access="sequential")
            # as Pillow writes them on the whole-image path: quality 95, JPEG chroma at 4:2:0, no metadata
            options = {"Q": 95} if suffix in (".jpg", ".jpeg", ".webp") else {}
            options.update({"subsample_mode": "on"} if suffix in (".jpg", ".jpeg") else {})
            options["keep"] = "none"
            try:
                getattr(image, VIPS_SAVERS[suffix])(tmp, **options)
            except pyvips.Error as e:
                raise ImageError(f"{dst}: libvips cannot write it ({_vips_reason(e)}); check the space and permissions "
                                 "of --out, then rerun the same command") from None
        finally:
            Path(staging).unlink(missing_ok=True)

    return atomic_write(dst, convert)

