"""Tests for dataset preparation (i2i.prepare) on tiny synthetic images."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from i2i.errors import UsageError
from i2i.prepare import PrepareReport, combine, split, split_ab, unpaired

W, H = 8, 6


def make_image(path: Path, seed: int, size=(W, H), mode="RGB") -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    arr = rng.integers(0, 256, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)
    return arr


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def snapshot(root: Path) -> dict[str, str]:
    """Every file (hidden ones included) under root with a hash of its bytes."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def paired(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    arrays = {}
    for i, rel in enumerate(["1", "2", "sub/3"]):
        arrays[rel] = (make_image(a / f"{rel}.png", i), make_image(b / f"{rel}.png", 100 + i))
    return a, b, arrays


# --- combine / split_ab ---------------------------------------------------------------------


def test_combine_then_split_ab_round_trips_exactly(tmp_path, paired):
    a, b, arrays = paired
    before = snapshot(tmp_path)
    rep = combine(a, b, tmp_path / "AB")
    assert isinstance(rep, PrepareReport)
    assert (rep.written, rep.skipped, rep.unmatched, rep.out) == (3, [], [], tmp_path / "AB")
    assert files(tmp_path / "AB") == ["1.png", "2.png", "sub/3.png"]
    ab = pixels(tmp_path / "AB" / "sub/3.png")
    assert ab.shape == (H, 2 * W, 3)
    np.testing.assert_array_equal(ab[:, :W], arrays["sub/3"][0])
    np.testing.assert_array_equal(ab[:, W:], arrays["sub/3"][1])

    rep2 = split_ab(tmp_path / "AB", tmp_path / "split")
    assert (rep2.written, rep2.skipped, rep2.unmatched) == (3, [], [])
    for rel, (arr_a, arr_b) in arrays.items():
        np.testing.assert_array_equal(pixels(tmp_path / "split/A" / f"{rel}.png"), arr_a)
        np.testing.assert_array_equal(pixels(tmp_path / "split/B" / f"{rel}.png"), arr_b)
    assert {k: v for k, v in snapshot(tmp_path).items() if k.startswith(("A/", "B/"))} == before


def test_combine_matches_across_extensions_and_keeps_a_name(tmp_path):
    make_image(tmp_path / "A/x/1.jpg", 0)
    make_image(tmp_path / "B/x/1.png", 1)
    rep = combine(tmp_path / "A", tmp_path / "B", tmp_path / "out")
    assert rep.written == 1 and rep.unmatched == []
    assert files(tmp_path / "out") == ["x/1.jpg"]
    with Image.open(tmp_path / "out/x/1.jpg") as img:
        assert img.format == "JPEG" and img.size == (2 * W, H)


def test_combine_grayscale_and_resized_b(tmp_path, caplog):
    a_gray = make_image(tmp_path / "A/g.png", 0)
    gray = make_image(tmp_path / "B/g.png", 1, mode="L")
    make_image(tmp_path / "A/big.png", 2)
    make_image(tmp_path / "B/big.png", 3, size=(2 * W, 2 * H))
    with caplog.at_level("INFO", logger="i2i.prepare"):
        rep = combine(tmp_path / "A", tmp_path / "B", tmp_path / "out")
    assert rep.written == 2 and rep.skipped == []
    g = pixels(tmp_path / "out/g.png")
    with Image.open(tmp_path / "out/g.png") as img:
        assert img.mode == "RGB"
    np.testing.assert_array_equal(g[:, :W], a_gray)
    np.testing.assert_array_equal(g[:, W:], np.repeat(gray[:, :, None], 3, axis=2))
    with Image.open(tmp_path / "out/big.png") as img:
        assert img.size == (2 * W, H)
    assert "resized 1 B image" in caplog.text


def test_combine_reports_unmatched_and_unreadable(tmp_path):
    make_image(tmp_path / "A/ok.png", 0)
    make_image(tmp_path / "B/ok.png", 1)
    make_image(tmp_path / "A/only_a.png", 2)
    make_image(tmp_path / "B/sub/only_b.png", 3)
    (tmp_path / "A/bad.jpg").write_bytes(b"this is not a jpeg")
    make_image(tmp_path / "B/bad.png", 4)
    rep = combine(tmp_path / "A", tmp_path / "B", tmp_path / "out")
    assert rep.written == 1
    assert files(tmp_path / "out") == ["ok.png"]
    assert rep.unmatched == ["only_a.png", "sub/only_b.png"]
    assert [p for p, _ in rep.skipped] == [str(tmp_path / "A/bad.jpg")]
    assert "not an image" in rep.skipped[0][1]


def test_split_ab_skips_odd_width_and_unreadable(tmp_path):
    make_image(tmp_path / "AB/good.png", 0, size=(2 * W, H))
    make_image(tmp_path / "AB/odd.png", 1, size=(2 * W + 1, H))
    (tmp_path / "AB/bad.jpg").write_bytes(b"garbage")
    rep = split_ab(tmp_path / "AB", tmp_path / "out")
    assert rep.written == 1
    assert files(tmp_path / "out") == ["A/good.png", "B/good.png"]
    reasons = dict(rep.skipped)
    assert set(reasons) == {str(tmp_path / "AB/odd.png"), str(tmp_path / "AB/bad.jpg")}
    assert "odd width" in reasons[str(tmp_path / "AB/odd.png")]


# --- split / unpaired -----------------------------------------------------------------------


@pytest.fixture
def flat(tmp_path):
    src = tmp_path / "src"
    for i in range(20):
        make_image(src / f"d{i % 2}/{i:02d}.png", i)
    (src / "broken.png").write_bytes(b"\x89PNG nope")
    return src


def test_split_partitions_deterministically_and_copies_bytes(tmp_path, flat):
    before = snapshot(flat)
    rep = split(flat, tmp_path / "o1", val=0.1, test=0.25, seed=3)
    assert rep.written == 20
    assert [p for p, _ in rep.skipped] == [str(flat / "broken.png")]
    parts = {name: files(tmp_path / "o1" / name) for name in ("train", "val", "test")}
    assert {k: len(v) for k, v in parts.items()} == {"train": 13, "val": 2, "test": 5}
    all_files = parts["train"] + parts["val"] + parts["test"]
    assert sorted(all_files) == sorted(k for k in before if k != "broken.png")  # no overlap, none lost
    for name, rels in parts.items():
        for rel in rels:
            assert (tmp_path / "o1" / name / rel).read_bytes() == (flat / rel).read_bytes()

    split(flat, tmp_path / "o2", val=0.1, test=0.25, seed=3)
    assert snapshot(tmp_path / "o2") == snapshot(tmp_path / "o1")
    split(flat, tmp_path / "o3", val=0.1, test=0.25, seed=4)
    assert files(tmp_path / "o3" / "test") != parts["test"]
    assert snapshot(flat) == before


def test_split_zero_fractions_keeps_everything_in_train(tmp_path, flat):
    rep = split(flat, tmp_path / "out", val=0, test=0)
    assert rep.written == 20
    assert len(files(tmp_path / "out/train")) == 20
    assert (tmp_path / "out/val").is_dir() and files(tmp_path / "out/val") == []


def test_unpaired_layout_and_counts(tmp_path):
    for i in range(10):
        make_image(tmp_path / f"horses/{i}.png", i)
    for i in range(5):
        make_image(tmp_path / f"zebras/z/{i}.jpg", 50 + i)
    before = snapshot(tmp_path)
    rep = unpaired(tmp_path / "horses", tmp_path / "zebras", tmp_path / "out", test=0.2, seed=1)
    assert rep.written == 15 and rep.skipped == [] and rep.unmatched == []
    counts = {d: len(files(tmp_path / "out" / d)) for d in ("trainA", "testA", "trainB", "testB")}
    assert counts == {"trainA": 8, "testA": 2, "trainB": 4, "testB": 1}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["testA", "testB", "trainA", "trainB"]
    assert sorted(files(tmp_path / "out/trainB") + files(tmp_path / "out/testB")) == [
        f"z/{i}.jpg" for i in range(5)
    ]
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("out/")} == before


# --- refusals -------------------------------------------------------------------------------


def test_missing_and_empty_source_folders(tmp_path, paired):
    a, b, _ = paired
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/notes.txt").write_text("no images here")
    for call in (
        lambda src: split(src, tmp_path / "o"),
        lambda src: split_ab(src, tmp_path / "o"),
        lambda src: combine(a, src, tmp_path / "o"),
        lambda src: unpaired(src, b, tmp_path / "o"),
    ):
        for src in (tmp_path / "missing", tmp_path / "empty"):
            with pytest.raises(UsageError, match=str(src)) as info:
                call(src)
            assert "\n" not in str(info.value)
    assert not (tmp_path / "o").exists()


def test_out_inside_or_equal_to_source_is_refused(tmp_path, paired):
    a, b, _ = paired
    with pytest.raises(UsageError, match="inside"):
        combine(a, b, b / "AB")
    with pytest.raises(UsageError, match="inside"):
        split(a, a)
    with pytest.raises(UsageError, match="inside"):
        unpaired(a, b, a / "new" / "deeper")
    assert not (b / "AB").exists() and not (a / "new").exists()


def test_non_empty_out_is_refused_and_untouched(tmp_path, paired):
    a, b, _ = paired
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.png").write_bytes(b"precious")
    with pytest.raises(UsageError, match="exists and is not empty; choose a new --out"):
        combine(a, b, out)
    with pytest.raises(UsageError, match="not empty"):
        split(a, out)
    assert files(out) == ["keep.png"] and (out / "keep.png").read_bytes() == b"precious"
    (tmp_path / "empty_out").mkdir()
    assert split(a, tmp_path / "empty_out").written == 3  # an existing empty folder is fine


@pytest.mark.parametrize(
    "val,test",
    [(-0.1, 0.1), (1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.7, 0.4), (float("nan"), 0.1), ("x", 0.1)],
)
def test_bad_fractions(tmp_path, paired, val, test):
    a, b, _ = paired
    with pytest.raises(UsageError):
        split(a, tmp_path / "o", val=val, test=test)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("test", [-0.5, 1.0, 1.5])
def test_unpaired_bad_fraction(tmp_path, paired, test):
    a, b, _ = paired
    with pytest.raises(UsageError, match="--test"):
        unpaired(a, b, tmp_path / "o", test=test)


# --- prepare combine through the CLI: nothing matched is a failure, each unmatched file said once ----

def _invoke_combine(a: Path, b: Path, out: Path):
    from typer.testing import CliRunner

    from i2i.cli import app

    return CliRunner().invoke(app, ["prepare", "combine", "--a", str(a), "--b", str(b), "--out", str(out)])


def test_cli_combine_that_matches_nothing_fails_with_a_summary(tmp_path):
    for i, name in enumerate(["img_001", "img_002", "img_003", "img_004"]):
        make_image(tmp_path / f"A/{name}.jpg", i)
    for i, name in enumerate(["001", "002"]):
        make_image(tmp_path / f"B/{name}.png", 10 + i)
    result = _invoke_combine(tmp_path / "A", tmp_path / "B", tmp_path / "AB")
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "Traceback" not in result.output and text.count("error:") == 1
    assert "no file names match (4 in A: img_001.jpg, img_002.jpg, img_003.jpg, ...; 2 in B: 001.png, 002.png)" in text
    assert "rename the files of one folder to match the other" in text
    assert "no partner" not in text and not (tmp_path / "AB").exists()
    for i, name in enumerate(["001", "002"]):  # the advice: rename, and run the same command again
        (tmp_path / f"B/{name}.png").rename(tmp_path / f"B/img_{name}.png")
    again = _invoke_combine(tmp_path / "A", tmp_path / "B", tmp_path / "AB")
    assert again.exit_code == 0, again.output
    assert files(tmp_path / "AB") == ["img_001.jpg", "img_002.jpg"]


names = st.sets(st.sampled_from(["a", "b", "c", "d", "e", "sub/f"]), min_size=1, max_size=4)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a_names=names, b_names=names)
def test_cli_combine_reports_each_unmatched_file_once(a_names, b_names):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i, name in enumerate(sorted(a_names)):
            make_image(root / f"A/{name}.png", i)
        for i, name in enumerate(sorted(b_names)):
            make_image(root / f"B/{name}.jpg", 10 + i)
        result = _invoke_combine(root / "A", root / "B", root / "AB")
        matched = a_names & b_names
        if not matched:
            assert result.exit_code == 1 and "no file names match" in result.output
            return
        assert result.exit_code == 0, result.output
        assert files(root / "AB") == sorted(f"{n}.png" for n in matched)
        for name in sorted(a_names - b_names):
            assert result.output.count(f"{name}.png") == 1, result.output
        for name in sorted(b_names - a_names):
            assert result.output.count(f"{name}.jpg") == 1, result.output


@pytest.mark.parametrize("command", ["combine", "split-ab", "split", "unpaired"])
def test_cli_prepare_with_bad_files_does_the_rest_and_fails_with_a_count(tmp_path, command):
    """Every prepare step: bad files are listed once each, the good ones are written, and the exit
    code is 1 with how many could not be used (as translate does)."""
    from typer.testing import CliRunner

    from i2i.cli import app

    for side in ("A", "B"):
        (tmp_path / side).mkdir()
        for i in range(3):
            img = Image.fromarray(np.full((8, 16 if command == "split-ab" else 8, 3), 40 * i, np.uint8))
            img.save(tmp_path / side / f"{i}.png")
        (tmp_path / side / "bad.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    args = {"combine": ["--a", tmp_path / "A", "--b", tmp_path / "B"], "split-ab": [tmp_path / "A"],
            "split": [tmp_path / "A", "--val", "0.3", "--test", "0.3"],
            "unpaired": ["--a", tmp_path / "A", "--b", tmp_path / "B"]}[command]
    result = CliRunner().invoke(app, ["prepare", command, *map(str, args), "--out", str(out)])
    text = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "Traceback" not in text and "unexpected" not in text
    bad = [str(tmp_path / side / "bad.png") for side in ("A", "B") if command in ("combine", "unpaired") or side == "A"]
    for path in bad:
        assert text.count(path) == 1, (path, text)
    assert f"{len(bad)} file(s) could not be used" in text
    assert any(out.rglob("*.png"))
