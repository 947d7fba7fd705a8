"""tools/bench_quality.py: its statistics against hand-computed figures, and a smoke run on tiny data
laid out as facades/ (train/ and test/ of A|B images)."""

from __future__ import annotations

import json
import math

import pytest

from conftest import ab_folder, load_tool



@pytest.fixture(scope="module")
def bq():
    return load_tool("bench_quality")


def test_mean_and_sample_sd_by_hand(bq):
    assert bq.mean_sd([1.0, 2.0, 3.0, 6.0]) == (3.0, pytest.approx(math.sqrt(14 / 3)))  # squares 4+1+0+9
    assert bq.mean_sd([0.5]) == (0.5, 0.0)


def test_welch_by_hand(bq):
    """a = 1, 2, 3 (variance 1), b = 2, 4, 6 (variance 4): difference 2, standard error sqrt(1/3 + 4/3),
    t = 2 / 1.291 = 1.549, Welch-Satterthwaite df = (5/3)^2 / ((1/3)^2 / 2 + (4/3)^2 / 2) = 2.941,
    two-sided p = 0.2216 (the t distribution's tail at that df)."""
    w = bq.welch([1, 2, 3], [2, 4, 6])
    assert w["diff"] == pytest.approx(2.0)
    assert w["se"] == pytest.approx(math.sqrt(5 / 3))
    assert w["t"] == pytest.approx(1.5492, abs=1e-4)
    assert w["df"] == pytest.approx(2.9412, abs=1e-4)
    assert w["p"] == pytest.approx(0.2216, abs=1e-3)
    far = bq.welch([0.30, 0.31, 0.32], [0.40, 0.41, 0.42])
    assert far["p"] < 0.01  # ten standard deviations apart: real
    assert math.isnan(bq.welch([1.0], [2.0, 3.0])["p"])  # one seed a side: no spread to test against


def test_options_parse_to_numbers_and_flags(bq):
    assert bq.parse_option("lr=0.0004") == ("lr", 0.0004)
    assert bq.parse_option("batch-size=4") == ("batch_size", 4)
    assert bq.parse_option("flip=false") == ("flip", False)
    assert bq.parse_option("net_g=unet_32") == ("net_g", "unet_32")


def test_variants_parse_to_a_name_and_options(bq):
    import argparse

    assert bq.parse_variant("lr4e-4:lr=0.0004,batch_size=4") == ("lr4e-4", {"lr": 0.0004, "batch_size": 4})
    for bad in ("lr=0.0004", "name:", ":lr=1"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected NAME:KEY=VALUE"):
            bq.parse_variant(bad)
    for bad in ("a/b:lr=1", "a b:lr=1"):
        with pytest.raises(argparse.ArgumentTypeError):
            bq.parse_variant(bad)


def test_loop_seconds_add_up_resumed_segments(bq, tmp_path):
    log = [{"step": 1, "time": 0.5}, {"step": 2, "time": 1.5}, {"eval": True, "step": 2},
           {"step": 3, "time": 0.25}, {"step": 4, "time": 1.0}]  # the resume restarts the clock
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in log))
    assert bq.loop_seconds(tmp_path) == pytest.approx(2.5)


def test_smoke_run_on_tiny_facades(bq, tmp_path, capsys):
    root = tmp_path / "data" / "facades"
    ab_folder(root / "train")
    ab_folder(root / "test")
    out = tmp_path / "out"
    argv = ["facades-label", "--data-root", str(tmp_path / "data"), "--out", str(out), "--steps", "2",
            "--eval-every", "1", "--seeds", "2", "--variant", "tinylr:lr=0.0001,precision=fp32", "--threads", "1",
            "--option", "net_g=unet_32", "--option", "ngf=8", "--option", "ndf=8", "--option", "load_size=36",
            "--option", "crop_size=32", "--option", "workers=0", "--grid", str(tmp_path / "grid.png")]
    bq.main(argv)
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size == (3 * 32 + 4 * 2, 4 * 32 + 5 * 2)  # 4 rows of 3, 2-pixel lines
    records = json.loads((out / "results.json").read_text())
    assert [(r["variant"], r["seed"], r["step"]) for r in records] == [
        ("tinylr", 0, 1), ("tinylr", 0, 2), ("tinylr", 1, 1), ("tinylr", 1, 2)]
    assert json.loads((out / "facades-label_tinylr_seed0" / "config.json").read_text())["lr"] == 0.0001
    assert all(set(r["scores"]) == {"pixel_accuracy", "class_accuracy", "mean_iou"} for r in records)
    assert all(0 <= v <= 1 for r in records for v in r["scores"].values())
    assert records[1]["seconds"] > records[0]["seconds"] > 0
    printed = capsys.readouterr().out
    assert "facades-label" in printed and "pixel_accuracy" in printed
    bq.main(["facades-label", "--out", str(out), "--summary"])
    assert "pixel_accuracy" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="exists from an earlier call"):
        bq.main(argv)
    with pytest.raises(SystemExit, match="no such dataset folder"):
        bq.main(["facades-label", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o2")])
    assert not (tmp_path / "o2").exists()  # nothing made before the data is found
    bad_option = argv[:argv.index("--variant")] + ["--option", "bogus_key=3", "--out", str(tmp_path / "o3")]
    with pytest.raises(SystemExit) as e:  # i2i's own one-line message, not a traceback
        bq.main(bad_option)
    assert str(e.value).startswith("auto: --bogus-key") and "\n" not in str(e.value)
    assert not (tmp_path / "o3").exists()


def test_smoke_run_on_tiny_horse2zebra(bq, tmp_path, capsys):
    from conftest import random_image
    from PIL import Image

    root = tmp_path / "data" / "horse2zebra"
    for folder, seed in (("trainA", 0), ("trainB", 10), ("testA", 20), ("testB", 30)):
        (root / folder).mkdir(parents=True)
        for i in range(3):
            random_image(40, 40, seed=seed + i).save(root / folder / f"{i}.png")
    out = tmp_path / "out"
    bq.main(["horse2zebra", "--data-root", str(tmp_path / "data"), "--out", str(out), "--steps", "1", "--seeds", "1",
             "--precision", "fp32", "--threads", "1", "--option", "net_g=unet_32", "--option", "ngf=4",
             "--option", "ndf=4", "--option", "load_size=36", "--option", "crop_size=32", "--option", "workers=0",
             "--grid", str(tmp_path / "grid.png")])
    record, = json.loads((out / "results.json").read_text())
    assert set(record["scores"]) == {"cycle_L1", "identity_L1_A", "identity_L1_B"}  # no FID without the weights
    assert Image.open(tmp_path / "grid.png").size == (3 * 32 + 4 * 2, 3 * 32 + 4 * 2)
    assert "cycle_L1" in capsys.readouterr().out


def test_a_run_that_ends_its_own_schedule_first_is_scored_once_at_its_end(bq, tmp_path, capsys):
    """A run whose own length is shorter than --steps (i2i's --steps or --minutes, given as an option)
    is scored at each segment until it stops, then left: one record for its end, with its steps."""
    root = tmp_path / "data" / "facades"
    ab_folder(root / "train")
    ab_folder(root / "test")
    out = tmp_path / "out"
    bq.main(["facades-label", "--data-root", str(tmp_path / "data"), "--out", str(out), "--steps", "6",
             "--eval-every", "2", "--seeds", "1", "--precision", "fp32", "--threads", "1", "--option", "steps=3",
             "--option", "net_g=unet_32", "--option", "ngf=8", "--option", "ndf=8", "--option", "load_size=36",
             "--option", "crop_size=32", "--option", "workers=0"])
    records = json.loads((out / "results.json").read_text())
    assert [(r["step"], r["steps_trained"]) for r in records] == [(2, 2), (4, 3)]
    table = capsys.readouterr().out.split("variant", 1)[1].splitlines()
    assert table[0].split()[:4] == ["step", "trained", "seeds", "minutes"]
    assert [line.split()[1:3] for line in table[2:4]] == [["2", "2"], ["4", "3"]]
