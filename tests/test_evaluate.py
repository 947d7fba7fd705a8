"""i2i eval on tiny runs: paired scores (with a palette), unpaired cycle and identity scores, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import tiny_config, tiny_unpaired_config
from i2i.cli import app
from i2i.errors import UsageError
from i2i.evaluate import evaluate
from i2i.runtime import resolve
from i2i.train import train



@pytest.fixture(scope="module")
def runtime():
    return resolve("cpu", "fp32", threads=1)


def test_paired_eval_scores_and_writes_eval_json(aligned_dir, tmp_path, runtime):
    run = train(tiny_config(aligned_dir, tmp_path, max_steps=2))
    palette = tmp_path / "palette.txt"
    palette.write_text("0 0 0\n255 255 255\n")
    record = evaluate(run, str(aligned_dir), palette_file=str(palette), runtime=runtime)
    s = record["scores"]
    assert s["images"] == 6 and 0 <= s["L1"] <= 1 and 0 < s["PSNR"] < 100 and -1 <= s["SSIM"] <= 1
    assert 0 <= s["pixel_accuracy"] <= 1 and 0 <= s["mean_iou"] <= 1
    assert record["step"] == 2
    assert json.loads((run / "eval.json").read_text()) == record


def test_perfect_outputs_score_perfectly(tmp_path):
    """With a generator that returns its input and targets equal to inputs, L1 is 0 and SSIM 1."""
    from i2i import evaluate as ev

    root = tmp_path / "same"
    root.mkdir()
    for i in range(2):
        half = np.asarray(Image.new("RGB", (16, 16), (i * 100, 50, 200)))
        Image.fromarray(np.concatenate([half, half], axis=1)).save(root / f"{i}.png")

    class Identity:
        in_channels, spec = 3, {"out_channels": 3}

        def __call__(self, x):
            return x.clone()

    s = ev.evaluate_paired(Identity(), ev.paired_data(str(root), None, "AtoB", Identity()), None, None)
    assert s["L1"] == 0 and s["SSIM"] == pytest.approx(1.0) and s["PSNR"] == 100.0


def test_unpaired_eval_gives_cycle_and_identity_scores(unpaired_dirs, tmp_path, runtime):
    run = train(tiny_unpaired_config(unpaired_dirs, tmp_path, max_steps=1))
    a, b = (str(d) for d in unpaired_dirs)
    s = evaluate(run, a, b, runtime=runtime)["scores"]
    assert {"cycle_L1_A", "cycle_L1_B", "identity_L1_A", "identity_L1_B"} <= s.keys()
    assert s["images"] == 8 and all(0 <= s[k] <= 1 for k in s if k.endswith(("_A", "_B")))
    with pytest.raises(UsageError, match="give both test folders"):
        evaluate(run, a, runtime=runtime)


def test_eval_cli_prints_a_table_and_refuses_generative_runs(aligned_dir, tmp_path):
    run = train(tiny_config(aligned_dir, tmp_path, max_steps=1))
    result = CliRunner().invoke(app, ["eval", str(run), "--a", str(aligned_dir), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "PSNR" in result.output and "eval.json" in result.output
    doc = json.loads((run / "config.json").read_text())
    doc["mode"] = "gan"
    (run / "config.json").write_text(json.dumps(doc))
    result = CliRunner().invoke(app, ["eval", str(run), "--a", str(aligned_dir)])
    assert result.exit_code == 2 and "gan run" in result.output
