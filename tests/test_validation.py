"""Validation during training: scores in log.jsonl, the best checkpoint kept and loadable."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_config, tiny_unpaired_config
from i2i.errors import UsageError
from i2i.train import resume_config, train
from i2i.translator import load_translator


def _val_rows(run):
    return [r for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if r.get("val")]


def test_pix2pix_validation_logs_scores_and_keeps_the_best(aligned_dir, tmp_path):
    run = train(tiny_config(aligned_dir, tmp_path, val=str(aligned_dir), val_every=2, max_steps=6, lr=2e-3))
    rows = _val_rows(run)
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert all({"L1", "PSNR", "SSIM"} <= r.keys() for r in rows)
    best = json.loads((run / "best" / "config.json").read_text())["best"]
    assert best["metric"] == "L1"
    assert best["value"] == min(r["L1"] for r in rows)
    assert best["step"] == min(rows, key=lambda r: r["L1"])["step"]
    t = load_translator(run / "best")
    assert t(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_best_step_follows_the_chosen_metric(aligned_dir, tmp_path):
    run = train(tiny_config(aligned_dir, tmp_path, val=str(aligned_dir), val_every=1, max_steps=4,
                            best_metric="PSNR", lr=2e-3))
    rows = _val_rows(run)
    best = json.loads((run / "best" / "config.json").read_text())["best"]
    assert best["step"] == max(rows, key=lambda r: r["PSNR"])["step"]  # higher is better for PSNR


def test_val_fraction_holds_images_out_of_training(aligned_dir, tmp_path, caplog):
    caplog.set_level("INFO", logger="i2i")
    cfg = tiny_config(aligned_dir, tmp_path, val_fraction=0.34, max_steps=2)
    run = train(cfg)
    assert "4 examples" in caplog.text  # 6 images, 2 held out
    assert _val_rows(run)[-1]["images"] == 2
    resumed = train(resume_config(run, max_steps=3), resume=True)  # the same split again
    assert _val_rows(resumed)[-1]["images"] == 2


def test_unpaired_validation_uses_the_round_trip_score(unpaired_dirs, tmp_path):
    a, b = unpaired_dirs
    run = train(tiny_unpaired_config(unpaired_dirs, tmp_path, val=str(a), val_b=str(b), max_steps=2))
    row = _val_rows(run)[-1]
    assert row["cycle_L1"] == pytest.approx((row["cycle_L1_A"] + row["cycle_L1_B"]) / 2)
    assert load_translator(run / "best", "BtoA").direction == "BtoA"


def test_validation_option_errors(aligned_dir, unpaired_dirs, tmp_path):
    with pytest.raises(UsageError, match="--val-every needs held-out images"):
        tiny_config(aligned_dir, tmp_path, val_every=3)
    with pytest.raises(UsageError, match="not both"):
        tiny_config(aligned_dir, tmp_path, val=str(aligned_dir), val_fraction=0.2)
    with pytest.raises(UsageError, match="--val-b"):
        train(tiny_unpaired_config(unpaired_dirs, tmp_path, val=str(unpaired_dirs[0]), max_steps=1))
    with pytest.raises(UsageError, match="--best-metric"):
        train(tiny_config(aligned_dir, tmp_path / "m", val=str(aligned_dir), max_steps=1, best_metric="accuracy"))
