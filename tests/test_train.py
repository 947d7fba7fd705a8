import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from i2i.errors import UsageError
from i2i.runs import Run, load_weights
from i2i.schedule import StepBudget
from i2i.train import train

from conftest import tiny_config


@pytest.fixture
def toy_dir(tmp_path):
    """A fixed toy problem: the target is the input's colours inverted, on smooth random images."""
    root = tmp_path / "toy"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        a = np.asarray(Image.fromarray(small).resize((32, 32), Image.BILINEAR))
        Image.fromarray(np.concatenate([a, 255 - a], 1)).save(root / f"{i}.png")
    return root


def test_training_lowers_l1(toy_dir, tmp_path):
    cfg = tiny_config(toy_dir, tmp_path, preprocess="none", epochs=40, epochs_decay=0, batch_size=4,
                      max_steps=80, log_every=1, dropout=False, ngf=16)
    run_dir = train(cfg)
    l1 = [r["G_L1"] for r in Run(run_dir).read_log()]
    assert len(l1) == 80
    assert np.median(l1[-10:]) < 0.5 * np.median(l1[:10])


def test_run_folder_layout(aligned_dir, tmp_path):
    run_dir = train(tiny_config(aligned_dir, tmp_path, max_steps=3, sample_every=2))
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "G.safetensors", "state.pt", "log.jsonl", "samples"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["mode"] == "pix2pix" and cfg["net_g"] == "unet_32" and cfg["seed"] == 1
    assert cfg["generators"]["G"]["directions"] == ["AtoB"]
    sd, spec = load_weights(run_dir / "G.safetensors")
    assert spec == cfg["generators"]["G"]["spec"] and "model.model.0.weight" in sd
    state = torch.load(run_dir / "state.pt", weights_only=True)
    assert state["step"] == 3 and set(state["nets"]) == {"G", "D"}
    samples = sorted((run_dir / "samples").iterdir())
    assert [p.name for p in samples] == ["step_0000002.png", "step_0000003.png"]
    assert Image.open(samples[0]).size[0] > 3 * 32  # input | output | target


def test_resume_continues_at_the_right_step_and_lr(aligned_dir, tmp_path):
    """3 + 5 steps with a resume in between equal 8 uninterrupted steps, weights included.

    6 images at batch 2 = 3 steps per epoch, so the resume happens at an epoch boundary and the LR
    must decay from epoch 2 (epochs=1, epochs_decay=3)."""
    opts = dict(batch_size=2, epochs=1, epochs_decay=3, log_every=1)
    straight = train(tiny_config(aligned_dir, tmp_path, name="straight", max_steps=8, **opts))
    first = train(tiny_config(aligned_dir, tmp_path, name="split", max_steps=4, **opts))
    state = torch.load(first / "state.pt", weights_only=True)
    assert (state["step"], state["epoch"], state["epoch_step"]) == (4, 1, 1)
    train(tiny_config(aligned_dir, tmp_path, name="split", max_steps=8, **opts), resume=True)

    log_a, log_b = Run(straight).read_log(), Run(first).read_log()
    assert [r["step"] for r in log_b] == list(range(1, 9))
    assert [r["lr"] for r in log_b] == [r["lr"] for r in log_a]
    assert log_b[3]["lr"] == pytest.approx(2e-4 * (1 - 1 / 4))
    assert [r["G_L1"] for r in log_b] == pytest.approx([r["G_L1"] for r in log_a], rel=1e-5)
    wa, _ = load_weights(straight / "G.safetensors")
    wb, _ = load_weights(first / "G.safetensors")
    assert all(torch.allclose(wa[k].float(), wb[k].float(), atol=1e-6) for k in wa)


def test_steps_fit_the_schedule_to_a_step_count(aligned_dir, tmp_path):
    """--steps 9 over 6 steps per epoch: constant, then decaying every step to 1/(D + 1), D = the
    steps' share of --epochs-decay; recorded in config.json; --max-steps still cuts it short."""
    from i2i.schedule import Schedule

    run_dir = train(tiny_config(aligned_dir, tmp_path, steps=9, epochs=1, epochs_decay=1, log_every=1))
    log = Run(run_dir).read_log()
    schedule = Schedule(1, 1, 6, 9)
    assert [r["step"] for r in log] == list(range(1, 10))
    assert [r["lr"] for r in log] == pytest.approx([2e-4 * schedule.factor(s, s // 6) for s in range(9)])
    assert log[-1]["lr"] == pytest.approx(2e-4 / (schedule.decay_steps + 1)) and schedule.decay_steps == 4
    assert json.loads((run_dir / "config.json").read_text())["steps"] == 9
    short = train(tiny_config(aligned_dir, tmp_path, name="short", steps=9, max_steps=4, log_every=1))
    assert [r["lr"] for r in Run(short).read_log()] == pytest.approx([r["lr"] for r in log[:4]])


def test_minutes_measure_then_fix_the_steps(aligned_dir, tmp_path, monkeypatch, caplog):
    """--minutes: the run measures its first steps, records the steps that fit as --steps, and
    decays the rate to its last step; --steps with the seed repeats it, as the help says; a resume
    keeps the plan; --minutes with --steps is refused. (A clock that ticks 10 ms each time it is
    read makes the plan the same on every machine.)"""
    from i2i.schedule import Schedule
    from i2i.train import resume_config

    ticking_budget(monkeypatch)
    cfg = tiny_config(aligned_dir, tmp_path, minutes=0.03, log_every=1, precision="fp32", threads=1)
    with caplog.at_level(logging.INFO, logger="i2i"):
        run_dir = train(cfg)
    saved = json.loads((run_dir / "config.json").read_text())
    steps = saved["steps"]
    assert saved["minutes"] == 0.03 and steps >= 1
    log = Run(run_dir).read_log()
    assert log[-1]["step"] == steps == torch.load(run_dir / "state.pt", weights_only=True)["step"]
    schedule = Schedule(1, 1, 6, steps)
    assert [r["lr"] for r in log] == pytest.approx([2e-4 * schedule.factor(r["step"] - 1, 0) for r in log])
    assert log[-1]["lr"] == pytest.approx(2e-4 / (schedule.decay_steps + 1))
    assert 170 < steps <= 180  # 1.8 s at 100 steps/s, less the warm-up

    assert f"--steps {steps} --seed 1 repeats this run" in caplog.text
    repeat = train(tiny_config(aligned_dir, tmp_path, name="repeat", steps=steps, seed=1, log_every=1, precision="fp32",
                               threads=1))
    assert [r["lr"] for r in Run(repeat).read_log()] == pytest.approx([r["lr"] for r in log])
    wa, _ = load_weights(run_dir / "G.safetensors")
    wb, _ = load_weights(repeat / "G.safetensors")
    assert all(torch.allclose(wa[k].float(), wb[k].float(), atol=1e-6) for k in wa)

    again = resume_config(run_dir, minutes=0.03)
    assert again.steps == steps
    with pytest.raises(UsageError, match="--minutes cannot change when resuming"):
        resume_config(run_dir, minutes=1.0)
    with pytest.raises(UsageError, match="--minutes 1 measures how many steps fit and sets --steps; give one"):
        train(tiny_config(aligned_dir, tmp_path, name="both", minutes=1.0, steps=5))
    assert not (tmp_path / "ck" / "both").exists()


class Ticking:
    """A clock that ticks 10 ms each time it is read: --minutes plans the same on every machine."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 0.01
        return self.now


def ticking_budget(monkeypatch, seen=None):
    import i2i.train

    class TickingBudget(StepBudget):
        def __init__(self, minutes, first_step, schedule, spent=0.0):
            super().__init__(minutes, first_step, schedule, spent=spent, clock=Ticking())
            if seen is not None:
                seen.append(spent)

    monkeypatch.setattr(i2i.train, "StepBudget", TickingBudget)


def test_the_plans_repeat_command_with_max_steps_repeats_the_run(aligned_dir, tmp_path, monkeypatch, caplog):
    """--minutes with --max-steps below the plan: the log's repeat command carries --max-steps, and
    running it gives the same weights."""
    import re

    ticking_budget(monkeypatch)
    with caplog.at_level(logging.INFO, logger="i2i"):
        run_dir = train(tiny_config(aligned_dir, tmp_path, minutes=0.03, max_steps=120, precision="fp32", threads=1))
    command = re.search(r"--steps (\d+) --max-steps (\d+) --seed (\d+) repeats this run", caplog.text)
    assert command, caplog.text
    steps, max_steps, seed = map(int, command.groups())
    assert max_steps == 120 < steps
    repeat = train(tiny_config(aligned_dir, tmp_path, name="repeat", steps=steps, max_steps=max_steps, seed=seed,
                               precision="fp32", threads=1))
    wa, _ = load_weights(run_dir / "G.safetensors")
    wb, _ = load_weights(repeat / "G.safetensors")
    assert all(torch.allclose(wa[k].float(), wb[k].float(), atol=1e-6) for k in wa)


def test_a_resumed_budget_counts_the_time_already_spent(aligned_dir, tmp_path, monkeypatch):
    """Stopped before its plan was fixed (here by --max-steps), a --minutes run resumes with the
    seconds it trained already taken off its budget; the state records them across sessions."""
    seen = []
    ticking_budget(monkeypatch, seen)
    run_dir = train(tiny_config(aligned_dir, tmp_path, minutes=0.05, max_steps=12, precision="fp32", threads=1))
    first = torch.load(run_dir / "state.pt", weights_only=True)["seconds"]
    assert json.loads((run_dir / "config.json").read_text())["steps"] is None  # not planned yet
    from i2i.train import resume_config

    train(resume_config(run_dir, max_steps=14), resume=True)
    assert seen == [0.0, first] and first > 0
    assert torch.load(run_dir / "state.pt", weights_only=True)["seconds"] > first


def test_a_resume_with_nothing_to_train_writes_nothing(aligned_dir, tmp_path, caplog):
    from i2i.train import resume_config

    run_dir = train(tiny_config(aligned_dir, tmp_path, steps=4, precision="fp32", threads=1))
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with caplog.at_level(logging.WARNING, logger="i2i"):
        train(resume_config(run_dir, steps=2), resume=True)
    assert "already at step 4, past --steps 2: nothing to train" in caplog.text
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_plan_notes_say_what_the_plan_is_and_when_steps_repeats_it():
    from types import SimpleNamespace

    from i2i.schedule import Schedule
    from i2i.train import plan_note

    def note(epochs, decay, steps, step, ran_out=False, max_steps=None):
        cfg = SimpleNamespace(minutes=0.5, steps=steps, max_steps=max_steps, seed=7)
        budget = SimpleNamespace(ran_out=ran_out, rate=12.5)
        return plan_note(cfg, Schedule(epochs, decay, 10, steps), budget, step, 10)

    assert note(1, 1, 100, 50) == ("--minutes 0.5: 100 steps fit at 12.5 steps/s, 10.0 epochs; the learning rate "
                                   "decays over the last 50 steps; --steps 100 --seed 7 repeats this run")
    assert "--steps 100 --max-steps 60 --seed 7 repeats" in note(1, 1, 100, 50, max_steps=60)
    assert "1 step fit" in note(1, 1, 1, 1) and "decays over the last 1 step;" in note(0, 1, 1, 1)
    assert "the learning rate stays constant; --steps 30 --seed 7 repeats" in note(1, 0, 30, 30)
    assert note(1, 1, 11, 11, ran_out=True) == ("--minutes 0.5: the time ran out after 11 steps, before the learning "
                                                "rate could decay; every one trained at the starting rate")
    assert note(0, 1, 90, 11).endswith("the 11 steps measured trained at the starting rate, as --epochs 0 has no "
                                       "constant phase, so --steps does not repeat this run exactly")


def test_a_config_built_by_hand_gets_the_same_checks(aligned_dir, tmp_path):
    import dataclasses

    cfg = dataclasses.replace(tiny_config(aligned_dir, tmp_path), minutes=float("nan"))
    with pytest.raises(UsageError, match="--minutes must be above 0"):
        train(cfg)
    assert not (tmp_path / "ck" / "tiny").exists()


def test_existing_run_is_not_overwritten(aligned_dir, tmp_path):
    train(tiny_config(aligned_dir, tmp_path, max_steps=1))
    with pytest.raises(UsageError, match="already exists; add --resume"):
        train(tiny_config(aligned_dir, tmp_path, max_steps=1))
    with pytest.raises(UsageError, match="no run to resume"):
        train(tiny_config(aligned_dir, tmp_path, name="other", max_steps=1), resume=True)


def test_fewer_images_than_batch(aligned_dir, tmp_path):
    with pytest.raises(UsageError, match="fewer than --batch-size 8"):
        train(tiny_config(aligned_dir, tmp_path, batch_size=8))


def test_nan_loss_stops_with_the_step(aligned_dir, tmp_path):
    """An infinite learning rate is refused up front now (it used to reach the loop and turn the loss
    NaN at step 1); the NaN message itself and its advice are tested in test_run_state.py."""
    from i2i.errors import UsageError

    with pytest.raises(UsageError, match="--lr: is Infinity, not a finite number"):
        train(tiny_config(aligned_dir, tmp_path, lr=float("inf"), max_steps=5, gan_loss="lsgan"))


def test_ctrl_c_saves_and_resumes(aligned_dir, tmp_path):
    """SIGINT finishes the step, saves a consistent checkpoint and exits 130; --resume continues."""
    import signal
    import subprocess
    import sys
    import time

    ck = tmp_path / "ck"
    cmd = [sys.executable, "-m", "i2i", "train", "--a", str(aligned_dir), "--name", "c", "--checkpoints-dir", str(ck),
           "--net-g", "unet_32", "--ngf", "8", "--ndf", "8", "--load-size", "36", "--crop-size", "32",
           "--workers", "1", "--seed", "0", "--epochs", "1000", "--epochs-decay", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = ck / "c" / "log.jsonl"
    deadline = time.time() + 60
    while not (log.is_file() and log.read_text().strip()) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted at step" in err
    step = int(err.split("interrupted at step")[1].split(";")[0])
    state = torch.load(ck / "c" / "state.pt", weights_only=True)
    assert state["step"] == step >= 1
    resumed = subprocess.run([sys.executable, "-m", "i2i", "train", "--name", "c", "--checkpoints-dir", str(ck),
                              "--resume", "--max-steps", str(step + 2), "--workers", "0"],
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(ck / "c" / "state.pt", weights_only=True)["step"] == step + 2


def test_resume_before_the_first_checkpoint_starts_over(aligned_dir, tmp_path, caplog):
    cfg = tiny_config(aligned_dir, tmp_path, max_steps=2, log_every=1)
    run = train(cfg)
    for name in ("state.pt", "G.safetensors"):  # as if killed before its first save (state.pt is written first)
        (run / name).unlink()
    train(tiny_config(aligned_dir, tmp_path, max_steps=2, log_every=1), resume=True)
    assert "no checkpoint yet" in caplog.text
    assert torch.load(run / "state.pt", weights_only=True)["step"] == 2
    steps = [r["step"] for r in Run(run).read_log() if "eval" not in r and "val" not in r]
    assert steps == [1, 2]  # the unsaved steps were trained again, not logged twice


def test_run_files_get_the_usual_permissions(aligned_dir, tmp_path):
    """Atomic writes start from a private temp file; the result must still be readable by others
    (safetensors replaces the file it is given, so the mode is set after writing)."""
    import os

    from conftest import tiny_config

    from i2i.train import train

    mask = os.umask(0o022)
    try:
        run = train(tiny_config(aligned_dir, tmp_path, max_steps=1))
    finally:
        os.umask(mask)
    for name in ("config.json", "G.safetensors", "state.pt"):
        assert (run / name).stat().st_mode & 0o777 == 0o644, name
