"""How long a run trains, and its learning rate at every step: constant, then linear decay to zero.

Two ways to say how long:

- In epochs (the default): ``--epochs`` at the starting rate, then ``--epochs-decay`` decaying, the
  factor stepped once per epoch: the pix2pix and CycleGAN papers' schedule ("keep the same learning
  rate for the first 100 epochs and linearly decay the rate to zero over the next 100") and the
  reference's ``linear`` policy (models/networks.py, ``get_scheduler``).
- In steps (``--steps N``, or ``--minutes M``, which measures how many steps fit): the same shape
  over N steps, in the ratio of ``--epochs`` to ``--epochs-decay``, the factor stepped every step,
  so that a run shorter than a few epochs still decays to zero at its end.

Why the second: speed only buys quality when the schedule is fitted to the steps the time allows.
On facades (pix2pix, unet_128, 2-core CPU, 3 seeds; README "Results"), the 800-step 1 + 1 epoch
schedule reached 0.382 pixel accuracy, and the same 6 minutes spent on 2,000 steps of a 3 + 3
epoch schedule 0.421; the reference's 850 steps in those minutes reached 0.406.

Both are pure functions of the step and epoch, so a resumed run needs no scheduler state.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time

# before --minutes has measured how many steps fit, the run is planned as endless (the rate stays
# at its start: the first half of a schedule at 1:1 is constant)
UNPLANNED = sys.maxsize


def lr_factor(epoch: int, epochs: int, epochs_decay: int) -> float:
    """LR multiplier for the 0-based ``epoch``: 1 for ``epochs`` epochs, then linear decay
    1 - k/(epochs_decay + 1) for the k-th decay epoch: the reference's ``linear`` policy
    (models/networks.py, ``get_scheduler``) stepped at the end of each epoch, as the pix2pix and
    CycleGAN papers describe it, as CUT's train.py and the reference before mid-2020 do. The
    reference's train.py today steps at the start of each epoch, so it decays one epoch earlier and
    trains its last epoch at lr 0; i2i keeps the papers' schedule (docs/recipes.md)."""
    return 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The length of a run and its learning-rate factor (0, 1] at each step.

    ``epochs`` and ``epochs_decay`` are the constant and decaying epochs; with ``steps`` set they
    only give the ratio of the two phases, over ``steps`` steps in all. ``steps_per_epoch`` is the
    steps one process takes per pass over the data (at least 1).
    """

    epochs: int
    epochs_decay: int
    steps_per_epoch: int
    steps: int | None = None

    @property
    def total_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        return self.steps_per_epoch * (self.epochs + self.epochs_decay)

    @property
    def total_epochs(self) -> int:
        return -(-self.total_steps // self.steps_per_epoch)

    @property
    def decay_steps(self) -> int:
        """Steps of the decaying phase, counted in steps (``steps`` set) or in whole epochs."""
        if self.steps is None:
            return self.steps_per_epoch * self.epochs_decay
        return round(self.steps * self.epochs_decay / (self.epochs + self.epochs_decay))

    def factor(self, step: int, epoch: int) -> float:
        """The LR multiplier for the 0-based ``step`` (in 0-based ``epoch``): 1 in the constant phase,
        then 1 - k/(D + 1) for the k-th of D decaying epochs (or steps, with ``steps`` set), so the
        last one trains at 1/(D + 1) of the rate."""
        if self.steps is None:
            return lr_factor(epoch, self.epochs, self.epochs_decay)
        decay = self.decay_steps
        return 1.0 - max(0, step + 1 - (self.steps - decay)) / float(decay + 1)

    def decaying(self, epoch: int) -> bool:
        """Whether the 0-based ``epoch`` starts in the decaying phase (CUT sees whole images then)."""
        if self.steps is None:
            return epoch >= self.epochs
        return self.decay_steps > 0 and epoch * self.steps_per_epoch >= self.steps - self.decay_steps


class StepBudget:
    """Counts how many steps of ``schedule``'s shape fit in ``minutes`` of training (``--minutes``),
    from ``first_step`` on, ``spent`` seconds of them already used (by the sessions a resumed run
    had before).

    The time runs from construction (the loop's start). The rate is measured from the end of the
    first ``WARMUP`` steps (which build kernels and start the data workers) to the latest step, in
    wall time, so whatever else the loop does (loading data, evaluating at epoch ends, writing
    samples and checkpoints) counts as part of a step. While the learning rate is constant the
    estimate only gets better, so the plan is fixed as late as it can be: at the step where, by the
    estimate, the decay must begin (:meth:`ready`). The steps taken by then trained at the starting
    rate, so the plan keeps them all in its constant phase (:meth:`fitting`; when a slow epoch end
    made the estimate drop, a step or two more than the estimate). Measured on facades (pix2pix,
    bf16, 2-core CPU), a plan fixed after the first 50 steps ran 6% over its minute; this one ran
    5.9 and 6.2 minutes of 6, and 3.1 of 3 in three runs (README "Results"). The plan cannot see
    later changes in the machine's load: a third 6-minute run, which measured while a test suite
    shared the CPU, planned 1,720 steps and ran 5.5 minutes.
    """

    WARMUP = 10

    def __init__(self, minutes: float, first_step: int, schedule: Schedule, spent: float = 0.0,
                 clock=time.perf_counter):
        self.seconds = minutes * 60.0 - spent
        self.first_step = first_step
        self.schedule = schedule
        self.clock = clock
        self.started = clock()
        self.warm = None  # (step, time) once WARMUP steps are done
        self.rate = None  # steps per second, as last measured
        self.total = None  # the steps that fit, as last estimated
        self.ran_out = False  # the time ran out before the decay could begin

    def elapsed(self) -> float:
        return self.clock() - self.started

    def ready(self, step: int) -> bool:
        """Call after each step (``step`` steps done in all); True when the plan is fixed:
        :attr:`total` is then the run's steps (at least ``step``; exactly ``step``, with
        :attr:`ran_out`, when the time ran out first). Until then :attr:`total` is the
        latest estimate (None before the warm-up steps are done)."""
        now = self.clock()
        done = step - self.first_step
        left = self.seconds - (now - self.started)
        if done == self.WARMUP:
            self.warm = (step, now)
        if left <= 0:  # a budget shorter than the warm-up, or a step that took all that was left
            self.total, self.ran_out = step, True
            return True
        if self.warm is None or step == self.warm[0] or now <= self.warm[1]:
            return False
        self.rate = (step - self.warm[0]) / (now - self.warm[1])
        self.total = step + math.floor(left * self.rate)
        if step < self.total - dataclasses.replace(self.schedule, steps=self.total).decay_steps:
            return False
        self.total = max(self.total, self.fitting(step))
        return True

    def fitting(self, step: int) -> int:
        """The fewest steps of the schedule's shape whose constant phase holds ``step`` steps;
        ``step`` itself when the shape has no constant phase (``--epochs 0``)."""
        epochs, decay = self.schedule.epochs, self.schedule.epochs_decay
        if epochs == 0:
            return step
        total = max(step, (step - 1) * (epochs + decay) // epochs)  # at or below the answer (rounding)
        while total - dataclasses.replace(self.schedule, steps=total).decay_steps < step:
            total += 1
        return total
