"""Killed work: a training run killed with SIGKILL at random moments always resumes and then matches
an uninterrupted run loss for loss; a killed translate, re-run, gives the same files as one run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import random_image, tiny_config

ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
STEPS = 40


def _losses(run: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return {r["step"]: {k: v for k, v in r.items() if k not in ("time", "epoch")} for r in rows if "eval" not in r}


def _train_args(data: Path, ck: Path) -> list[str]:
    return [sys.executable, "-m", "i2i", "train", "--a", str(data), "--name", "tiny", "--checkpoints-dir", str(ck),
            "--net-g", "unet_32", "--ngf", "8", "--ndf", "8", "--load-size", "36", "--crop-size", "32",
            "--epochs", "10", "--epochs-decay", "10", "--workers", "0", "--seed", "1", "--max-steps", str(STEPS),
            "--save-every", "3", "--sample-every", "1000", "--threads", "1", "--precision", "fp32"]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared (exit code {proc.returncode})")
        time.sleep(0.02)


def test_training_killed_at_random_moments_resumes_and_matches(aligned_dir, tmp_path):
    """Three SIGKILLs at random moments of the same run (once a new log line shows it is training,
    after a random delay), each followed by a resume; the finished run's losses equal an
    uninterrupted run's at every step (fixed seed, fp32, one thread)."""
    import torch

    from i2i.train import resume_config, train

    torch.set_num_threads(1)
    reference = train(tiny_config(aligned_dir, tmp_path / "ref", max_steps=STEPS, save_every=3, log_every=1,
                                  threads=1, precision="fp32", epochs=10, epochs_decay=10))
    ck = tmp_path / "killed"
    rng = random.Random(1234)
    args = _train_args(aligned_dir, ck) + ["--log-every", "1"]
    outcomes = []
    for trial in range(3):
        log = ck / "tiny" / "log.jsonl"
        before = log.read_text().count("\n") if log.exists() else 0
        proc = subprocess.Popen(args + (["--resume"] if trial else []), env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _wait_for(log, proc)
        while log.read_text().count("\n") <= before and proc.poll() is None:  # training steps again
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = ck / "tiny" / "state.pt"
        outcomes.append(torch.load(state, weights_only=True)["step"] if state.exists() else None)
    print("checkpoint step after each kill:", outcomes)
    run = train(resume_config(ck / "tiny"), resume=True)
    assert any(s is not None for s in outcomes), outcomes  # at least one kill came after a checkpoint
    expected, got = _losses(reference), _losses(run)
    assert sorted(got) == sorted(expected)
    assert got == expected


def test_translate_killed_half_way_and_rerun_matches_one_run(tmp_path):
    from i2i import nets
    from i2i.runs import save_weights

    src = tmp_path / "in"
    src.mkdir()
    for i in range(40):
        random_image(64, 64, seed=i).save(src / f"{i:02d}.png")
    spec = {"name": "resnet_6blocks", "in_channels": 3, "out_channels": 3, "ngf": 16, "norm": "instance",
            "dropout": False}
    save_weights(tmp_path / "G.safetensors", nets.create(**spec), spec)

    def command(out):
        return [sys.executable, "-m", "i2i", "translate", str(src), "--model", str(tmp_path / "G.safetensors"),
                "--out", str(out), "--threads", "1"]

    subprocess.run(command(tmp_path / "once"), env=ENV, check=True, capture_output=True)
    proc = subprocess.Popen(command(tmp_path / "twice"), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(tmp_path / "twice" / "05.png", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in (tmp_path / "twice").glob("*.png"))
    assert 0 < len(done) < 40, "the kill should land half-way"
    rerun = subprocess.run(command(tmp_path / "twice"), env=ENV, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(done)} already there" in " ".join(rerun.stdout.split())
    once = {p.name: p.read_bytes() for p in (tmp_path / "once").glob("*.png")}
    twice = {p.name: p.read_bytes() for p in (tmp_path / "twice").glob("*.png")}
    assert len(once) == 40 and once == twice


def test_pickled_state_is_refused_on_resume(aligned_dir, tmp_path):
    import pickle

    from i2i.errors import I2IError
    from i2i.train import resume_config, train

    run = train(tiny_config(aligned_dir, tmp_path, max_steps=1))
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (run / "state.pt").write_bytes(pickle.dumps({"nets": Evil()}))
    with pytest.raises(I2IError, match="refused"):
        train(resume_config(run), resume=True)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", ".hidden", "a/b"])
def test_run_names_that_escape_checkpoints_are_refused(aligned_dir, tmp_path, name):
    from typer.testing import CliRunner

    from i2i.cli import app

    for extra in ([], ["--resume"]):
        result = CliRunner().invoke(app, ["train", "--a", str(aligned_dir), "--name", name,
                                          "--checkpoints-dir", str(tmp_path / "ck"), *extra])
        assert result.exit_code == 2 and "plain folder name" in result.output
    assert not (tmp_path / "escape").exists()


def test_config_from_a_newer_or_unknown_format_is_reported(aligned_dir, tmp_path):
    from i2i.errors import I2IError
    from i2i.runs import Run
    from i2i.train import train

    run = Run(train(tiny_config(aligned_dir, tmp_path, max_steps=1)))
    doc = run.read_config()
    assert doc["format"] == 1 and doc["i2i_version"]
    for fmt, words in ((2, "newer than this i2i reads"), ("x", "unknown config format")):
        run.config_path.write_text(json.dumps({**doc, "format": fmt}))
        with pytest.raises(I2IError, match=words):
            run.read_config()
