"""i2i eval on tiny runs: paired scores (with a palette), unpaired cycle and identity scores, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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

    s = ev.evaluate_paired(Identity(), ev.paired_data(str(root), None, "AtoB", 3, 3, None), None, None)
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


def ab_images(root, n: int, half: int):
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (half, 2 * half, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def test_scored_at_the_size_the_run_trained_at(tmp_path):
    """A run trained on 32-pixel crops (resize_and_crop) is scored on test pairs resized to 32, as the
    reference's test.py does, and so is its validation during training; --size overrides, 0 keeps
    the images' own size."""
    from i2i import evaluate as ev
    from i2i.validation import validation_data

    data = ab_images(tmp_path / "ab48", 3, 48)
    cfg = tiny_config(data, tmp_path, max_steps=1)
    assert ev.scoring_size(cfg.preprocess, cfg.crop_size) == 32
    assert ev.scoring_size("scale_width", 32) is None and ev.scoring_size("resize_and_crop", None) is None
    seen = []

    class Identity:
        def __call__(self, x):
            seen.append(tuple(x.shape))
            return x.clone()

    for size, side in ((32, 32), (None, 48), (40, 40)):
        seen.clear()
        ev.evaluate_paired(Identity(), ev.paired_data(str(data), None, "AtoB", 3, 3, size), None, None)
        assert seen == [(1, 3, side, side)] * 3
    val = validation_data(tiny_config(data, tmp_path, val=str(data)))
    assert val[(0, 0)]["A"].shape == val[(0, 0)]["B"].shape == (3, 32, 32)

    run = train(cfg)
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(run), "--a", str(data), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "resized to 32x32" in result.output and json.loads((run / "eval.json").read_text())["size"] == 32
    result = runner.invoke(app, ["eval", str(run), "--a", str(data), "--threads", "1", "--size", "0"])
    assert result.exit_code == 0 and "at their own size" in result.output
    assert json.loads((run / "eval.json").read_text())["size"] is None
    result = runner.invoke(app, ["eval", str(run), "--a", str(data), "--size", "-3"])
    assert result.exit_code == 2 and "--size -3" in result.output and "Traceback" not in result.output
    check_scoring_sizes(runner, run, data)


@settings(max_examples=25, deadline=None)
@given(size=st.one_of(st.integers(-10**6, -1), st.integers(1, 10)))
def check_scoring_sizes(runner, run, data, size):
    """Any --size that cannot be scored (negative, or under SSIM's 11-pixel window, where a 1x1 score
    of a barely trained model read SSIM 0.9997) is refused in one line, naming the way out; the
    advised --size 11 scores."""
    result = runner.invoke(app, ["eval", str(run), "--a", str(data), "--size", str(size)])
    assert result.exit_code == 2 and f"--size {size} cannot be scored" in " ".join(result.output.split())
    assert "Traceback" not in result.output and len([l for l in result.output.splitlines() if l.strip()]) == 1
    if size == 1:
        result = runner.invoke(app, ["eval", str(run), "--a", str(data), "--threads", "1", "--size", "11"])
        assert result.exit_code == 0 and "resized to 11x11" in result.output


def test_unpaired_scored_at_the_trained_size(tmp_path):
    from i2i import evaluate as ev

    a, b = ab_images(tmp_path / "a", 2, 24), ab_images(tmp_path / "b", 2, 24)  # 48x24 images
    seen = []

    class Identity:
        in_channels, spec = 3, {"out_channels": 3}

        def __call__(self, x):
            seen.append(tuple(x.shape))
            return x.clone()

    files_a, files_b = sorted(a.iterdir()), sorted(b.iterdir())
    s = ev.evaluate_unpaired(Identity(), Identity(), files_a, files_b, None, size=16)
    assert set(seen) == {(1, 3, 16, 16)} and s["cycle_L1"] == 0
    seen.clear()
    ev.evaluate_unpaired(Identity(), Identity(), files_a, files_b, None)
    assert set(seen) == {(1, 3, 24, 48)}


def test_no_eval_scores_with_dropout_and_batch_statistics_on(aligned_dir, tmp_path):
    """--no-eval: the reference's test.py without --eval (dropout on, batch norm on the test batch);
    eval.json says which was used."""
    run = train(tiny_config(aligned_dir, tmp_path, max_steps=2))
    runner = CliRunner()
    scores = {}
    for flag in ([], ["--no-eval"]):
        result = runner.invoke(app, ["eval", str(run), "--a", str(aligned_dir), "--threads", "1", "--precision", "fp32",
                                     *flag])
        assert result.exit_code == 0, result.output
        record = json.loads((run / "eval.json").read_text())
        assert record["eval_mode"] is (not flag)
        scores[bool(flag)] = record["scores"]["L1"]
    assert scores[True] != scores[False]
