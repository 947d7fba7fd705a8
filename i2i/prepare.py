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

from PIL import Image

from .data.images import IMAGE_EXTENSIONS, list_images, load_image, open_image, save_image, to_mode
from .errors import ImageError, UsageError

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
            log.warning("skipping %s: %s", path, _reason(e, path))
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
            log.warning("skipping %s: %s", path, reason)
            skipped.append((str(path), reason))
        else:
            keyed[key] = path
    return keyed


def _load(path: Path, skipped: list[tuple[str, str]], channels: int = 3) -> Image.Image | None:
    try:
        return load_image(path, channels)
    except ImageError as e:
        log.warning("skipping %s: %s", path, _reason(e, path))
        skipped.append((str(path), _reason(e, path)))
        return None


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
    """
    a_root, a_images = _source_images(a_dir, "A")
    b_root, b_images = _source_images(b_dir, "B")
    out = _check_out(out_dir, [a_root, b_root])
    skipped: list[tuple[str, str]] = []
    a_by_key = _by_stem(a_root, a_images, skipped)
    b_by_key = _by_stem(b_root, b_images, skipped)

    unmatched = [a_by_key[k].relative_to(a_root).as_posix() for k in a_by_key if k not in b_by_key]
    unmatched += [b_by_key[k].relative_to(b_root).as_posix() for k in b_by_key if k not in a_by_key]
    for rel in unmatched:
        log.warning("no partner for %s; left out", rel)

    out.mkdir(parents=True, exist_ok=True)
    written = resized = 0
    for key, a_path in a_by_key.items():
        b_path = b_by_key.get(key)
        if b_path is None:
            continue
        a_img = _load(a_path, skipped)
        b_img = _load(b_path, skipped)
        if a_img is None or b_img is None:
            continue
        if b_img.size != a_img.size:
            log.debug("resizing %s from %dx%d to %dx%d", b_path, *b_img.size, *a_img.size)
            b_img = b_img.resize(a_img.size, Image.Resampling.BICUBIC)
            resized += 1
        w, h = a_img.size
        ab = Image.new("RGB", (2 * w, h))
        ab.paste(a_img, (0, 0))
        ab.paste(b_img, (w, 0))
        save_image(ab, out / a_path.relative_to(a_root))
        written += 1
    if resized:
        log.info("resized %d B image(s) to the size of their A partner (bicubic)", resized)
    log.info("combined %d pair(s) into %s", written, out)
    return PrepareReport(written, skipped, unmatched, out)


def split_ab(ab_dir: str | Path, out_dir: str | Path) -> PrepareReport:
    """Cut A|B images back into out/A and out/B, e.g. to train CycleGAN on a pix2pix dataset.

    Grayscale stays grayscale; anything else becomes RGB. An odd width has no exact middle, so
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
            log.warning("skipping %s: %s", path, _reason(e, path))
            skipped.append((str(path), _reason(e, path)))
            continue
        gray = img.mode in _GRAY_MODES or img.mode.startswith("I;")
        img = to_mode(img, 1 if gray else 3)
        w, h = img.size
        if w % 2:
            reason = f"odd width {w}; an A|B image must be two halves of equal width"
            log.warning("skipping %s: %s", path, reason)
            skipped.append((str(path), reason))
            continue
        rel = path.relative_to(root)
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
