"""i2i.schedule: the learning rate's schedule in epochs and in steps, and --minutes' step budget."""

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from i2i.schedule import Schedule, StepBudget, lr_factor

phases = st.tuples(st.integers(0, 12), st.integers(0, 12)).filter(lambda p: sum(p) > 0)


def test_lr_schedule_matches_reference_linear_policy():
    # reference: 1 - max(0, epoch + epoch_count - n_epochs) / (n_epochs_decay + 1), epoch_count = 1
    factors = [lr_factor(e, 3, 4) for e in range(7)]
    assert factors == pytest.approx([1, 1, 1, 1 - 1 / 5, 1 - 2 / 5, 1 - 3 / 5, 1 - 4 / 5])


@given(phases, st.integers(1, 50))
def test_epoch_schedule_is_the_reference_policy_stepped_per_epoch(phase, per_epoch):
    epochs, decay = phase
    s = Schedule(epochs, decay, per_epoch)
    assert s.total_steps == per_epoch * (epochs + decay) and s.total_epochs == epochs + decay
    for step in range(s.total_steps):
        epoch = step // per_epoch
        assert s.factor(step, epoch) == lr_factor(epoch, epochs, decay)
        assert s.decaying(epoch) == (epoch >= epochs)


@given(phases, st.integers(1, 50), st.integers(1, 3000))
def test_step_schedule_has_the_same_shape_over_its_steps(phase, per_epoch, steps):
    epochs, decay = phase
    s = Schedule(epochs, decay, per_epoch, steps)
    assert s.total_steps == steps
    assert (s.total_epochs - 1) * per_epoch < steps <= s.total_epochs * per_epoch
    factors = [s.factor(step, step // per_epoch) for step in range(steps)]
    constant = steps - s.decay_steps
    # the phases in the ratio of --epochs to --epochs-decay, to the nearest step
    assert abs(s.decay_steps - steps * decay / (epochs + decay)) <= 0.5
    assert all(f == 1.0 for f in factors[:constant])
    decaying = factors[constant:]
    assert all(a > b for a, b in zip(decaying, decaying[1:]))  # falls at every step
    if decaying:  # linearly, to 1/(D + 1) at the last step
        assert decaying[-1] == pytest.approx(1 / (s.decay_steps + 1))
        assert decaying[0] == pytest.approx(1 - 1 / (s.decay_steps + 1))
    assert all(0 < f <= 1 for f in factors)
    for epoch in range(s.total_epochs):  # an epoch counted as decaying starts at a decayed rate
        first = epoch * per_epoch
        assert s.decaying(epoch) == (s.decay_steps > 0 and first >= constant)
        if s.decaying(epoch):
            assert s.factor(first, epoch) < 1


@given(phases, st.integers(1, 20))
def test_steps_of_whole_epochs_follow_the_epoch_schedule_at_a_finer_grain(phase, per_epoch):
    # the same length in steps and in epochs: the same constant phase; in each decaying epoch the
    # per-step rate starts at or above the epoch's rate and ends at or below it
    epochs, decay = phase
    by_epoch = Schedule(epochs, decay, per_epoch)
    by_step = Schedule(epochs, decay, per_epoch, by_epoch.total_steps)
    assert by_step.decay_steps == by_epoch.decay_steps
    for epoch in range(by_epoch.total_epochs):
        first, last = epoch * per_epoch, (epoch + 1) * per_epoch - 1
        rate = by_epoch.factor(first, epoch)
        assert by_epoch.factor(last, epoch) == rate
        if epoch < epochs:
            assert by_step.factor(first, epoch) == by_step.factor(last, epoch) == rate == 1.0
        else:
            assert by_step.factor(first, epoch) >= rate - 1e-12 >= by_step.factor(last, epoch) - 2e-12
        assert by_step.decaying(epoch) == by_epoch.decaying(epoch)


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@given(st.floats(0.01, 600), st.floats(0.001, 5.0), st.floats(1.0, 20.0), st.integers(0, 1000), phases,
       st.integers(2, 60), st.floats(0, 50), st.floats(0, 0.9))
def test_budget_fixes_the_steps_that_fit_as_the_decay_must_begin(minutes, seconds_per_step, warmup_slowdown,
                                                                 first_step, phase, epoch_steps, epoch_end, spent):
    # steps of constant time after slower warm-up steps, and a slow step at every epoch end (the
    # estimate drops after each): the plan is fixed at the step where its decay begins, with every
    # step taken in its constant phase, and it fills what is left of the budget to within a step
    # or, when an epoch end made the estimate drop, what keeping those steps constant takes
    assume(minutes * 60 / seconds_per_step < 20_000)  # a quick test
    clock = FakeClock()
    shape = Schedule(*phase, steps_per_epoch=7)
    budget = StepBudget(minutes, first_step, shape, spent=spent * minutes * 60, clock=clock)
    step = first_step
    while True:
        slow = step - first_step < StepBudget.WARMUP
        clock.now += seconds_per_step * (warmup_slowdown if slow else 1)
        step += 1
        if step % epoch_steps == 0:
            clock.now += seconds_per_step * epoch_end
        if budget.ready(step):
            break
        assert budget.elapsed() < minutes * 60 * (1 - spent)
    total = budget.total
    left = minutes * 60 * (1 - spent) - budget.elapsed()
    if budget.ran_out:  # the time ran out first: no decay, and the plan is the steps taken
        assert left <= 0 and total == step
        return
    assert step - first_step > StepBudget.WARMUP  # not planned on the warm-up's rate
    assert (total - step) >= math.floor(left * budget.rate)
    planned = Schedule(*phase, steps_per_epoch=7, steps=total)
    decay_starts = total - planned.decay_steps
    if phase[0] == 0:  # no constant phase: planned once measured
        assert step == first_step + StepBudget.WARMUP + 1 and total == step + math.floor(left * budget.rate)
        return
    assert step <= decay_starts  # every step taken at the rate the plan gives it
    assert all(planned.factor(s, 0) == 1.0 for s in range(step))
    if total > step + math.floor(left * budget.rate):  # stretched to keep them: by as little as it takes
        assert budget.fitting(step) == total
        assert Schedule(*phase, steps_per_epoch=7, steps=total - 1).decay_steps > total - 1 - step


@given(phases.filter(lambda p: p[0] > 0), st.integers(0, 5000))
def test_fitting_is_the_fewest_steps_whose_constant_phase_holds_those_taken(phase, step):
    budget = StepBudget(1, 0, Schedule(*phase, steps_per_epoch=3))
    total = budget.fitting(step)
    constant = total - Schedule(*phase, steps_per_epoch=3, steps=total).decay_steps
    assert constant >= step
    if total > step:
        assert total - 1 - Schedule(*phase, steps_per_epoch=3, steps=total - 1).decay_steps < step
