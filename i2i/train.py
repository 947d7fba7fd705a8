"""The training loop, shared by every mode: epochs, LR schedule, logging, samples, checkpoints, resume.

Read top to bottom: build the mode and data, restore state if resuming, then loop. The learning rate
is a pure function of the epoch (constant for ``epochs``, then linear decay over ``epochs_decay``), so
a resumed run needs no scheduler state to get it right.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Protocol

import torch

from . import modes
from .config import TrainConfig, validate
from .data.images import set_max_pixels
from .errors import I2IError, UsageError
from .runs import Run
from .runtime import resolve
from .validation import Validator, hold_out

log = logging.getLogger(__name__)

# options that may change when resuming; everything else comes from the run's config.json
RESUMABLE_OVERRIDES = ("max_steps", "save_every", "sample_every", "log_every", "workers", "epochs", "epochs_decay",
                       "val_every", "report", "device", "precision", "threads", "compile", "strict", "max_pixels")


class Observer(Protocol):
    """What the loop reports as it goes (the CLI shows it as a progress bar)."""

    def start(self, total_steps: int, step: int) -> None: ...
    def step(self, step: int, epoch: int, losses: dict[str, float] | None) -> None: ...


def lr_factor(epoch: int, epochs: int, epochs_decay: int) -> float:
    """LR multiplier for the 0-based ``epoch``: 1 for ``epochs`` epochs, then linear decay
    1 - k/(epochs_decay + 1) for the k-th decay epoch, as the reference's ``linear`` policy."""
    return 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def sample_grid(rows: list[list[torch.Tensor]], max_rows: int = 4):
    """A PIL image with one example per row (each image CxHxW in [-1, 1])."""
    from torchvision.utils import make_grid

    from .translate import tensor_to_image

    rows = rows[:max_rows]
    images = [img.float().cpu().expand(3, -1, -1) for row in rows for img in row]
    grid = make_grid(torch.stack(images), nrow=len(rows[0]), padding=2, pad_value=1.0)
    return tensor_to_image(grid)


class Interrupted(I2IError):
    exit_code = 130


class StopOnInterrupt:
    """Turn the first Ctrl-C into a request to stop after the current step (so the checkpoint is
    consistent); a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False
        self.previous = None
        self.pid = os.getpid()  # DataLoader workers inherit the handler; they must not act on it
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if os.getpid() != self.pid:
            return
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stopping after this step (Ctrl-C again to abort without saving)")

    def restore(self):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def resume_config(run_dir: str | Path, **options) -> TrainConfig:
    """The saved config of the run in ``run_dir``, with the given ``options`` (None = not given) applied.

    Only :data:`RESUMABLE_OVERRIDES` may change; any other option that differs from the run's is an error
    rather than silently ignored.
    """
    run_dir = Path(run_dir)
    if not Run(run_dir).exists():
        raise UsageError(f"{run_dir}: no run to resume; drop --resume to start it")
    saved = TrainConfig.from_dict(Run(run_dir).read_config())
    if saved.mode not in modes.IMPLEMENTED:
        raise UsageError(f"{run_dir} was made by i2i import, not by training; it cannot be resumed")
    for key, value in options.items():
        if value is None or value == getattr(saved, key):
            continue
        if key not in RESUMABLE_OVERRIDES:
            raise UsageError(f"--{key.replace('_', '-')} cannot change when resuming (the run has "
                             f"{getattr(saved, key)!r}); drop it or start a new run")
        setattr(saved, key, value)
    saved.checkpoints_dir, saved.name = str(run_dir.parent), run_dir.name
    validate(saved)
    return saved


def train(cfg: TrainConfig, resume: bool = False, observer: Observer | None = None) -> Path:
    """Train ``cfg``, or with ``resume`` continue its run from ``state.pt`` (build ``cfg`` with
    :func:`resume_config`); returns the run folder."""
    run = Run(cfg.run_dir)
    state = None
    if resume:
        if not run.exists():
            raise UsageError(f"{run.path}: no run to resume; drop --resume to start it")
        if run.state_path.is_file():
            state = run.load_state()
        else:
            log.warning("%s has no checkpoint yet; starting it from step 0", run.path)
    elif run.exists() or (run.path.exists() and any(run.path.iterdir())):
        raise UsageError(f"{run.path} already exists; add --resume to continue it or choose another --name")
    if cfg.seed is None:
        cfg.seed = random.SystemRandom().randrange(2**31)

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    runtime = resolve(cfg.device, cfg.precision, cfg.threads, cfg.compile, training=True)
    device = runtime.device
    mode_cls = modes.mode_class(cfg.mode)
    set_max_pixels(cfg.max_pixels)
    dataset = mode_cls.make_dataset(cfg)
    held_out = hold_out(dataset, cfg.val_fraction, cfg.seed) if cfg.val_fraction else None
    if len(dataset) < cfg.batch_size:
        raise UsageError(f"{cfg.a}: {len(dataset)} image(s) is fewer than --batch-size {cfg.batch_size}")
    mode = mode_cls(cfg, device)
    runtime.prepare_mode(mode)
    validator = Validator(cfg, mode, runtime, held_out) if (cfg.val or cfg.val_fraction) else None
    best = {"step": None, "value": None}

    from .data.transforms import EpochSampler

    sampler = EpochSampler(len(dataset), cfg.seed)
    steps_per_epoch = math.ceil(len(dataset) / cfg.batch_size)
    total_epochs = cfg.epochs + cfg.epochs_decay
    total_steps = steps_per_epoch * total_epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)

    step, epoch, epoch_step = 0, 0, 0
    if state is not None:
        for name, net in mode.nets.items():
            net.load_state_dict(state["nets"][name])
        for name, opt in mode.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        mode.load_extra_state(state.get("extra", {}))
        best = state.get("best", best)
        step, epoch, epoch_step = state["step"], state["epoch"], state["epoch_step"]
        set_rng_state(state["rng"])
        run.truncate_log(step)
        log.info("resuming %s at step %d (epoch %d)", run.path, step, epoch + 1)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config(cfg, mode.translators, mode.specs)
    log.info("training %s on %s: %d examples, %d steps per epoch, %d epochs; %s",
             cfg.mode, cfg.a if cfg.b is None else f"{cfg.a} and {cfg.b}", len(dataset), steps_per_epoch,
             total_epochs, runtime.describe())

    def save():
        run.save_generators(mode)
        run.save_state({
            "nets": {k: v.state_dict() for k, v in mode.nets.items()},
            "optimizers": {k: v.state_dict() for k, v in mode.optimizers.items()},
            "extra": mode.extra_state(),
            "step": step, "epoch": epoch, "epoch_step": epoch_step, "rng": rng_state(), "best": best,
        })

    def evaluate():
        metrics = mode.evaluate()
        if metrics:
            run.append_log({"step": step, "epoch": epoch, "eval": True, **metrics})
            log.info("step %d: %s", step, ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))

    def validate():
        if validator is None or step == 0:
            return
        scores = validator()
        run.append_log({"step": step, "epoch": epoch, "val": True, **scores})
        value = scores[validator.metric]
        log.info("step %d: validation %s", step, ", ".join(f"{k} {v:.4g}" for k, v in scores.items() if k != "images"))
        if validator.better(value, best["value"]):
            best.update(step=step, value=value, metric=validator.metric)
            run.save_best(mode, dict(best))
            log.info("best %s so far (%.4g): saved %s", validator.metric, value, run.path / "best")

    def refresh_report():
        if not cfg.report:
            return
        from .report import write_report

        try:
            write_report(run.path)
        except Exception as e:  # noqa: BLE001  (the report must never stop training)
            log.warning("report.html not refreshed: %s", e)

    if step == 0:
        evaluate()
    if observer:
        observer.start(total_steps, step)
    mode.train(True)
    loader_generator = torch.Generator()  # keeps the DataLoader off the global RNG that dropout uses
    started = time.perf_counter()
    stop = StopOnInterrupt()
    try:
        while epoch < total_epochs and step < total_steps:
            factor = lr_factor(epoch, cfg.epochs, cfg.epochs_decay)
            for opt in mode.optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * factor
            sampler.epoch, sampler.start = epoch, epoch_step * cfg.batch_size
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                generator=loader_generator, pin_memory=device.type == "cuda",
                persistent_workers=False)
            for batch in loader:
                losses, out = mode.train_step(batch)
                step += 1
                epoch_step += 1
                values = {k: float(v) for k, v in losses.items()}
                bad = [k for k, v in values.items() if not math.isfinite(v)]
                if bad:
                    raise I2IError(f"loss {bad[0]} became {values[bad[0]]} at step {step}; the last good "
                                   f"checkpoint is in {run.path}; try a lower --lr")
                if step % cfg.log_every == 0 or step == 1 or step == total_steps:
                    run.append_log({"step": step, "epoch": epoch + 1, "lr": cfg.lr * factor,
                                    "time": round(time.perf_counter() - started, 3), **values})
                if step % cfg.sample_every == 0 or step == total_steps:
                    from .data.images import save_image

                    rows = mode.sample_rows(mode.to_device(batch), out)
                    save_image(sample_grid(rows), run.samples_dir / f"step_{step:07d}.png")
                if cfg.val_every and step % cfg.val_every == 0:
                    validate()
                if step % cfg.save_every == 0:
                    save()
                if observer:
                    observer.step(step, epoch + 1, values)
                if step >= total_steps or stop.requested:
                    break
            else:
                epoch, epoch_step = epoch + 1, 0
                if step < total_steps:  # the end of training is evaluated below
                    evaluate()
                    if not cfg.val_every:
                        validate()
                    refresh_report()
                continue
            break
    finally:
        stop.restore()
    evaluate()
    if not stop.requested and not (cfg.val_every and step % cfg.val_every == 0):  # unless just validated
        validate()
    save()
    refresh_report()
    if stop.requested:
        raise Interrupted(f"interrupted at step {step}; saved {run.path}; add --resume to continue")
    log.info("finished at step %d; run folder %s", step, run.path)
    return run.path
