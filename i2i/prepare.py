"""Dataset preparation: turn folders of images into the layouts the training modes read.

Every function only reads its source folders and writes into a fresh output folder, so a mistake
costs a deleted output folder, never a damaged dataset. Bad files are skipped and reported in the
returned ``PrepareReport`` rather than aborting a long run halfway through.
"""

from __future__ import annotations

import logging
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .data.images import (DEEP_FORMATS, IMAGE_EXTENSIONS, deep_to_array, is_deep, list_images, open_image,
                          save_image, save_image16, to_mode, unit_image)
from .errors import I2IError, ImageError, UsageError

log = logging.getLogger(__name__)

_GRAY_MODES = {"1", "L", "LA", "I", "F"}


@dataclass
class PrepareReport:
    """What a preparation step did, for the CLI to summarise.

    ``skipped`` holds (source path, reason) pairs; ``unmatched`` holds paths relative to the
    source folder they were found in (A's first, then B's).
    """

    written: int
    skipped: list[tuple[str, str]]
    unmatched: list[str]
    out: Path


# --- checks shared by every step -------------------------------------------------------------


def _source_images(path: str | Path, role: str = "source") -> tuple[Path, list[Path]]:
    """Fail before writing anything if a source folder is missing or holds no images."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such folder; pass the {role} folder that holds the images")
    if not path.is_dir():
        raise UsageError(f"{path}: not a folder; pass the {role} folder that holds the images")
    images = list_images(path)
    if not images:
        exts = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise UsageError(
            f"{path}: no images found (looked for {exts}); pass the {role} folder that holds the images"
        )
    return path, images


def _check_out(out_dir: str | Path, sources: list[Path]) -> Path:
    """Refuse any output that could overwrite files or be re-read as input by a later run."""
    out = Path(out_dir)
    resolved = out.resolve()
    for src in sources:
        src_resolved = src.resolve()
        if resolved == src_resolved or src_resolved in resolved.parents:
            raise UsageError(
                f"{out}: output folder is inside source folder {src}; choose an --out outside it"
            )
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"{out}: exists and is not a folder; choose a new --out")
        if any(out.iterdir()):
            raise UsageError(f"{out}: exists and is not empty; choose a new --out")
    return out


def _check_fraction(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"--{name} {value!r}: not a number; use a fraction such as 0.1") from None
    if not 0.0 <= value < 1.0:  # also rejects NaN
        raise UsageError(f"--{name} {value}: must be at least 0 and below 1, e.g. 0.1")
    return value


def _reason(err: ImageError, path: Path) -> str:
    """The error text without the leading path, which the report already carries."""
    msg = str(err)
    prefix = f"{path}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def _readable(images: list[Path], skipped: list[tuple[str, str]]) -> list[Path]:
    """Decode each file once so that a corrupt image is reported now, not mid-training."""
    good = []
    for path in images:
        try:
            open_image(path)
        except ImageError as e:
            log.debug("skipping %s: %s", path, _reason(e, path))
            skipped.append((str(path), _reason(e, path)))
        else:
            good.append(path)
    return good


def _by_stem(root: Path, images: list[Path], skipped: list[tuple[str, str]]) -> dict[str, Path]:
    """Key files by relative path without extension so 1.jpg in A pairs with 1.png in B."""
    keyed: dict[str, Path] = {}
    for path in images:
        key = path.relative_to(root).with_suffix("").as_posix()
        if key in keyed:
            reason = f"same name as {keyed[key]} with a different extension; rename one of them"
            log.debug("skipping %s: %s", path, reason)
            skipped.append((str(path), reason))
        else:
            keyed[key] = path
    return keyed


def _open(path: Path, skipped: list[tuple[str, str]]) -> Image.Image | None:
    try:
        return open_image(path)
    except ImageError as e:
        log.debug("skipping %s: %s", path, _reason(e, path))
        skipped.append((str(path), _reason(e, path)))
        return None


def _to_uint16(unit: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (the numeric rule's, see :mod:`i2i.data.images`) back to 16-bit integers;
    a 16-bit file's own values come back exactly."""
    return np.round(unit.astype(np.float64) * 65535.0).astype(np.uint16)


def _no_match_error(a_root: Path, b_root: Path, a_names: list[str], b_names: list[str]) -> I2IError:
    def first(keys: list[str]) -> str:
        shown = ", ".join(sorted(keys)[:3])
        return f"{shown}, ..." if len(keys) > 3 else shown

    return I2IError(
        f"{a_root} and {b_root}: no file names match ({len(a_names)} in A: {first(a_names)}; {len(b_names)} in B: "
        f"{first(b_names)}); pairs are matched by relative path without extension (A/x/1.jpg with B/x/1.png), "
        "so rename the files of one folder to match the other")


def _shuffled(images: list[Path], seed: int) -> list[Path]:
    """Shuffle a sorted copy so the split depends only on the file names and the seed."""
    images = sorted(images)
    random.Random(seed).shuffle(images)
    return images


def _copy_all(root: Path, images: list[Path], dest: Path) -> int:
    """Copy byte-for-byte: re-encoding would silently degrade JPEGs."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in images:
        target = dest / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return len(images)


# --- the steps --------------------------------------------------------------------------------


def combine(a_dir: str | Path, b_dir: str | Path, out_dir: str | Path) -> PrepareReport:
    """Join paired A/ and B/ images side by side (A|B), the layout pix2pix's aligned loader reads.

    Pairs are matched by relative path without extension; the output keeps A's relative path and
    extension. A B image of a different size is resized (bicubic) to A's size so the halves align.
    When both halves are 16-bit (or float) grayscale and A's format can hold 16 bits (PNG, TIFF),
    the A|B image is 16-bit grayscale with the files' own values (floats as ``round(65535 * v)``);
    otherwise it is 8-bit RGB, by the numeric rule of :mod:`i2i.data.images`.

    Files without a partner are listed in the report's ``unmatched`` (and counted in the log).
    Raises :class:`~i2i.errors.I2IError` (exit 1) if no file of A matches one of B, before
    writing anything.
    """
    a_root, a_images = _source_images(a_dir, "A")
    b_root, b_images = _source_images(b_dir, "B")
    out = _check_out(out_dir, [a_root, b_root])
    skipped: list[tuple[str, str]] = []
    a_by_key = _by_stem(a_root, a_images, skipped)
    b_by_key = _by_stem(b_root, b_images, skipped)

    only_a = [k for k in a_by_key if k not in b_by_key]
    only_b = [k for k in b_by_key if k not in a_by_key]
    if len(only_a) == len(a_by_key):
        raise _no_match_error(a_root, b_root, [p.relative_to(a_root).as_posix() for p in a_by_key.values()],
                              [p.relative_to(b_root).as_posix() for p in b_by_key.values()])
    unmatched = [a_by_key[k].relative_to(a_root).as_posix() for k in only_a]
    unmatched += [b_by_key[k].relative_to(b_root).as_posix() for k in only_b]
    if unmatched:
        log.warning("%d file(s) of %s and %d of %s have no partner and are left out",
                    len(only_a), a_root, len(only_b), b_root)

    out.mkdir(parents=True, exist_ok=True)
    written = resized = 0
    for key, a_path in a_by_key.items():
        b_path = b_by_key.get(key)
        if b_path is None:
            continue
        a_raw, b_raw = _open(a_path, skipped), _open(b_path, skipped)
        if a_raw is None or b_raw is None:
            continue
        dest = out / a_path.relative_to(a_root)
        deep = is_deep(a_raw) and is_deep(b_raw) and dest.suffix.lower() in DEEP_FORMATS
        if deep:
            a_img, b_img = unit_image(a_raw), unit_image(b_raw)
        else:
            a_img = _converted(a_path, a_raw, skipped)
            b_img = _converted(b_path, b_raw, skipped)
            if a_img is None or b_img is None:
                continue
        if b_img.size != a_img.size:
            log.debug("resizing %s from %dx%d to %dx%d", b_path, *b_img.size, *a_img.size)
            b_img = b_img.resize(a_img.size, Image.Resampling.BICUBIC)
            resized += 1
        if deep:
            ab16 = _to_uint16(np.concatenate([deep_to_array(a_img), deep_to_array(b_img)], axis=1))
            save_image16(ab16, dest)
        else:
            w, h = a_img.size
            ab = Image.new("RGB", (2 * w, h))
            ab.paste(a_img, (0, 0))
            ab.paste(b_img, (w, 0))
            save_image(ab, dest)
        written += 1
    if resized:
        log.info("resized %d B image(s) to the size of their A partner (bicubic)", resized)
    log.info("combined %d pair(s) into %s", written, out)
    return PrepareReport(written, skipped, unmatched, out)


def _converted(path: Path, img: Image.Image, skipped: list[tuple[str, str]], channels: int = 3) -> Image.Image | None:
    """``to_mode(img, channels)``, or None (reported) for a mode Pillow cannot convert."""
    try:
        return to_mode(img, channels)
    except (ValueError, OSError) as e:
        reason = f"cannot convert its mode {img.mode} ({e}); convert the file to PNG or remove it"
        log.debug("skipping %s: %s", path, reason)
        skipped.append((str(path), reason))
        return None


def split_ab(ab_dir: str | Path, out_dir: str | Path) -> PrepareReport:
    """Cut A|B images back into out/A and out/B, e.g. to train CycleGAN on a pix2pix dataset.

    Grayscale stays grayscale (16-bit stays 16-bit in PNG and TIFF); anything else becomes RGB. An odd width has no exact middle, so
    such images are skipped rather than guessed at.
    """
    root, images = _source_images(ab_dir, "A|B")
    out = _check_out(out_dir, [root])
    skipped: list[tuple[str, str]] = []
    (out / "A").mkdir(parents=True, exist_ok=True)
    (out / "B").mkdir(parents=True, exist_ok=True)
    written = 0
    for path in images:
        try:
            img = open_image(path)
        except ImageError as e:
            log.debug("skipping %s: %s", path, _reason(e, path))
            skipped.append((str(path), _reason(e, path)))
            continue
        w, h = img.size
        if w % 2:
            reason = f"odd width {w}; an A|B image must be two halves of equal width"
            log.debug("skipping %s: %s", path, reason)
            skipped.append((str(path), reason))
            continue
        rel = path.relative_to(root)
        if is_deep(img) and path.suffix.lower() in DEEP_FORMATS:  # 16-bit halves, the file's own values
            ab16 = _to_uint16(deep_to_array(img))
            save_image16(ab16[:, : w // 2], out / "A" / rel)
            save_image16(ab16[:, w // 2:], out / "B" / rel)
            written += 1
            continue
        gray = img.mode in _GRAY_MODES or img.mode.startswith("I;")
        img = _converted(path, img, skipped, 1 if gray else 3)
        if img is None:
            continue
        save_image(img.crop((0, 0, w // 2, h)), out / "A" / rel)
        save_image(img.crop((w // 2, 0, w, h)), out / "B" / rel)
        written += 1
    log.info("split %d A|B image(s) into %s", written, out)
    return PrepareReport(written, skipped, [], out)


def split(
    src_dir: str | Path,
    out_dir: str | Path,
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
) -> PrepareReport:
    """Partition a folder into out/train, out/val and out/test, reproducibly for a given seed.

    ``val`` and ``test`` are fractions of the readable images (rounded); the rest is training.
    """
    val = _check_fraction("val", val)
    test = _check_fraction("test", test)
    if val + test >= 1.0:
        raise UsageError(
            f"--val {val} and --test {test} add up to {val + test:g}; they must add up to less "
            "than 1 so that images are left for training"
        )
    root, images = _source_images(src_dir)
    out = _check_out(out_dir, [root])
    skipped: list[tuple[str, str]] = []
    images = _shuffled(_readable(images, skipped), seed)
    n = len(images)
    n_val = min(round(n * val), n)
    n_test = min(round(n * test), n - n_val)
    parts = {
        "val": images[:n_val],
        "test": images[n_val : n_val + n_test],
        "train": images[n_val + n_test :],
    }
    written = sum(_copy_all(root, files, out / name) for name, files in parts.items())
    if n and not parts["train"]:
        log.warning("no images left for training in %s; lower --val/--test", out / "train")
    log.info(
        "split %d image(s) into %s: %d train, %d val, %d test",
        written, out, len(parts["train"]), n_val, n_test,
    )
    return PrepareReport(written, skipped, [], out)


def unpaired(
    a_dir: str | Path,
    b_dir: str | Path,
    out_dir: str | Path,
    test: float = 0.1,
    seed: int = 0,
) -> PrepareReport:
    """Lay out two unpaired domains as trainA/trainB/testA/testB, the CycleGAN folder layout.

    Each domain is split on its own (same seed), since unpaired domains need not match in size.
    """
    test = _check_fraction("test", test)
    a_root, a_images = _source_images(a_dir, "A")
    b_root, b_images = _source_images(b_dir, "B")
    out = _check_out(out_dir, [a_root, b_root])
    skipped: list[tuple[str, str]] = []
    written = 0
    for side, root, images in (("A", a_root, a_images), ("B", b_root, b_images)):
        images = _shuffled(_readable(images, skipped), seed)
        n_test = min(round(len(images) * test), len(images))
        written += _copy_all(root, images[:n_test], out / f"test{side}")
        written += _copy_all(root, images[n_test:], out / f"train{side}")
        log.info("domain %s: %d train, %d test", side, len(images) - n_test, n_test)
    log.info("wrote %d image(s) into %s", written, out)
    return PrepareReport(written, skipped, [], out)
