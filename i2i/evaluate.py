"""``i2i eval``: score a run's generators on held-out images and write ``eval.json`` in the run folder.

- pix2pix runs, on paired data (A|B images, or A/ and B/ folders): L1, PSNR and SSIM of each output
  against its target; with a palette, label-map accuracy and mean IoU.
- Unpaired runs (CycleGAN, DualGAN, CUT), on the two test folders: the identity L1 of each
  generator (how much it changes images already of its target domain) and, for runs with a
  generator each way, the round-trip (cycle) L1.
- Either, given pytorch-fid's Inception weights: FID and KID between outputs and real images of the
  target domain.

Test images are scored at the size the run trained at (:func:`scoring_size`): a run trained on
128-pixel crops of images resized to 143 is scored on test images resized to 128, as the
reference's test.py does (its test options set load_size to crop_size), not at their own 256.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import metrics
from .data.images import array_to_tensor, read_array
from .data.transforms import Augment, resize
from .data.unpaired import readable_images
from .errors import UsageError
from .io import write_json
from .runs import Run
from .translator import load_translator

log = logging.getLogger(__name__)

EVAL_FILE = "eval.json"


# the smallest side ``--size`` may give: SSIM's 11x11 Gaussian window (Wang et al. 2004). Below it the
# scores stop meaning anything: at 1x1 a model after one training step scored SSIM 0.9997, PSNR 38.6
MIN_SCORING_SIDE = 11


def check_scoring_size(size: int | None) -> None:
    """Refuse a ``--size`` (None: not given; 0: the images' own size) that cannot be scored: below
    :data:`MIN_SCORING_SIDE`, or over the pixel limit; raises :class:`~i2i.errors.UsageError`."""
    if size is None or size == 0:
        return
    if size < MIN_SCORING_SIDE:
        raise UsageError(f"--size {size} cannot be scored: give a side of {MIN_SCORING_SIDE} pixels or more (SSIM's "
                         "window), or 0 for the images' own size")
    from .data.images import check_side

    check_side("--size", size)


def scoring_size(preprocess: str | None, crop_size: int | None) -> int | None:
    """The side that test images are resized to (square) before a run's generators translate them for
    scoring: the run's ``crop_size`` when it trained on ``resize_and_crop`` crops (the reference's
    default, whose test.py then resizes to crop_size: options/test_options.py sets load_size to
    crop_size); None, the images' own size, for the other preprocess options and for imported
    generators, which carry no training options."""
    return crop_size if preprocess == "resize_and_crop" and crop_size else None


def read_scored(path: str | Path, channels: int, size: int | None) -> torch.Tensor:
    """A test image as a 1 x C x H x W tensor in [-1, 1], resized to ``size`` x ``size`` by the training
    resize (:func:`i2i.data.transforms.resize`) when ``size`` is given (see :func:`scoring_size`)."""
    arr = read_array(path, channels)
    return array_to_tensor(resize(arr, size, size) if size else arr)[None]


def _unit(t: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]"""
    return (t.float().clamp(-1, 1) + 1) / 2


def _rgb8(u: torch.Tensor) -> np.ndarray:
    """CxHxW in [0, 1] -> HxWx3 uint8"""
    return (u.expand(3, -1, -1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


class _Distribution:
    """Inception features of two image sets, for FID and KID."""

    def __init__(self, inception):
        self.inception, self.fake, self.real = inception, [], []

    def add(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        if self.inception is not None:
            self.fake.append(self.inception(_unit(fake).expand(-1, 3, -1, -1)).numpy())
            self.real.append(self.inception(_unit(real).expand(-1, 3, -1, -1)).numpy())

    def scores(self, prefix: str = "") -> dict[str, float]:
        if self.inception is None or not self.fake:
            return {}
        fake, real = np.concatenate(self.fake), np.concatenate(self.real)
        if len(fake) < 2:
            return {}
        return {f"{prefix}FID": metrics.fid_from_features(fake, real),
                f"{prefix}KID": metrics.kid_from_features(fake, real, subset_size=min(1000, len(fake)))}


def evaluate_paired(translator, data, palette: np.ndarray | None, inception,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """Scores of ``translator`` on ``data``, a :class:`~i2i.data.paired.PairedDataset` without augmentation."""
    sums = {"L1": 0.0, "PSNR": 0.0, "SSIM": 0.0}
    labels = metrics.LabelScores(len(palette)) if palette is not None else None
    dist = _Distribution(inception)
    for i in range(len(data)):
        item = data[(i, 0)]
        x, target = item["A"][None], item["B"][None]
        out = translator(x)
        o, t = _unit(out[0]), _unit(target[0])
        sums["L1"] += metrics.l1(o, t)
        sums["PSNR"] += min(metrics.psnr(o, t), 100.0)  # an exact match would be inf: cap it for the mean
        sums["SSIM"] += metrics.ssim(o, t)
        if labels is not None:
            labels.add(metrics.to_labels(_rgb8(o), palette), metrics.to_labels(_rgb8(t), palette))
        dist.add(out, target)
        if progress:
            progress(i + 1, len(data))
    n = len(data)
    scores = {k: v / n for k, v in sums.items()}
    if labels is not None:
        scores.update(labels.scores())
    scores.update(dist.scores())
    scores["images"] = n
    return scores


def paired_data(a: str, b: str | None, direction: str, in_channels: int, out_channels: int, size: int | None):
    """Test pairs as a PairedDataset; with ``size``, both images of a pair resized to ``size`` x ``size``
    by the training resize (:func:`i2i.data.transforms.resize`)."""
    from .data.paired import PairedDataset

    transform = Augment("resize_and_crop", size, size, flip=False, multiple=1) if size else None
    return PairedDataset(a, b, direction, in_channels, out_channels, transform)


def evaluate_unpaired(g_ab, g_ba, files_a: list[Path], files_b: list[Path], inception,
                      progress: Callable[[int, int], None] | None = None, size: int | None = None) -> dict[str, float]:
    """Identity L1 of each generator given (and FID/KID of each direction) on two image lists, and
    the round-trip L1 when there are both; ``g_ba`` may be None (one-way recipes such as CUT). With
    ``size``, every image is first resized to ``size`` x ``size`` (see :func:`scoring_size`)."""
    def tensors(files, channels):
        for f in files:
            yield read_scored(f, channels, size)

    total, done = len(files_a) + len(files_b), 0
    scores: dict[str, float] = {}
    for name, files, forward, backward, others in (("A", files_a, g_ab, g_ba, files_b), ("B", files_b, g_ba, g_ab, files_a)):
        cycle = identity = 0.0
        dist = _Distribution(inception if forward is not None else None)
        channels = forward.in_channels if forward is not None else backward.spec.get("out_channels", 3)
        other_images = (tensors(others * (len(files) // len(others) + 1), forward.spec.get("out_channels", 3))
                        if forward is not None else None)
        if backward is None and inception is None:  # a one-way run's source side: nothing to score without FID
            done += len(files)
            if progress:
                progress(done, total)
            continue
        for x in tensors(files, channels):
            if forward is not None:
                fake = forward(x)
                if backward is not None:
                    cycle += metrics.l1(_unit(backward(fake)), _unit(x))
                if inception is not None:
                    dist.add(fake, next(other_images))
            if backward is not None:
                identity += metrics.l1(_unit(backward(x)), _unit(x))  # the generator into x's domain, given x
            done += 1
            if progress:
                progress(done, total)
        other = "B" if name == "A" else "A"
        if forward is not None and backward is not None:
            scores[f"cycle_L1_{name}"] = cycle / len(files)
        if backward is not None:
            scores[f"identity_L1_{name}"] = identity / len(files)
        scores.update(dist.scores(prefix=f"{name}to{other}_"))
    if "cycle_L1_A" in scores and "cycle_L1_B" in scores:
        scores["cycle_L1"] = (scores["cycle_L1_A"] + scores["cycle_L1_B"]) / 2
    scores["images"] = total
    return scores


def evaluate(run_dir: str | Path, a: str, b: str | None = None, palette_file: str | None = None,
             inception_weights: str | None = None, runtime=None,
             progress: Callable[[int, int], None] | None = None, size: int | None = None,
             eval_mode: bool = True) -> dict:
    """Score the run in ``run_dir`` on ``a`` (and ``b``); write and return the ``eval.json`` record.

    ``size``: the side test images are resized to before scoring; None: :func:`scoring_size` of the
    run's options; 0: the images' own size. ``eval_mode=False`` keeps dropout and batch statistics
    on, as the reference's test.py does without ``--eval``."""
    run = Run(run_dir)
    doc = run.read_config()
    mode = doc.get("mode")
    from . import modes

    task = modes.run_task(doc)
    if task == "folder":
        raise UsageError(f"{run.path} is a {mode} run; i2i eval scores translation runs "
                         f"({', '.join(modes.translation_names())})")
    check_scoring_size(size)
    size = scoring_size(doc.get("preprocess"), doc.get("crop_size")) if size is None else size or None
    inception = None
    if inception_weights:
        from .inception import load_inception

        inception = load_inception(inception_weights)
    palette = metrics.read_palette(palette_file) if palette_file else None
    started = time.perf_counter()
    if task == "unpaired":
        if b is None:
            raise UsageError(f"{run.path} is an unpaired ({mode}) run: give both test folders, --a DIR --b DIR")
        if palette is not None:
            raise UsageError("--palette needs paired targets; it scores paired runs")
        directions = run.directions(doc)
        g_ab, g_ba = (load_translator(run.path, d, runtime=runtime, eval_mode=eval_mode) if d in directions else None
                      for d in ("AtoB", "BtoA"))
        scores = evaluate_unpaired(g_ab, g_ba, readable_images(a, "--a"), readable_images(b, "--b"), inception, progress,
                                   size)
    else:
        translator = load_translator(run.path, runtime=runtime, eval_mode=eval_mode)
        data = paired_data(a, b, doc.get("direction", "AtoB"), translator.in_channels,
                           translator.spec.get("out_channels", 3), size)
        scores = evaluate_paired(translator, data, palette, inception, progress)
    record = {"run": str(run.path), "mode": mode, "a": a, "b": b, "palette": palette_file, "size": size,
              "eval_mode": eval_mode, "step": _last_step(run), "seconds": round(time.perf_counter() - started, 1), "scores": scores}
    write_json(run.path / EVAL_FILE, record)
    return record


def _last_step(run: Run) -> int | None:
    steps = [r["step"] for r in run.read_log() if "step" in r]
    return max(steps) if steps else None
