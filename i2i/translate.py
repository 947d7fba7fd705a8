"""The file pipeline of ``i2i translate``: inputs (files, folders, globs) planned into outputs, split
into shards, and translated with a :class:`~i2i.translator.Translator` while other threads read and
write the files.

Outputs keep their inputs' relative paths, names, formats, size, alpha channel and depth (16-bit in
gives 16-bit out where the format allows). Loading the generator is :mod:`i2i.translator`; the
image <-> tensor codecs are :mod:`i2i.data.codecs`.
"""

from __future__ import annotations

import glob
import itertools
import logging
import os
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from .data.codecs import input_half, prepare_image, tensor_to_image, tensor_to_uint16
from .data.images import (ALPHA_FORMATS, DEEP_FORMATS, IMAGE_EXTENSIONS, list_images, open_image, save_image,
                          save_image16, upright_size)
from .errors import FATAL_WRITE_ERRNOS, I2IError, ImageError, UsageError, first_line, os_error_message
from .tiling import TilePlan, plan_tiles
from .translator import Translator

log = logging.getLogger(__name__)


# --- files ---------------------------------------------------------------------------------------

@dataclass
class Job:
    src: Path
    dst: Path


@dataclass
class Summary:
    out: Path
    written: int = 0
    existing: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)


def glob_root(pattern: str) -> Path:
    """The folder a glob pattern reads: its leading components that hold no wildcard
    (``th/*.jpg`` -> ``th``, ``data/**/x?.png`` -> ``data``, ``*.png`` -> ``.``)."""
    parts = []
    for part in Path(pattern).parts:
        if any(c in part for c in "*?["):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def input_folders(inputs: list[str]) -> list[Path]:
    """The folders that ``inputs`` read from: each folder given, and each glob pattern's folder."""
    folders = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            folders.append(p)
        elif not os.path.lexists(p) and any(c in item for c in "*?["):
            folders.append(glob_root(item))
    return folders


def collect_inputs(inputs: list[str]) -> tuple[list[tuple[Path, Path]], Path]:
    """Expand files, folders (recursive) and globs into (path, relative output path) pairs, and
    return the folder that the default output goes beside.

    A file named on the command line (or matched by a glob) is taken whatever it turns out to be, so
    that an unreadable one (a broken or looping link, a file without read permission) is reported
    and skipped with the others rather than stopping the command.
    """
    pairs: list[tuple[Path, Path]] = []
    dirs = [Path(i) for i in inputs if Path(i).is_dir()]
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            prefix = Path(p.resolve().name) if len(dirs) > 1 else Path()
            pairs += [(f, prefix / f.relative_to(p)) for f in list_images(p)]
        elif os.path.lexists(p):
            pairs.append((p, Path(p.name)))
        elif any(c in item for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            pairs += [(m, Path(m.name)) for m in matches if not m.is_dir()]
            if not matches:
                raise UsageError(f"{item}: the pattern matches no files")
        else:
            raise UsageError(f"{item}: no such file or folder")
    if not pairs:
        raise UsageError(f"{', '.join(inputs)}: no images found ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    seen: dict[Path, Path] = {}
    for src, rel in pairs:
        if rel in seen and os.path.abspath(seen[rel]) != os.path.abspath(src):
            raise UsageError(f"{src} and {seen[rel]} would both be written as {rel}; translate them separately")
        seen[rel] = src
    base = dirs[0] if len(dirs) == 1 and len(inputs) == 1 else pairs[0][0].parent
    return pairs, base


def in_shard(rel: Path, shard: tuple[int, int]) -> bool:
    """Whether the output at relative path ``rel`` belongs to shard ``(i, n)``: CRC-32 of the path,
    modulo n. Each file's shard depends on its own name only, so machines that list a folder at
    different moments (while files are still arriving) still never take the same file twice. The
    split is even only on average: facades/test's 106 files split 44/62 in two, 40/35/31 in three."""
    i, n = shard
    return zlib.crc32(rel.as_posix().encode()) % n == i


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N), with 0 <= I < N."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard {text!r}: give I/N, e.g. 0/4 for the first of four shards") from None
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard {text}: I must be 0 to {max(n, 1) - 1} (shards count from 0)")
    return i, n


def plan(inputs: list[str], out: str | Path | None, run_name: str) -> tuple[list[Job], Path]:
    """Decide where each output goes; refuse any output that could land on or inside an input
    folder (a folder given, or the folder a glob pattern reads) or on an input file."""
    pairs, base = collect_inputs(inputs)
    base = base.resolve()
    out_dir = Path(out) if out is not None else base.parent / f"{base.name}_{run_name}"
    out_resolved = out_dir.resolve()
    for folder in input_folders(inputs):
        p = folder.resolve()
        if out_resolved == p or p in out_resolved.parents:
            raise UsageError(f"--out {out_dir} is inside the input folder {folder}; choose a folder outside it")
    jobs = [Job(src, out_dir / rel) for src, rel in pairs]
    sources = {Path(os.path.abspath(j.src)) for j in jobs} | {_resolved(j.src) for j in jobs}
    for j in jobs:
        if _resolved(j.dst) in sources:
            raise UsageError(f"--out {out_dir} would overwrite the input {j.dst}; choose another --out")
    return jobs, out_dir


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return Path(os.path.abspath(path))


@dataclass
class Tiling:
    """``--tile``, ``--overlap``, ``--max-memory`` and ``--exact-stats`` (see :func:`i2i.tiling.plan_tiles`)."""

    tile: int | None = None  # None: auto
    overlap: int | None = None  # None: DEFAULT_OVERLAP, or less for a small tile
    max_memory: int | None = None
    exact_stats: bool = False


@dataclass
class Tiled:
    """What :func:`_read` gives for an image to translate tile by tile."""

    plan: TilePlan


def _read(job: Job, channels: int, size: int | None, ab: bool, direction: str | None,
          translator: Translator | None = None, tiling: Tiling | None = None):
    """The model input of one job's file, or :class:`Tiled` if it is to be tiled; any failure is an
    :class:`ImageError` naming the file."""
    try:
        if tiling is not None and size is None:
            w, h = upright_size(job.src)  # the header only (and the pixel limit)
            plan = plan_tiles(translator, w // 2 if ab else w, h, tiling.tile, tiling.overlap, tiling.max_memory,
                              tiling.exact_stats)
            if plan is not None:
                return Tiled(plan)
        img = open_image(job.src)
        if ab:
            img = input_half(img, direction, job.src)
        return prepare_image(img, channels, size)
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001  (whatever one file does, it fails alone)
        raise ImageError(f"{job.src}: {_reason(e)}; remove or replace the file") from None


def _reason(e: BaseException) -> str:
    """One line for an unexpected error of one file."""
    if isinstance(e, MemoryError):
        return "not enough memory for this image"
    if isinstance(e, OSError):
        return os_error_message(e).removeprefix(f"{e.filename}: " if getattr(e, "filename", None) else "")
    return f"cannot translate ({type(e).__name__}: {first_line(e)})"


def _write(y: torch.Tensor, alpha: Image.Image | None, deep: bool, dst: Path) -> None:
    """Write one output: 16-bit where the input was and the format allows, else 8-bit with alpha."""
    if deep and dst.suffix.lower() in DEEP_FORMATS:
        save_image16(tensor_to_uint16(y), dst)
        return
    img = tensor_to_image(y)
    if alpha is not None and dst.suffix.lower() in ALPHA_FORMATS:
        img = img.convert("RGBA" if img.mode == "RGB" else "LA")
        img.putalpha(alpha)
    save_image(img, dst)


def _translate_tiled(translator: Translator, job: Job, plan: TilePlan, ab: bool,
                     progress: Callable[[int, int], None] | None) -> None:
    """Translate one file tile by tile, reading regions and writing rows (:mod:`i2i.data.regions`)."""
    from .data.regions import open_source, write_rows
    from .tiling import tiled_rows

    half = None if not ab else "B" if translator.direction == "BtoA" else "A"
    source = open_source(job.src, translator.in_channels, half)
    log.info("%s: translating in tiles", job.src)
    rows = tiled_rows(translator, source, plan, progress)
    write_rows(job.dst, rows, source.height, source.width, deep=source.deep, alpha=source.alpha_at)


def translate_files(translator: Translator, inputs: list[str], out: str | Path | None = None,
                    run_name: str = "i2i", size: int | None = None, batch_size: int | None = None, overwrite: bool = False,
                    ab: bool = False, progress: Callable[[int, int], None] | None = None,
                    io_threads: int = 2, shard: tuple[int, int] | None = None, tiling: Tiling | None = None,
                    tile_progress: Callable[[int, int], None] | None = None) -> Summary:
    """Translate every input image into ``out`` (keeping relative paths, names and formats).

    With ``ab`` the inputs are side-by-side A|B pairs (such as facades/test) and only the half the
    generator takes is translated (A for AtoB, B for BtoA), so outputs line up with the other half.

    Existing outputs are kept (counted in ``existing``) unless ``overwrite``; unreadable inputs are
    reported in ``failed`` and skipped. ``progress(done, total)`` is called as work proceeds.

    Decoding and encoding run on ``io_threads`` threads while the network runs; consecutive images of
    equal size share a batch (``batch_size`` default: 1 on CPU, where NNPACK's kernels lose their
    advantage in batches: resnet_9blocks at 256x256 measured 1.6 images/s one at a time and 1.0 in
    batches of 4; 8 on GPUs). At most a few batches are in flight, so memory does not grow with the
    number of images.

    ``shard=(i, n)`` keeps only the inputs of shard i of n (see :func:`in_shard`): n processes or
    machines, each given its own i and the same folders, convert every input exactly once.

    ``tiling`` (default: ``Tiling()``, auto) decides per image whether it is translated whole or
    tile by tile in bounded memory (:func:`i2i.tiling.plan_tiles`); a tiled image is read by regions
    and written by rows, one at a time, with ``tile_progress(done, total)`` counting its tiles. With
    ``size`` nothing is tiled.
    """
    if batch_size is None:
        batch_size = 1 if translator.device.type == "cpu" else 8
    if size is not None and size % translator.multiple:
        raise UsageError(f"--size {size} does not suit this generator, which needs a multiple of {translator.multiple}")
    if size is not None:
        from .data.images import check_side

        check_side("--size", size)
    tiling = Tiling() if tiling is None else tiling
    from .tiling import check_overlap

    check_overlap(tiling.overlap)
    if size is not None and tiling.tile is not None:
        raise UsageError(f"--size {size} resizes every image, so there is nothing to tile; drop --tile or --size")
    if tiling.tile is not None:
        from .tiling import check_tiling, default_overlap

        check_tiling(translator, tiling.tile,
                     default_overlap(translator, tiling.tile) if tiling.overlap is None else tiling.overlap)
    if size is None:
        from .tiling import bytes_per_pixel

        bytes_per_pixel(translator)  # measured here, before the reader threads ask for it (it hooks the network)
    jobs, out_dir = plan(inputs, out, run_name)
    if shard is not None and shard[1] > 1:
        count = len(jobs)
        jobs = [j for j in jobs if in_shard(j.dst.relative_to(out_dir), shard)]
        log.info("shard %d/%d: %d of %d input(s)", *shard, len(jobs), count)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out_dir}: cannot create the folder ({os_error_message(e)})") from None
    if not os.access(out_dir, os.W_OK):
        raise UsageError(f"--out {out_dir}: permission denied; choose a folder you can write to")
    from .io import remove_stale_temps

    remove_stale_temps(out_dir, recursive=True)  # left by a killed run (never a live writer's); logged
    summary = Summary(out_dir)
    todo = []
    for job in jobs:
        if job.dst.exists() and not overwrite:
            summary.existing += 1
        else:
            todo.append(job)
    if summary.existing:
        log.info("%d output(s) already exist in %s and are kept (--overwrite redoes them)", summary.existing, out_dir)
    total, done = len(jobs), summary.existing
    if progress:
        progress(done, total)

    window = 2 * batch_size + io_threads  # reads and writes in flight
    pending: list[tuple[Job, torch.Tensor, Image.Image | None, bool]] = []
    reads: deque[tuple[Job, Future]] = deque()
    writes: deque[tuple[Job, Future]] = deque()
    queue = iter(todo)

    def advance():
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    def settle(job: Job, work: Callable[[], object], where: Path) -> None:
        """Run ``work()``, the last step of one job (its write, or its whole tiled translation), and
        count the job: written, or reported under ``where`` and skipped. A full disk or an
        unwritable folder stops the command, since every later write would fail the same way."""
        try:
            work()
            summary.written += 1
        except OSError as e:
            if e.errno in FATAL_WRITE_ERRNOS:
                raise I2IError(f"{job.dst}: {os_error_message(e)} ({summary.written} image(s) were "
                               "written; rerun the same command to continue)") from None
            summary.failed.append((job.dst, f"{job.dst}: {os_error_message(e)}"))
        except ImageError as e:
            summary.failed.append((where, str(e)))
        except Exception as e:  # noqa: BLE001  (an encoder's or one tiled image's error is its alone)
            log.debug("%s failed", where, exc_info=True)
            summary.failed.append((where, f"{where}: {_reason(e)}"))
        advance()

    def finish_writes(keep: int):
        while writes and (len(writes) > keep or writes[0][1].done()):
            job, fut = writes.popleft()
            settle(job, fut.result, job.dst)

    def run_network(items):
        """Outputs for ``items``; a batch that fails is retried one image at a time, and an image that
        fails alone is reported and skipped (yields None for it)."""
        try:
            yield from translator(torch.stack([t for _, t, _, _ in items]))
            return
        except Exception as e:  # noqa: BLE001  (one image's failure must not stop the others)
            if len(items) > 1:
                for item in items:
                    yield from run_network([item])
                return
            log.debug("translating %s failed", items[0][0].src, exc_info=True)
            summary.failed.append((items[0][0].src, f"{items[0][0].src}: {_reason(e)}"))
            yield None

    def flush():
        if pending:
            for (job, _, alpha, deep), y in zip(pending, list(run_network(pending))):
                if y is None:
                    advance()
                    continue
                writes.append((job, pool.submit(_write, y, alpha, deep, job.dst)))
            pending.clear()
        finish_writes(keep=window)

    with ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="i2i-io") as pool:
        for job in itertools.islice(queue, window):
            reads.append((job, pool.submit(_read, job, translator.in_channels, size, ab, translator.direction,
                                           translator, tiling)))
        while reads:
            job, fut = reads.popleft()
            for nxt in itertools.islice(queue, 1):
                reads.append((nxt, pool.submit(_read, nxt, translator.in_channels, size, ab, translator.direction,
                                               translator, tiling)))
            try:
                got = fut.result()
            except ImageError as e:
                summary.failed.append((job.src, str(e)))
                advance()
                continue
            if isinstance(got, Tiled):
                flush()
                finish_writes(keep=0)
                settle(job, lambda: _translate_tiled(translator, job, got.plan, ab, tile_progress), job.src)
                continue
            x, alpha, deep = got
            if pending and (pending[0][1].shape != x.shape or len(pending) >= batch_size):
                flush()
            pending.append((job, x, alpha, deep))
        flush()
        finish_writes(keep=0)
    return summary
