"""The training loop, shared by every mode: epochs, LR schedule, logging, samples, checkpoints, resume.

Read top to bottom: build the mode and data, restore state if resuming, then loop. The learning rate
is a pure function of the step and epoch (i2i/schedule.py: constant, then linear decay to zero, over
``--epochs`` + ``--epochs-decay`` epochs or ``--steps`` steps), so a resumed run needs no scheduler
state to get it right. With ``--minutes`` the loop measures its steps while the rate is constant,
then fixes ``--steps`` as the decay must begin.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import shlex
import signal
import threading
import time
from pathlib import Path
from typing import Protocol

import torch

from . import modes
from .config import TrainConfig, check_read, flag
from .data.images import max_pixels_scope
from .distributed import World, state_digest, use_sync_batchnorm
from .errors import I2IError, UsageError, first_line
from .io import remove_stale_temps
from .runs import Run
from .runtime import resolve
from .schedule import UNPLANNED, Schedule, StepBudget
from .validation import Validator, hold_out

log = logging.getLogger(__name__)

# options that may change when resuming; everything else comes from the run's config.json. The
# learning rate is among them (the loop sets it from the config at every epoch, over the optimizer
# state it restores), so a run whose loss turned NaN continues from its checkpoint with a lower one.
RESUMABLE_OVERRIDES = ("max_steps", "steps", "save_every", "sample_every", "log_every", "workers", "epochs",
                       "epochs_decay",
                       "val_every", "report", "device", "precision", "threads", "compile", "strict", "max_pixels",
                       "lr", "a", "b", "val", "val_b")  # the data folders: the same images, moved


class Observer(Protocol):
    """What the loop reports as it goes (the CLI shows it as a progress bar)."""

    def start(self, total_steps: int | None, step: int) -> None: ...  # None: not known yet (--minutes)
    def plan(self, total_steps: int) -> None: ...  # --minutes has measured how many steps fit
    def step(self, step: int, epoch: int, losses: dict[str, float] | None) -> None: ...


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


def rank_seed(seed: int, rank: int, step: int) -> int:
    """The random seed of one rank of a distributed run from ``step`` on: distinct noise per rank,
    reproducible from the run seed."""
    return (seed * 1_000_003 + step * 1_009 + rank) % 2**63


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


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def duration(seconds: float) -> str:
    return f"{seconds / 60:.2f} minutes" if seconds >= 60 else f"{seconds:.1f} s"


def plan_note(cfg: TrainConfig, schedule: Schedule, budget: StepBudget, step: int, steps_per_epoch: int) -> str:
    """The log line for the plan that --minutes has just fixed at ``step``, and whether --steps
    repeats the run (it does when every step taken so far lies in the plan's constant phase)."""
    head = f"--minutes {cfg.minutes:g}: "
    if budget.ran_out:
        return (head + f"the time ran out after {plural(step, 'step')}, before the learning rate could decay; every "
                "one trained at the starting rate")
    decay = schedule.decay_steps
    shape = (f"the learning rate decays over the last {plural(decay, 'step')}" if decay
             else "the learning rate stays constant")
    fit = f"{plural(cfg.steps, 'step')} fit at {budget.rate:.3g} steps/s, {cfg.steps / steps_per_epoch:.1f} epochs; {shape}"
    if step <= cfg.steps - decay:
        stop = f" --max-steps {cfg.max_steps}" if cfg.max_steps and cfg.max_steps < cfg.steps else ""
        return head + f"{fit}; --steps {cfg.steps}{stop} --seed {cfg.seed} repeats this run"
    return (head + f"{fit}; the {plural(step, 'step')} measured trained at the starting rate, as --epochs 0 has no "
            "constant phase, so --steps does not repeat this run exactly")


def resume_config(run_dir: str | Path, **options) -> TrainConfig:
    """The saved config of the run in ``run_dir``, with the given ``options`` (None = not given) applied.

    Only :data:`RESUMABLE_OVERRIDES` may change; any other option that differs from the run's is an error
    rather than silently ignored.
    """
    run_dir = Path(run_dir)
    run = Run(run_dir)
    if not run.exists():
        raise UsageError(f"{run_dir}: no run to resume; drop --resume to start it")
    doc = run.read_config()
    if not isinstance(doc.get("mode"), str) or doc.get("mode") not in modes.names():
        if doc.get("mode") == "imported":
            raise UsageError(f"{run_dir} was made by i2i import, not by training; it cannot be resumed")
        TrainConfig.from_dict(doc, source=run.config_path)  # names the damaged field when there is one
        raise I2IError(f"{run.config_path}: field 'mode' is {doc.get('mode')!r}, not one of "
                       f"{', '.join(modes.names())}; the file is damaged: put back a copy from a backup")
    saved = TrainConfig.from_dict(doc, source=run.config_path)
    saved.checkpoints_dir, saved.name = str(run_dir.parent), run_dir.name
    try:
        modes.validate(saved)  # the saved settings alone: a failure here is the file's, not the command line's
    except UsageError as e:
        raise I2IError(f"{run.config_path}: the saved settings fail i2i's checks ({e}); the file is damaged: put "
                       "back a copy from a backup") from None
    given = modes.given_options(options)
    modes.refuse_unread(modes.mode_class(saved.mode), given)
    for key, value in options.items():
        if value is None or value == getattr(saved, key):
            continue
        if key not in RESUMABLE_OVERRIDES:
            had = getattr(saved, key)
            option = f"--{key.replace('_', '-')}"
            had = f"no {option}" if had is None else flag(key, had)
            raise UsageError(f"{option} cannot change when resuming (the run has {had}); drop it or start a new run")
        setattr(saved, key, value)
    check_read(saved, given)
    modes.validate(saved)
    for option, folder in (("--a", saved.a), ("--b", saved.b), ("--val", saved.val), ("--val-b", saved.val_b)):
        if not folder or Path(folder).is_dir():
            continue
        if options.get(option[2:].replace("-", "_")) is not None:  # given now, not read from config.json
            raise UsageError(f"{option} {folder}: no such folder")
        raise UsageError(f"{run_dir}: its data folder {folder} ({option} in config.json) is not found from "
                             f"{Path.cwd()}; add {option} with the folder's path now (the same images)")
    return saved


def train(cfg: TrainConfig, resume: bool = False, observer: Observer | None = None) -> Path:
    """Train ``cfg``, or with ``resume`` continue its run from ``state.pt`` (build ``cfg`` with
    :func:`resume_config`); returns the run folder.

    Under ``torchrun`` this is one of several processes (see i2i/distributed.py): each trains on its
    share of every epoch with ``--batch-size`` images per step, gradients are averaged, and rank 0
    alone logs, writes samples and saves.
    """
    world = World.from_env()
    runtime = resolve(cfg.device, cfg.precision, cfg.threads, cfg.compile, training=True)
    world.start(runtime.device)
    try:
        with max_pixels_scope(cfg.max_pixels):  # the run's --max-pixels, for this run only
            run_dir = _train(cfg, resume, observer if world.main else None, world, runtime)
        # rank 0 still saves and writes the report when the others finish: a rank that tore its
        # process group down meanwhile sometimes died in gloo's teardown (SIGABRT, "terminate called
        # without an active exception"; 2 in about 40 two-process test runs), so all leave together
        world.barrier()
        return run_dir
    finally:
        world.stop()


# options that do not change how long a training step takes: the rest of what a recipe reads is part
# of --precision auto's cache key (a wgangp critic or DualGAN's 5 critic steps time differently
# from the same networks in vanilla pix2pix or CycleGAN)
NOT_TIMED = frozenset({"a", "b", "val", "val_b", "name", "checkpoints_dir", "seed", "max_steps", "steps", "minutes",
                       "save_every", "sample_every", "log_every", "workers", "report", "max_pixels", "strict",
                       "device", "precision", "threads", "compile", "epochs", "epochs_decay", "lr", "val_every",
                       "val_fraction", "best_metric"})


def settle_training_precision(cfg: TrainConfig, mode, runtime, world: World, dataset=None):
    """The runtime ``mode`` trains on, set on it (:meth:`~i2i.modes.base.Mode.use_runtime`) and
    returned: ``runtime`` itself, unless it is ``--precision auto`` on a CPU with native bf16; then
    bf16 or fp32, whichever runs this recipe's training steps faster (:func:`i2i.autoprecision.settle`,
    timing :func:`step_probe`) at the size it trains at (:func:`i2i.preflight.training_size` of
    ``dataset``, which only a run without a crop needs). Recipes that generate from noise, and runs of several processes (which must agree), keep bf16.
    Call it before :meth:`~i2i.runtime.Runtime.prepare_mode`."""
    from .autoprecision import settle

    measurable = mode.task != "folder" and mode.specs and not world.enabled
    if runtime.auto and not measurable:
        why = "several processes, which must agree" if world.enabled else f"--mode {cfg.mode} generates from noise"
        log.info("precision auto: bf16, as the CPU's flags say (not measured: %s)", why)
        runtime = runtime.settled()
    elif runtime.auto:
        from .preflight import training_size

        h, w = training_size(cfg, dataset)
        shape = (cfg.batch_size, cfg.input_nc, h, w)
        recipe = {k: v for k, v in sorted(dataclasses.asdict(cfg).items())
                  if k not in NOT_TIMED and (k in type(mode).reads or k == "mode")}
        runtime = settle(runtime, mode.nets, shape, training=True, make_pass=step_probe(cfg, type(mode), shape),
                         recipe=recipe)
    mode.use_runtime(runtime)
    return runtime


def step_probe(cfg: TrainConfig, mode_cls, shape: tuple[int, ...]):
    """For :func:`i2i.autoprecision.settle`: runtime -> a callable that runs one training step of a
    new ``mode_cls`` recipe built for that runtime (its own networks and optimisers, so the run's are
    untouched) on random A and B images of ``shape`` (N, C, H, W; B with ``--output-nc`` channels),
    in [-1, 1] as the data loader gives them."""
    n, _, h, w = shape

    def make(candidate):
        probe = mode_cls(dataclasses.replace(cfg), runtime=candidate)
        candidate.prepare_mode(probe)
        probe.train(True)
        batch = {"A": torch.rand(n, cfg.input_nc, h, w) * 2 - 1, "B": torch.rand(n, cfg.output_nc, h, w) * 2 - 1}
        return lambda: probe.train_step(batch)

    return make


def _train(cfg: TrainConfig, resume: bool, observer: Observer | None, world: World, runtime) -> Path:
    device = runtime.device
    modes.validate(cfg)  # a config built by hand (the Python API) gets the CLI's checks
    if cfg.minutes is not None and cfg.steps is not None and not resume:
        raise UsageError(f"--minutes {cfg.minutes:g} measures how many steps fit and sets --steps; give one of them")
    run = Run(cfg.run_dir)
    state = None
    for folder in (run.path, run.samples_dir, run.path / "best"):  # temp files of a killed run
        remove_stale_temps(folder)
    use = modes.use_command(cfg.mode, run.path)
    if resume:
        if not run.exists():
            raise UsageError(f"{run.path}: no run to resume; drop --resume to start it")
        state = run.load_state(use)  # state.pt, or state.prev.pt when state.pt is damaged
        if state is None:
            log.warning("%s has no checkpoint yet; starting it from step 0", run.path)
    elif run.exists() or (run.path.exists() and any(run.path.iterdir())):
        raise UsageError(f"{run.path} already exists; add --resume to continue it or choose another --name")
    world.barrier()  # every rank has looked before rank 0 writes anything
    if cfg.seed is None:
        cfg.seed = world.gather(random.SystemRandom().randrange(2**31))[0]

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    mode_cls = modes.mode_class(cfg.mode)
    dataset = mode_cls.make_dataset(cfg)
    held_out = hold_out(dataset, cfg.val_fraction, cfg.seed) if cfg.val_fraction else None
    if math.ceil(len(dataset) / world.size) < cfg.batch_size:
        share = f" shared by {world.size} processes" if world.enabled else ""
        raise UsageError(f"{cfg.a}: {len(dataset)} image(s){share} is fewer than --batch-size {cfg.batch_size} each")
    from .preflight import check_training

    check_training(cfg, dataset, world.size)  # options under which a step cannot run are refused here
    mode = mode_cls(cfg, runtime=runtime, world=world)
    if world.enabled and device.type == "cuda":
        converted = use_sync_batchnorm(mode.nets)
        if converted:
            log.info("batch norm synchronised across the %d processes (%d layers)", world.size, converted)
    runtime = settle_training_precision(cfg, mode, runtime, world, dataset)  # auto: bf16 or fp32, measured
    runtime.prepare_mode(mode)
    validator = Validator(cfg, mode, runtime, held_out) if (cfg.val or cfg.val_fraction) and world.main else None
    best = {"step": None, "value": None}

    from .data.transforms import EpochSampler

    sampler = EpochSampler(len(dataset), cfg.seed, shuffle=not cfg.serial_batches, rank=world.rank, world=world.size)
    steps_per_epoch = math.ceil(sampler.per_rank / cfg.batch_size)
    planning = cfg.minutes is not None and cfg.steps is None  # --minutes, not yet measured
    schedule = Schedule(cfg.epochs, cfg.epochs_decay, steps_per_epoch, UNPLANNED if planning else cfg.steps)
    total_steps = min(schedule.total_steps, cfg.max_steps or schedule.total_steps)

    step, epoch, epoch_step = 0, 0, 0
    seconds_before = 0.0  # of training in the sessions before this one (a resumed run's)
    saved_step = None  # the step of the newest checkpoint on disk (None: none yet)
    if resume and state is None and world.main:
        run.truncate_log(-1)  # steps logged but never saved (the step-0 evaluation too) are done again
    if state is not None:
        try:
            for name, net in mode.nets.items():
                net.load_state_dict(state["nets"][name])
            for name, opt in mode.optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
            mode.load_extra_state(state.get("extra", {}))
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            first = first_line(e)[:200]
            raise I2IError(f"{run.state_path}: does not fit the networks that {run.config_path} describes "
                           f"({type(e).__name__}: {first}); was config.json edited? put back the run's own "
                           f"config.json, or use the trained weights as they are: {use}") from None
        best = state.get("best", best)
        saved_step = state["step"]
        step, epoch, epoch_step = state["step"], state["epoch"], state["epoch_step"]
        seconds_before = float(state.get("seconds", 0.0))
        set_rng_state(state["rng"])
        saved_world = state.get("world_size", 1)
        if saved_world != world.size:  # the same place in the epoch, counted in examples
            epoch_step = min(epoch_step * saved_world // world.size, steps_per_epoch)
            log.info("the run was trained by %d process(es) and continues with %d", saved_world, world.size)
        if world.main:
            run.truncate_log(step)
        log.info("resuming %s at step %d (epoch %d)", run.path, step, epoch + 1)
        if step >= total_steps:  # nothing to do, and nothing is written (config.json keeps what was trained)
            limit = (f"--max-steps {cfg.max_steps}" if cfg.max_steps and cfg.max_steps <= schedule.total_steps
                     else f"--steps {cfg.steps}" if cfg.steps is not None
                     else f"its {schedule.total_epochs} epochs (--epochs {cfg.epochs}, --epochs-decay {cfg.epochs_decay})")
            if world.main:
                log.warning("%s is already at step %d, %s %s: nothing to train; raise that to train further",
                            run.path, step, "the end of" if step == total_steps else "past", limit)
            return run.path
    if world.enabled:
        world.broadcast_state(mode.nets.values())  # the same starting weights everywhere
        torch.manual_seed(rank_seed(cfg.seed, world.rank, step))  # but each rank its own noise
        random.seed(rank_seed(cfg.seed, world.rank, step))
    if world.main:
        run.path.mkdir(parents=True, exist_ok=True)
        if not resume:  # a resumed run's changed options (--lr ...) are recorded with its next checkpoint
            run.write_config(cfg, mode.translators, mode.specs)
    batch = f"{cfg.batch_size} per step" + (
        f" in each of {world.size} processes, {cfg.batch_size * world.size} in all" if world.enabled else "")
    length = (f"for about {cfg.minutes:g} minute{'' if cfg.minutes == 1 else 's'} (the steps that fit are measured "
              "while the learning rate is constant)" if planning
              else f"{schedule.total_steps} steps" if cfg.steps is not None else f"{schedule.total_epochs} epochs")
    log.info("training %s on %s: %d examples, batch %s, %d steps per epoch, %s; %s",
             cfg.mode, cfg.a if cfg.b is None else f"{cfg.a} and {cfg.b}", len(dataset), batch, steps_per_epoch,
             length, runtime.describe())

    def save():
        nonlocal saved_step
        if world.enabled:
            check_ranks_agree()
        if world.main:
            if resume:  # the options this checkpoint was trained with (a failed resume leaves them as they were)
                run.write_config(cfg, mode.translators, mode.specs)
            # the checkpoint first (the previous one kept as state.prev.pt), then the generators: a
            # kill between the two leaves a checkpoint to resume from, never weights without one
            run.save_state({
                "nets": {k: v.state_dict() for k, v in mode.nets.items()},
                "optimizers": {k: v.state_dict() for k, v in mode.optimizers.items()},
                "extra": mode.extra_state(),
                "step": step, "epoch": epoch, "epoch_step": epoch_step, "rng": rng_state(), "best": best,
                "seconds": seconds_before + time.perf_counter() - started,  # of training, all sessions
                "world_size": world.size,
            })
            run.save_generators(mode)
        saved_step = step
        world.barrier()

    def nan_advice(bad: str, value: float) -> str:
        """The one line for a loss that is no longer finite: where the run can continue from, and the
        command that continues it there with a tenth of the learning rate."""
        command = " ".join(["i2i train --resume --name", shlex.quote(run.path.name), "--checkpoints-dir",
                            shlex.quote(str(run.path.parent)), "--lr", f"{cfg.lr / 10:g}"])
        if saved_step is None:
            where = (f"no checkpoint was saved yet (one is saved every {cfg.save_every} steps), so the run "
                     "starts again from step 0")
        else:
            where = f"the last checkpoint, at step {saved_step}, is in {run.path}"
        return (f"loss {bad} became {value} at step {step}; {where}; continue with a lower learning "
                f"rate: {command}")

    def check_ranks_agree():
        """Batch-norm statistics come from rank 0 (as DDP's broadcast_buffers); then every weight
        must be bit-identical on every rank, or the gradient averaging is broken."""
        world.broadcast_state(mode.nets.values(), buffers_only=True)
        digests = world.gather(state_digest(mode.nets))
        if len(set(digests)) > 1:
            raise I2IError(f"step {step}: the processes' weights differ (SHA-256 by rank: "
                           f"{', '.join(d[:12] for d in digests)}); this is a bug, please report it")
        log.info("step %d: weights identical on all %d ranks (SHA-256 by rank: %s)", step, world.size,
                 ", ".join(d[:12] for d in digests))

    def evaluate():
        if not world.main:
            return
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
        if not cfg.report or not world.main:
            return
        from .report import write_report

        try:
            write_report(run.path)
        except Exception as e:  # noqa: BLE001  (the report must never stop training)
            log.warning("report.html not refreshed: %s", e)

    if step == 0:
        evaluate()
    if observer:
        observer.start(total_steps if total_steps < UNPLANNED else None, step)
    mode.train(True)
    loader_generator = torch.Generator()  # keeps the DataLoader off the global RNG that dropout uses
    started = time.perf_counter()
    budget = StepBudget(cfg.minutes, step, schedule, spent=seconds_before) if planning else None
    factor = None
    stop = StopOnInterrupt()
    try:
        while epoch < schedule.total_epochs and step < total_steps:
            sampler.epoch, sampler.start = epoch, epoch_step * cfg.batch_size
            mode_cls.set_epoch(cfg, dataset, schedule.decaying(epoch))
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                generator=loader_generator, pin_memory=device.type == "cuda",
                persistent_workers=False)
            for batch in loader:
                if schedule.factor(step, epoch) != factor:
                    factor = schedule.factor(step, epoch)
                    for opt in mode.optimizers.values():
                        for group in opt.param_groups:
                            group["lr"] = cfg.lr * factor
                losses, out = mode.train_step(batch)
                step += 1
                epoch_step += 1
                if budget is not None and world.any(budget.ready(step)):
                    cfg.steps = world.gather(budget.total)[0]  # rank 0's measurement, on every rank
                    schedule = dataclasses.replace(schedule, steps=cfg.steps)
                    total_steps = min(cfg.steps, cfg.max_steps or cfg.steps)
                    if world.main:
                        run.write_config(cfg, mode.translators, mode.specs)
                    log.info("%s", plan_note(cfg, schedule, budget, step, steps_per_epoch))
                    budget = None
                    if observer:
                        observer.plan(total_steps)
                elif budget is not None and budget.total and observer and not cfg.max_steps:
                    observer.plan(budget.total)  # the estimate so far
                values = {k: float(v) for k, v in losses.items()}
                bad = [k for k, v in values.items() if not math.isfinite(v)]
                if bad:
                    raise I2IError(nan_advice(bad[0], values[bad[0]]))
                if step % cfg.log_every == 0 or step == 1 or step == total_steps:
                    values = world.mean(values)  # the mean over the ranks' batches
                    if world.main:
                        run.append_log({"step": step, "epoch": epoch + 1, "lr": cfg.lr * factor,
                                        "time": round(time.perf_counter() - started, 3), **values})
                if world.enabled and world.any(stop.requested):
                    stop.requested = True  # every rank stops at the same step
                if world.main and (step % cfg.sample_every == 0 or step == total_steps):
                    from .data.codecs import image_grid
                    from .data.images import save_image

                    rows = mode.sample_rows(mode.to_device(batch), out)
                    save_image(image_grid(rows, max_rows=4), run.samples_dir / f"step_{step:07d}.png")
                if cfg.val_every and step % cfg.val_every == 0:
                    validate()
                if step % cfg.save_every == 0 and step < total_steps:  # the last step is saved below
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
    loop_seconds = time.perf_counter() - started
    evaluate()
    if not stop.requested and not (cfg.val_every and step % cfg.val_every == 0):  # unless just validated
        validate()
    save()
    refresh_report()
    if stop.requested:
        raise Interrupted(f"interrupted at step {step}; saved {run.path}; add --resume to continue")
    if cfg.minutes is not None:
        log.info("at step %d after %s of training (--minutes %g)", step, duration(seconds_before + loop_seconds),
                 cfg.minutes)
    log.info("finished at step %d; run folder %s", step, run.path)
    return run.path
