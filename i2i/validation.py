"""Validation during training: score the generators on held-out images every ``--val-every`` steps,
log the scores, and keep the best checkpoint beside the latest.

Held-out images come from ``--val`` (pix2pix: a folder of pairs; cycle, dual: domain A, with
``--val-b`` for domain B) or from ``--val-fraction`` of the training images, set aside by the seed
before training starts (they are then never trained on). The scores are those of ``i2i eval``, at
the same size (:func:`i2i.evaluate.scoring_size`).
The best checkpoint, by ``--best-metric`` (default: L1 for pix2pix, the mean round-trip L1 for
cycle and dual), is written to ``<run>/best/``, a run folder of its own that ``i2i translate
--model <run>/best`` loads.
"""

from __future__ import annotations

import logging
import random

from .errors import UsageError
from .translator import Translator

log = logging.getLogger(__name__)

HIGHER_IS_BETTER = ("PSNR", "SSIM", "accuracy", "iou")


def higher_is_better(metric: str) -> bool:
    return any(word.lower() in metric.lower() for word in HIGHER_IS_BETTER)


def hold_out(dataset, fraction: float, seed: int):
    """Move ``fraction`` of ``dataset``'s images (chosen by ``seed``) out of it; returns what was held
    out: paired items for a PairedDataset, (files_a, files_b) for an UnpairedDataset."""
    rng = random.Random(seed)

    def split(items: list) -> tuple[list, list]:
        n = max(1, round(len(items) * fraction))
        if n >= len(items):
            raise UsageError(f"--val-fraction {fraction} leaves no training images ({len(items)} in all)")
        chosen = set(rng.sample(range(len(items)), n))
        return ([x for i, x in enumerate(items) if i not in chosen], [x for i, x in enumerate(items) if i in chosen])

    if hasattr(dataset, "items"):
        dataset.items, held = split(dataset.items)
        return held
    dataset.files_a, held_a = split(dataset.files_a)
    dataset.files_b, held_b = split(dataset.files_b)
    return held_a, held_b


def validation_data(cfg, held_out=None):
    """The held-out images of ``cfg``: a PairedDataset (paired recipes) or (files_a, files_b)
    (unpaired ones), from ``held_out`` (what :func:`hold_out` returned) or else from --val/--val-b."""
    from . import modes

    if modes.mode_class(cfg.mode).task == "paired":
        from .evaluate import paired_data, scoring_size

        data = paired_data(cfg.val or cfg.a, None if cfg.val else cfg.b, cfg.direction, cfg.input_nc, cfg.output_nc,
                           scoring_size(cfg.preprocess, cfg.crop_size))
        if held_out is not None:
            data.items = held_out
        return data
    if held_out is not None:
        return held_out
    if not cfg.val_b:
        raise UsageError(f"--mode {cfg.mode} validates on two folders: --val DOMAIN_A/ --val-b DOMAIN_B/")
    from .data.unpaired import readable_images

    return readable_images(cfg.val, "--val"), readable_images(cfg.val_b, "--val-b")


def redo_hold_out(cfg):
    """The --val-fraction split of a finished run, redone from its config and seed (None with --val)."""
    if cfg.val or not cfg.val_fraction:
        return None
    from . import modes

    return hold_out(modes.mode_class(cfg.mode).make_dataset(cfg), cfg.val_fraction, cfg.seed)


class Validator:
    """Scores a training mode's generators on fixed held-out data."""

    def __init__(self, cfg, mode, runtime, held_out=None):
        if mode.default_metric is None:
            raise UsageError(f"--val and --val-fraction score translation runs; {cfg.mode} runs report "
                             "their own held-out score")
        self.cfg, self.mode, self.runtime = cfg, mode, runtime
        self.metric = cfg.best_metric or mode.default_metric
        self.higher = higher_is_better(self.metric)
        self.paired = mode.task == "paired"
        data = validation_data(cfg, held_out)
        if self.paired:
            self.data = data
        else:
            self.files_a, self.files_b = data

    def translator(self, direction: str) -> Translator:
        name = self.mode.translators[direction]
        return Translator(self.mode.nets[name], self.mode.specs[name], direction, "validation", self.runtime)

    def __call__(self) -> dict[str, float]:
        from .evaluate import evaluate_paired, evaluate_unpaired, scoring_size

        generators = {self.mode.nets[n] for n in self.mode.translators.values()}
        for g in generators:
            g.eval()
        try:
            if self.paired:
                scores = evaluate_paired(self.translator(self.cfg.direction), self.data, None, None)
            else:
                scores = evaluate_unpaired(self.translator("AtoB"), self.translator("BtoA"), self.files_a,
                                           self.files_b, None, size=scoring_size(self.cfg.preprocess, self.cfg.crop_size))
        finally:
            for g in generators:
                g.train()
        if self.metric not in scores:
            raise UsageError(f"--best-metric {self.metric}: not a validation score here; choose from "
                             f"{', '.join(k for k in scores if k != 'images')}")
        return scores

    def better(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value > best if self.higher else value < best
