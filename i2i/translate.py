"""Inference: load a generator from a run folder or a weights file, and translate images.

Images are translated at their own resolution: each is reflect-padded up to the multiple its
generator needs, translated, and cropped back, so a 301x207 photo comes back 301x207.
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

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import nets
from .data.images import DEEP_FORMATS, DEEP_MODES, deep_to_array, list_images, open_image, save_image, save_image16, to_mode
from .errors import FATAL_WRITE_ERRNOS, I2IError, ImageError, UsageError, os_error_message
from .runs import Run, load_weights, newest_run
from .runtime import Runtime, resolve

log = logging.getLogger(__name__)

ALPHA_FORMATS = {".png", ".webp", ".tif", ".tiff"}


def tensor_to_image(t: torch.Tensor) -> Image.Image:
    """CxHxW in [-1, 1] -> PIL image (L or RGB)."""
    arr = ((t.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return Image.fromarray(arr[0]) if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0))


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    arr = np.asarray(img)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()).float().div_(127.5).sub_(1.0)


@dataclass
class Translator:
    """A generator ready for inference, and what it needs from its input."""

    net: torch.nn.Module
    spec: dict
    direction: str | None
    source: str
    runtime: Runtime = field(default_factory=lambda: Runtime(torch.device("cpu")))

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def in_channels(self) -> int:
        return self.spec.get("in_channels", 3)

    @property
    def multiple(self) -> int:
        return self.net.size_multiple

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Translate a Bx C x H x W batch in [-1, 1] of any size (padded and cropped back)."""
        h, w = batch.shape[-2:]
        m = self.multiple
        ph, pw = -h % m, -w % m
        x = batch.to(self.device, self.runtime.dtype)
        if self.runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if ph or pw:
            pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
            reflect_ok = max(pad[:2]) < w and max(pad[2:]) < h
            x = F.pad(x, pad, mode="reflect" if reflect_ok else "replicate")
        y = self.net(x)
        return y[..., ph // 2: ph // 2 + h, pw // 2: pw // 2 + w].float().cpu()


def generator_from_weights(spec: dict, state_dict: dict, device="cpu", eval_mode: bool = True) -> torch.nn.Module:
    """A generator from ``nets.create`` arguments and weights that must fit it exactly."""
    net = nets.create(**spec, init=None)
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise I2IError(f"weights do not fit a {spec['name']} generator: {str(e).splitlines()[0]}") from None
    return net.to(device).train(not eval_mode)


def load_translator(model: str | Path | None = None, direction: str | None = None,
                    checkpoints_dir: str | Path = "checkpoints", runtime: Runtime | None = None,
                    eval_mode: bool = True) -> Translator:
    """Load the generator for ``direction`` from a run folder, a .safetensors file or a reference .pth.

    ``model=None`` takes the newest run under ``checkpoints_dir``. ``runtime`` says where and in what
    precision to run (default: :func:`i2i.runtime.resolve`'s auto choice, at torch's current thread
    count). ``eval_mode=False`` keeps dropout and batch statistics on, as the reference's test script
    does without ``--eval``.
    """
    if runtime is None:
        runtime = resolve(threads=torch.get_num_threads())
    if model is None:
        found = newest_run(checkpoints_dir)
        if found is None:
            raise UsageError(f"no trained runs in {checkpoints_dir}/; train one or pass --model RUN_OR_FILE")
        model = found
    path = Path(model)
    if not path.exists():
        raise UsageError(f"--model {path}: no such run folder or file")
    if path.is_dir():
        doc = Run(path).read_config()
        generators = doc.get("generators", {})
        available = {d: name for name, g in generators.items() for d in g["directions"]}
        if not available:
            raise UsageError(f"{path} is a {doc.get('mode')} run, which generates images rather than "
                             "translating them; use i2i sample, i2i interpolate (or i2i reconstruct for a vae run)")
        if direction is None:
            direction = "AtoB" if "AtoB" in available else next(iter(available))
        if direction not in available:
            raise UsageError(f"{path} translates {', '.join(available)} only; drop --direction {direction}")
        g = generators[available[direction]]
        state_dict, _ = load_weights(path / g["file"])
        spec = g["spec"]
    elif path.suffix == ".safetensors":
        state_dict, spec = load_weights(path)
        if spec is None:
            raise UsageError(f"{path}: no i2i metadata; pass the run folder instead of the file")
    elif path.suffix in (".pth", ".pt"):
        from .reference import read_generator

        state_dict, spec = read_generator(path)
        direction = direction or "AtoB"
    else:
        raise UsageError(f"--model {path}: expected a run folder, .safetensors or a reference .pth file")
    net = generator_from_weights(spec, state_dict, runtime.device, eval_mode)
    return Translator(runtime.prepare(net, training=False), spec, direction, str(path), runtime)


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


def collect_inputs(inputs: list[str]) -> tuple[list[tuple[Path, Path]], Path]:
    """Expand files, folders (recursive) and globs into (path, relative output path) pairs, and
    return the folder that the default output goes beside."""
    pairs: list[tuple[Path, Path]] = []
    dirs = [Path(i) for i in inputs if Path(i).is_dir()]
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            prefix = Path(p.resolve().name) if len(dirs) > 1 else Path()
            pairs += [(f, prefix / f.relative_to(p)) for f in list_images(p)]
        elif p.is_file():
            pairs.append((p, Path(p.name)))
        elif any(c in item for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            pairs += [(m, Path(m.name)) for m in matches if m.is_file()]
            if not matches:
                raise UsageError(f"{item}: the pattern matches no files")
        else:
            raise UsageError(f"{item}: no such file or folder")
    if not pairs:
        raise UsageError(f"{', '.join(inputs)}: no images found (.jpg, .png, .bmp, .tif, .webp)")
    seen: dict[Path, Path] = {}
    for src, rel in pairs:
        if rel in seen and seen[rel].resolve() != src.resolve():
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
    """Decide where each output goes; refuse any output that could land on or inside an input."""
    pairs, base = collect_inputs(inputs)
    base = base.resolve()
    out_dir = Path(out) if out is not None else base.parent / f"{base.name}_{run_name}"
    out_resolved = out_dir.resolve()
    for item in inputs:
        p = Path(item).resolve()
        if p.is_dir() and (out_resolved == p or p in out_resolved.parents):
            raise UsageError(f"--out {out_dir} is inside the input folder {item}; choose a folder outside it")
    jobs = [Job(src, out_dir / rel) for src, rel in pairs]
    sources = {j.src.resolve() for j in jobs}
    for j in jobs:
        if j.dst.resolve() in sources:
            raise UsageError(f"--out {out_dir} would overwrite the input {j.dst}; choose another --out")
    return jobs, out_dir


def input_half(img: Image.Image, direction: str | None, path: Path) -> Image.Image:
    """The half of a side-by-side A|B image that a generator for ``direction`` takes."""
    w, h = img.size
    if w % 2:
        raise ImageError(f"{path}: width {w} is odd, so it is not an A|B pair; drop --ab")
    return img.crop((w // 2, 0, w, h)) if direction == "BtoA" else img.crop((0, 0, w // 2, h))


def prepare_image(img: Image.Image, channels: int, size: int | None) -> tuple[torch.Tensor, Image.Image | None, bool]:
    """Model input tensor for ``img``, its alpha channel (or None), and whether it is 16-bit
    grayscale (read without rounding to 8 bits)."""
    if img.mode in DEEP_MODES:
        if size:
            img = Image.fromarray(deep_to_array(img)).resize((size, size), Image.BICUBIC)
        x = torch.from_numpy(deep_to_array(img) if img.mode != "F" else np.asarray(img).clip(0, 1))
        return (x * 2 - 1)[None].expand(channels, -1, -1).contiguous(), None, True
    alpha = img.getchannel("A") if img.mode in ("RGBA", "LA") else None
    img = to_mode(img, channels)
    if size:
        img = img.resize((size, size), Image.BICUBIC)
        alpha = alpha.resize((size, size), Image.BICUBIC) if alpha is not None else None
    return image_to_tensor(img), alpha, False


def _read(job: Job, channels: int, size: int | None, ab: bool, direction: str | None):
    img = open_image(job.src)
    if ab:
        img = input_half(img, direction, job.src)
    return prepare_image(img, channels, size)


def tensor_to_uint16(t: torch.Tensor) -> np.ndarray:
    """CxHxW in [-1, 1] -> HxW (one channel) or HxWxC uint16 array."""
    arr = ((t.detach().float().cpu().clamp(-1, 1) + 1) * 32767.5).round().to(torch.int32).numpy().astype(np.uint16)
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


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


def translate_files(translator: Translator, inputs: list[str], out: str | Path | None = None,
                    run_name: str = "i2i", size: int | None = None, batch_size: int | None = None, overwrite: bool = False,
                    ab: bool = False, progress: Callable[[int, int], None] | None = None,
                    io_threads: int = 2, shard: tuple[int, int] | None = None) -> Summary:
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
    """
    if batch_size is None:
        batch_size = 1 if translator.device.type == "cpu" else 8
    if size is not None and size % translator.multiple:
        raise UsageError(f"--size {size} does not suit this generator, which needs a multiple of {translator.multiple}")
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

    def finish_writes(keep: int):
        nonlocal done
        while writes and (len(writes) > keep or writes[0][1].done()):
            job, fut = writes.popleft()
            try:
                fut.result()
                summary.written += 1
            except OSError as e:
                if e.errno in FATAL_WRITE_ERRNOS:  # every later write would fail the same way
                    raise I2IError(f"{job.dst}: {os_error_message(e)} ({summary.written} image(s) were "
                                   "written; rerun the same command to continue)") from None
                summary.failed.append((job.dst, f"{job.dst}: {os_error_message(e)}"))
            except ImageError as e:
                summary.failed.append((job.dst, str(e)))
            done += 1
            if progress:
                progress(done, total)

    def flush():
        if pending:
            outputs = translator(torch.stack([t for _, t, _, _ in pending]))
            for (job, _, alpha, deep), y in zip(pending, outputs):
                writes.append((job, pool.submit(_write, y, alpha, deep, job.dst)))
            pending.clear()
        finish_writes(keep=window)

    with ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="i2i-io") as pool:
        for job in itertools.islice(queue, window):
            reads.append((job, pool.submit(_read, job, translator.in_channels, size, ab, translator.direction)))
        while reads:
            job, fut = reads.popleft()
            for nxt in itertools.islice(queue, 1):
                reads.append((nxt, pool.submit(_read, nxt, translator.in_channels, size, ab, translator.direction)))
            try:
                x, alpha, deep = fut.result()
            except ImageError as e:
                summary.failed.append((job.src, str(e)))
                done += 1
                if progress:
                    progress(done, total)
                continue
            if pending and (pending[0][1].shape != x.shape or len(pending) >= batch_size):
                flush()
            pending.append((job, x, alpha, deep))
        flush()
        finish_writes(keep=0)
    return summary
