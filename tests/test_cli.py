"""The CLI through typer's CliRunner: happy paths, and every error as one line with the right code."""

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from i2i.cli import app

from conftest import random_image

runner = CliRunner()

TINY = ["--net-g", "unet_32", "--ngf", "8", "--ndf", "8", "--load-size", "36", "--crop-size", "32",
        "--workers", "0", "--seed", "0"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, code, *fragments):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    error_lines = [line for line in lines if line.startswith("error:")]
    assert len(error_lines) == 1, result.output
    joined = " ".join(result.output.split())  # rich may wrap long lines in narrow terminals
    for fragment in fragments:
        assert fragment in joined, result.output


def test_help_and_version():
    for args in ([], ["--help"], ["train", "--help"], ["translate", "--help"], ["prepare", "--help"], ["demo", "--help"]):
        result = invoke(*args)
        assert result.exit_code in (0, 2) and "Usage" in result.output
    assert "i2i 0.1.0" in invoke("--version").output


def test_help_does_not_import_torch():
    code = "import sys; from i2i.cli import app; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_then_translate(aligned_dir, tmp_path):
    ck = tmp_path / "ck"
    result = invoke("train", "--a", aligned_dir, "--name", "t", "--checkpoints-dir", ck, "--max-steps", "2", *TINY)
    assert result.exit_code == 0, result.output
    assert (ck / "t" / "G.safetensors").is_file()
    photos = tmp_path / "photos"
    photos.mkdir()
    random_image(45, 37).save(photos / "p.jpg")
    result = invoke("translate", photos, "--checkpoints-dir", ck)
    assert result.exit_code == 0, result.output
    out = tmp_path / "photos_t" / "p.jpg"
    assert Image.open(out).size == (45, 37)
    assert "1 image(s) written" in result.output
    # resume extends the same run
    result = invoke("train", "--name", "t", "--checkpoints-dir", ck, "--max-steps", "3", "--resume", "--workers", "0")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args,code,fragments", [
    (["train", "--a", "{tmp}/missing", "--name", "x"], 2, ["missing: no such folder"]),
    (["train", "--a", "{empty}", "--name", "x"], 2, ["no images found"]),
    (["train", "--a", "{ab}", "--name", "x", "--mode", "cycle"], 2, ["--mode cycle needs two folders"]),
    (["train", "--a", "{ab}", "--name", "x", "--mode", "vae", "--likelihood", "poisson"], 2, ["--likelihood must be gaussian or bernoulli"]),
    (["train", "--a", "{ab}", "--b", "{ab}", "--name", "x", "--mode", "cycle", "--output-nc", "1"], 2,
     ["identity loss needs as many input as output channels", "--lambda-identity 0"]),
    (["train", "--a", "{ab}", "--name", "x", "--mode", "nope"], 2, ["--mode 'nope' is not one of"]),
    (["train", "--a", "{ab}", "--name", "x", "--crop-size", "200", "--load-size", "286"], 2, ["does not suit --net-g unet_256", "multiple of 256"]),
    (["train", "--a", "{ab}", "--name", "x", "--norm", "group"], 2, ["--norm must be one of"]),
    (["train", "--name", "x"], 2, ["--a is required"]),
    (["train", "--resume"], 2, ["--resume needs --name"]),
    (["translate", "{tmp}/nope.jpg", "--model", "{model}"], 2, ["nope.jpg: no such file or folder"]),
    (["translate", "{ab}", "--model", "{tmp}/nothing"], 2, ["no such run folder or file"]),
    (["translate", "{ab}", "--model", "{model}", "--size", "50"], 2, ["--size 50", "multiple of 32"]),
    (["translate", "{ab}", "--model", "{model}", "--out", "{ab}/inside"], 2, ["inside the input folder"]),
    (["translate", "{bad}", "--model", "{model}", "--out", "{tmp}/o"], 1, ["could not be translated"]),
    (["prepare", "combine", "--a", "{tmp}/no", "--b", "{ab}", "--out", "{tmp}/c"], 2, ["no"]),
])
def test_errors_are_one_line(args, code, fragments, tmp_path, aligned_dir):
    from i2i import nets
    from i2i.runs import save_weights

    spec = {"name": "unet_32", "in_channels": 3, "out_channels": 3, "ngf": 4, "norm": "batch", "dropout": False}
    save_weights(tmp_path / "G.safetensors", nets.create(**spec), spec)
    (tmp_path / "empty").mkdir()
    (tmp_path / "badimgs").mkdir()
    (tmp_path / "badimgs" / "x.jpg").write_bytes(b"\xff\xd8 truncated")
    names = {"tmp": tmp_path, "ab": aligned_dir, "empty": tmp_path / "empty", "model": tmp_path / "G.safetensors",
             "bad": tmp_path / "badimgs"}
    result = invoke(*[a.format(**names) for a in args])
    assert_one_line_error(result, code, *fragments)


def test_data_errors(tmp_path):
    odd = tmp_path / "odd"
    odd.mkdir()
    random_image(33, 16).save(odd / "o.png")
    assert_one_line_error(invoke("train", "--a", odd, "--name", "x", *TINY), 2, "o.png: width 33 is odd")
    for side in "AB":
        (tmp_path / "pairs" / side).mkdir(parents=True)
    random_image(8, 8).save(tmp_path / "pairs" / "A" / "1.png")
    random_image(8, 8).save(tmp_path / "pairs" / "B" / "2.png")
    assert_one_line_error(invoke("train", "--a", tmp_path / "pairs", "--name", "x", *TINY), 2, "no file names match",
                          "1.png", "2.png", "--mode cycle")


def test_bad_option_is_a_usage_error():
    result = invoke("train", "--no-such-option")
    assert result.exit_code == 2 and "No such option" in result.output


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.tuples(st.just("--steps"), st.integers(max_value=0).map(str)),
    st.tuples(st.just("--minutes"), st.one_of(st.floats(max_value=0, allow_nan=False), st.floats(min_value=525_600.001),
                                            st.just(float("nan"))).map(repr)),
))
def test_a_run_length_out_of_range_is_one_line(aligned_dir, tmp_path, bad):
    flag, value = bad
    result = invoke("train", "--a", aligned_dir, "--name", "x", "--checkpoints-dir", tmp_path / "ck", flag, value, *TINY)
    assert_one_line_error(result, 2, flag)
    assert not (tmp_path / "ck" / "x").exists()


def test_minutes_train_a_fitted_schedule(aligned_dir, tmp_path):
    """The advice for --minutes with --steps ("give one of them") works either way."""
    ck = tmp_path / "ck"
    result = invoke("train", "--a", aligned_dir, "--name", "m", "--checkpoints-dir", ck, "--minutes", "0.01",
                    "--steps", "3", *TINY)
    assert_one_line_error(result, 2, "--minutes 0.01", "give one of them")
    for flag, value in (("--minutes", "0.01"), ("--steps", "3")):
        result = invoke("train", "--a", aligned_dir, "--name", flag[2:], "--checkpoints-dir", ck, flag, value, *TINY)
        assert result.exit_code == 0, result.output
        assert json.loads((ck / flag[2:] / "config.json").read_text())["steps"] >= 1


def test_prepare_round_trip(tmp_path):
    for side in "AB":
        (tmp_path / side).mkdir()
        random_image(8, 6, seed=ord(side)).save(tmp_path / side / "1.png")
    result = invoke("prepare", "combine", "--a", tmp_path / "A", "--b", tmp_path / "B", "--out", tmp_path / "AB")
    assert result.exit_code == 0 and Image.open(tmp_path / "AB" / "1.png").size == (16, 6)
    result = invoke("prepare", "split-ab", tmp_path / "AB", "--out", tmp_path / "back")
    assert result.exit_code == 0
    assert Image.open(tmp_path / "back" / "B" / "1.png").tobytes() == Image.open(tmp_path / "B" / "1.png").tobytes()


def test_resume_keeps_the_run_settings(aligned_dir, tmp_path):
    ck = tmp_path / "ck"
    args = ["--name", "r", "--checkpoints-dir", ck, "--workers", "0"]
    result = invoke("train", "--a", aligned_dir, *args, *TINY[:10], "--epochs", "2", "--epochs-decay", "1", "--max-steps", "1")
    assert result.exit_code == 0, result.output
    result = invoke("train", *args, "--resume", "--max-steps", "2")
    assert result.exit_code == 0, result.output
    import json

    cfg = json.loads((ck / "r" / "config.json").read_text())
    assert (cfg["epochs"], cfg["epochs_decay"], cfg["max_steps"], cfg["net_g"]) == (2, 1, 2, "unet_32")
    assert_one_line_error(invoke("train", *args, "--resume", "--net-g", "unet_64"), 2, "--net-g cannot change when resuming")
    assert_one_line_error(invoke("train", "--name", "nope", "--checkpoints-dir", ck, "--resume"), 2, "no run to resume")


def test_cycle_through_the_cli_both_directions(unpaired_dirs, tmp_path):
    a, b = unpaired_dirs
    ck = tmp_path / "ck"
    result = invoke("train", "--mode", "cycle", "--a", a, "--b", b, "--name", "c", "--checkpoints-dir", ck,
                    "--net-g", "resnet_6blocks", "--ngf", "4", "--ndf", "4", "--load-size", "36", "--crop-size", "32",
                    "--workers", "0", "--max-steps", "2")
    assert result.exit_code == 0, result.output
    assert {p.name for p in (ck / "c").glob("*.safetensors")} == {"G_A.safetensors", "G_B.safetensors"}
    for direction in ("AtoB", "BtoA"):
        result = invoke("translate", a, "--model", ck / "c", "--direction", direction, "--out", tmp_path / direction)
        assert result.exit_code == 0, result.output
        assert f"({'resnet_6blocks'}, {direction})" in " ".join(result.output.split())
    assert Image.open(tmp_path / "AtoB" / "a4.png").tobytes() != Image.open(tmp_path / "BtoA" / "a4.png").tobytes()
    assert_one_line_error(invoke("translate", a, "--model", ck / "c", "--direction", "sideways"), 2, "--direction must be")
