"""Run state that never misleads: every advice message is run and must work without losing progress.

NaN losses (with and without a checkpoint), damaged or missing state.pt (state.prev.pt is kept beside
it), temp files of killed writers, and config.json files with missing, null or wrongly typed fields.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ab_folder, random_image, tiny_config
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from i2i.cli import app
from i2i.config import TrainConfig
from i2i.errors import I2IError, UsageError
from i2i.io import _owner, atomic_write, remove_stale_temps, write_text
from i2i.runs import Run
from i2i.train import resume_config, train

ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line(result) -> str:
    """The single error line of a failed command (and no traceback)."""
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def train_args(data, ck, *extra):
    return ["train", "--a", data, "--name", "r", "--checkpoints-dir", ck, "--net-g", "unet_32", "--ngf", "8",
            "--ndf", "8", "--load-size", "36", "--crop-size", "32", "--workers", "0", "--seed", "1",
            "--sample-every", "1000", "--log-every", "1", "--no-report", *extra]


def train_steps(run: Path) -> list[int]:
    """The training steps in log.jsonl; also checks that no record (eval and val ones included) repeats
    a step of its kind."""
    records = [(r["step"], "eval" in r, "val" in r) for r in Run(run).read_log()]
    assert len(records) == len(set(records)), records
    return [r["step"] for r in Run(run).read_log() if "eval" not in r and "val" not in r]


def advice_command(line: str) -> list[str]:
    """The i2i command a message advises, as CLI arguments."""
    match = re.search(r"(i2i train --resume .*)$", line)
    assert match, line
    return shlex.split(match.group(1))[1:]


@pytest.fixture
def nan_when_lr_is_high(monkeypatch):
    """Pix2pix whose loss turns NaN at the given call of train_step while --lr is above 1e-4, so the
    advice (a tenth of the learning rate) is what makes the run go on."""
    from i2i.modes.pix2pix import Pix2Pix

    real = Pix2Pix.train_step
    at = {"call": None}

    def train_step(self, batch):
        self._calls = getattr(self, "_calls", 0) + 1
        losses, out = real(self, batch)
        if self.cfg.lr > 1e-4 and self._calls == at["call"]:
            losses = {**losses, "G_L1": torch.tensor(float("nan"))}
        return losses, out

    monkeypatch.setattr(Pix2Pix, "train_step", train_step)
    return at


# --- 1. NaN advice -------------------------------------------------------------------------------

def test_nan_before_any_checkpoint_advice_restarts_from_step_0(aligned_dir, tmp_path, nan_when_lr_is_high):
    nan_when_lr_is_high["call"] = 2
    ck = tmp_path / "ck"
    line = one_line(invoke(*train_args(aligned_dir, ck, "--max-steps", "3")))
    assert "at step 2" in line and "no checkpoint was saved yet" in line and "last good" not in line
    assert not (ck / "r" / "state.pt").exists()  # the message is true: there is none
    result = invoke(*advice_command(line))
    assert result.exit_code == 0, result.output
    run = ck / "r"
    assert torch.load(run / "state.pt", weights_only=True)["step"] == 3
    assert train_steps(run) == [1, 2, 3]  # step 1 of the failed try is not logged twice
    assert json.loads((run / "config.json").read_text())["lr"] == pytest.approx(2e-5)


def test_nan_after_a_checkpoint_advice_continues_from_it(aligned_dir, tmp_path, nan_when_lr_is_high):
    nan_when_lr_is_high["call"] = 3
    ck = tmp_path / "ck"
    line = one_line(invoke(*train_args(aligned_dir, ck, "--max-steps", "4", "--save-every", "2")))
    assert "at step 3" in line and "the last checkpoint, at step 2" in line
    g_before = (ck / "r" / "G.safetensors").read_bytes()
    result = invoke(*advice_command(line))
    assert result.exit_code == 0, result.output
    assert torch.load(ck / "r" / "state.pt", weights_only=True)["step"] == 4
    assert train_steps(ck / "r") == [1, 2, 3, 4]
    assert (ck / "r" / "G.safetensors").read_bytes() != g_before  # trained on, from step 2


def test_lr_may_change_on_resume_but_architecture_may_not(aligned_dir, tmp_path):
    run = train(tiny_config(aligned_dir, tmp_path, max_steps=1))
    assert resume_config(run, lr=1e-5).lr == 1e-5
    with pytest.raises(UsageError, match="--ngf cannot change"):
        resume_config(run, ngf=16)


# --- 2. damaged state.pt -------------------------------------------------------------------------

def damage(path: Path, how: str):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(os.urandom(300))
    elif how == "wrong fields":
        torch.save({"step": "seven", "nets": []}, path)
    elif how == "missing":
        path.unlink()


@pytest.mark.parametrize("how", ["truncated", "wrong fields", "missing"])  # more kinds: the property test below
def test_damaged_state_resumes_from_the_previous_checkpoint(aligned_dir, tmp_path, how, caplog):
    """state.prev.pt is kept beside state.pt: a damaged state.pt costs one save interval, and the
    resumed run is the uninterrupted one (same losses), with no repeated step in log.jsonl."""
    straight = train(tiny_config(aligned_dir, tmp_path / "straight", max_steps=6, save_every=2, log_every=1))
    run = train(tiny_config(aligned_dir, tmp_path, max_steps=4, save_every=2, log_every=1))
    assert torch.load(run / "state.prev.pt", weights_only=True)["step"] == 2
    damage(run / "state.pt", how)
    train(resume_config(run, max_steps=6), resume=True)
    assert "continuing from the checkpoint before it (state.prev.pt, step 2)" in caplog.text
    assert train_steps(run) == [1, 2, 3, 4, 5, 6]
    losses = lambda r: [(x["step"], x["G_L1"]) for x in Run(r).read_log() if "G_L1" in x]  # noqa: E731
    assert losses(run) == pytest.approx(losses(straight))


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage", "wrong fields", "missing"])
def test_no_readable_checkpoint_keeps_the_trained_generator_and_the_advice_works(aligned_dir, tmp_path, how):
    ck = tmp_path / "ck"
    assert invoke(*train_args(aligned_dir, ck, "--max-steps", "2")).exit_code == 0
    run = ck / "r"
    assert not (run / "state.prev.pt").exists()  # one save only
    g, log = (run / "G.safetensors").read_bytes(), (run / "log.jsonl").read_text()
    damage(run / "state.pt", how)
    line = one_line(invoke("train", "--resume", "--name", "r", "--checkpoints-dir", ck))
    assert "delete" not in line and "G.safetensors" in line
    assert (run / "G.safetensors").read_bytes() == g and (run / "log.jsonl").read_text() == log
    # the advice: translate with the trained weights
    match = re.search(r"use them with i2i translate IMAGES --model (\S+?),", line)
    assert match, line
    images = tmp_path / "photos"
    images.mkdir()
    random_image(32, 32).save(images / "x.png")
    result = invoke("translate", images, "--model", match.group(1), "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "x.png").is_file()


def _saved_state(tmp_path, prev: bool) -> Run:
    run = Run(tmp_path / "run")
    run.path.mkdir(parents=True, exist_ok=True)
    state = {"nets": {"G": {"w": torch.ones(3)}}, "optimizers": {}, "rng": {"torch": torch.get_rng_state()},
             "step": 2, "epoch": 0, "epoch_step": 2}
    run.save_state(state)
    if prev:
        run.save_state({**state, "step": 4})
    (run.path / "G.safetensors").write_bytes(b"weights")
    return run


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prev=st.booleans(), cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 10_000),
       st.integers(1, 255)), max_size=4), replace=st.one_of(st.none(), st.binary(max_size=64)))
def test_any_damage_to_state_pt_resumes_or_says_how_to_use_the_weights(tmp_path_factory, prev, cut, flips, replace):
    """Whatever happens to state.pt: the newest readable checkpoint is used (state.prev.pt when
    state.pt is bad), or one line that names the kept weights and never advises deleting a file."""
    run = _saved_state(tmp_path_factory.mktemp("s"), prev)
    data = bytearray(run.state_path.read_bytes() if replace is None else replace)
    for at, x in flips:
        if data:
            data[at % len(data)] ^= x
    run.state_path.write_bytes(bytes(data[:cut]))
    try:
        state = run.load_state()
    except I2IError as e:
        event("no readable checkpoint: one line")
        assert not prev
        text = str(e)
        assert "\n" not in text and "delete" not in text and "G.safetensors" in text
        assert "weights_only" not in text and "Traceback" not in text
        assert "i2i translate IMAGES --model" in text
    else:
        event(f"resumed from step {state['step']}")
        assert state["step"] in ((4, 2) if prev else (2,))


def test_saving_keeps_the_previous_checkpoint(tmp_path):
    run = _saved_state(tmp_path, prev=True)
    assert torch.load(run.state_path, weights_only=True)["step"] == 4
    assert torch.load(run.prev_state_path, weights_only=True)["step"] == 2


# --- 3. temp files of killed writers --------------------------------------------------------------

WRITER = """
import sys, time
from i2i.io import atomic_write

def write(tmp):
    with open(tmp, "w") as f:
        f.write("half")
        f.flush()
        open(sys.argv[2], "w").write(tmp)
        time.sleep(600)

atomic_write(sys.argv[1], write)
"""


def start_writer(target: Path, ready: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(ready)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (ready.exists() and ready.read_text()) and time.time() < deadline:
        assert proc.poll() is None
        time.sleep(0.05)
    return proc, Path(ready.read_text())


def test_temp_of_a_killed_writer_is_removed_and_a_live_ones_kept(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    killed, killed_tmp = start_writer(folder / "a.png", tmp_path / "ready_a")
    live, live_tmp = start_writer(folder / "b.png", tmp_path / "ready_b")
    try:
        assert killed_tmp.parent == folder and killed_tmp.name.startswith(".a.png.")
        killed.kill()  # kill -9 mid-write
        killed.wait()
        assert killed_tmp.exists()
        assert remove_stale_temps(folder) == 1
        assert not killed_tmp.exists()
        assert live_tmp.exists()  # its writer is alive
        assert remove_stale_temps(folder, recursive=True) == 0 and live_tmp.exists()
    finally:
        live.kill()
        live.wait()
    assert remove_stale_temps(folder) == 1 and not live_tmp.exists()


def test_temps_of_other_machines_and_older_versions_wait_for_the_age_limit(tmp_path):
    from i2i.io import STALE_AGE_S

    other = tmp_path / ".G.safetensors.i2i-0123456789ab-1-abcd1234.tmp"  # another machine, any pid
    old_style = tmp_path / ".G.safetensors.k2j4_x9q.tmp"  # tempfile.mkstemp's name, older i2i
    not_ours = [tmp_path / ".notes.tmp", tmp_path / "data.tmp", tmp_path / ".x.i2i-zz-1-a.tmp"]
    for p in [other, old_style, *not_ours]:
        p.write_text("x")
    link = tmp_path / f".l.i2i-{_owner()}-999999999-abc.tmp"
    link.symlink_to(tmp_path / "data.tmp")
    assert remove_stale_temps(tmp_path) == 0
    day_ago = time.time() - STALE_AGE_S - 60
    for p in [other, old_style, *not_ours]:
        os.utime(p, (day_ago, day_ago))
    assert remove_stale_temps(tmp_path) == 2
    assert not other.exists() and not old_style.exists()
    assert all(p.exists() for p in not_ours) and link.is_symlink()
    assert remove_stale_temps(tmp_path / "no such folder") == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(st.characters(blacklist_characters="/\\\0", blacklist_categories=("Cs",)), min_size=1,
                    max_size=120).filter(lambda n: n not in (".", "..") and len(n.encode()) <= 255))
@example(name="é" * 127)  # 254 bytes
@example(name="\U0001d11e" * 63 + "ab")  # 254 bytes of 4-byte characters
@example(name="x" * 255)
def test_a_live_writers_temp_is_never_removed(tmp_path_factory, name):
    """Whatever the target's name: while the writer runs (here, this process), remove_stale_temps
    leaves its temp file alone; once written, the temp file is gone."""
    folder = tmp_path_factory.mktemp("w")
    seen = []

    def write(tmp):
        Path(tmp).write_text("x")
        seen.append(Path(tmp))
        assert remove_stale_temps(folder, recursive=True) == 0
        assert Path(tmp).exists()

    atomic_write(folder / name, write)  # any name the file system holds (255 bytes) gets a temp file too
    assert seen and not seen[0].exists() and (folder / name).read_text() == "x"


def test_training_removes_temps_of_a_killed_run(aligned_dir, tmp_path):
    run = train(tiny_config(aligned_dir, tmp_path, max_steps=1))
    dead = f"i2i-{_owner()}-999999999-abcdefgh.tmp"
    stale = [run / f".state.pt.{dead}", run / "samples" / f".step_0000001.png.{dead}"]
    (run / "best").mkdir(exist_ok=True)
    stale.append(run / "best" / f".G.safetensors.{dead}")
    for p in stale:
        p.write_bytes(b"half")
    train(resume_config(run, max_steps=2), resume=True)
    assert not any(p.exists() for p in stale)


def test_a_run_killed_while_writing_its_first_file_can_be_started_again(aligned_dir, tmp_path):
    """A kill during the first config.json write leaves only a temp file: the folder is then not a run
    (no config.json), so the rerun must not say it exists."""
    folder = tmp_path / "ck" / "tiny"
    folder.mkdir(parents=True)
    (folder / f".config.json.i2i-{_owner()}-999999999-abcdefgh.tmp").write_text("{")
    run = train(tiny_config(aligned_dir, tmp_path, max_steps=1))
    assert Run(run).exists() and not list(run.glob(".*.tmp"))


# --- 4. config.json with missing, null or wrongly typed fields ------------------------------------

FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
WRONG = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True),
                  st.text(max_size=5), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2),
                                                                                            st.integers(), max_size=1))
MUTATION = st.tuples(st.sampled_from(FIELDS), st.one_of(st.just("delete"), st.tuples(st.just("set"), WRONG)))


@settings(max_examples=300, deadline=None)
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_config_fields_missing_null_or_mistyped_name_the_field(mutations):
    doc = json.loads(TrainConfig(a="data", name="r").to_json())
    for key, change in mutations:
        if change == "delete":
            doc.pop(key, None)
        else:
            doc[key] = change[1]
    try:
        cfg = TrainConfig.from_dict(doc, source="run/config.json")
    except I2IError as e:
        event("refused, naming the field")
        text = str(e)
        assert text.startswith("run/config.json: field '") and "\n" not in text
        field = text.split("'")[1]
        assert field in {k for k, _ in mutations}  # names a field that was changed
    else:
        event("a config")
        for f in dataclasses.fields(TrainConfig):  # every value has its annotated type
            value = getattr(cfg, f.name)
            assert value is None or type(value).__name__ in f.type, (f.name, value)


def test_missing_late_fields_default_for_older_runs():
    doc = json.loads(TrainConfig(a="data", name="r").to_json())
    for key in ("max_pixels", "diff_augment", "val", "precision", "holdout"):  # added after the first release
        del doc[key]
    assert TrainConfig.from_dict(doc, source="config.json").precision == "auto"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):

    root = tmp_path_factory.mktemp("cfgrun")
    data = ab_folder(root / "ab", [(32, 32)] * 4)
    run = train(tiny_config(data, root, max_steps=1))
    images = root / "photos"
    images.mkdir()
    random_image(32, 32).save(images / "x.png")
    return run, images


@settings(max_examples=6, deadline=None)
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_resume_report_and_translate_of_a_damaged_config_give_one_line(finished_run, tmp_path_factory, mutations):
    run, images = finished_run
    original = (run / "config.json").read_text()
    doc = json.loads(original)
    for key, change in mutations:
        if change == "delete":
            doc.pop(key, None)
        else:
            doc[key] = change[1]
    write_text(run / "config.json", json.dumps(doc))
    try:
        out = tmp_path_factory.mktemp("t")
        for args in (["train", "--resume", "--name", run.name, "--checkpoints-dir", run.parent],
                     ["report", run], ["translate", images, "--model", run, "--out", out / "o"]):
            result = invoke(*args)
            if result.exit_code != 0:
                line = one_line(result)
                assert result.exit_code in (1, 2), result.output
                if args[0] == "train" and "field" in line:
                    assert "config.json" in line
    finally:
        write_text(run / "config.json", original)


GEN_VALUE = st.one_of(WRONG, st.sampled_from(["G.safetensors", "../G.safetensors", "/etc/passwd", ".hidden", "a\\b",
                                              ["AtoB"], ["sideways"], {"name": "unet_32"}]))


@settings(max_examples=150, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(["file", "spec", "directions", "*", "section"]), GEN_VALUE),
                        min_size=1, max_size=3))
def test_the_generators_section_is_checked_in_one_place(changes):
    """Run.generators (for translate, sample and the API): a damaged generators section of config.json
    is one line naming the field, and a weights file always lies inside the run folder."""
    run = Run(Path("/runs/r"))
    doc = {"generators": {"G": {"file": "G.safetensors", "spec": {"name": "unet_32"}, "directions": ["AtoB"]}}}
    for key, value in changes:
        if key == "section":
            doc["generators"] = value
        elif key == "*":
            doc["generators"] = {"G": value}
        elif isinstance(doc["generators"], dict) and isinstance(doc["generators"].get("G"), dict):
            doc["generators"]["G"][key] = value
    try:
        gens = run.generators(doc)
    except I2IError as e:
        event("refused")
        assert str(e).startswith("/runs/r/config.json: field 'generators") and "\n" not in str(e)
    else:
        event("read")
        assert all(g["file"].parent == run.path for g in gens.values())


# --- found by a new user's probe: the neighbours of the cases above ---------------------------------------

def test_a_failed_resume_leaves_config_json_as_it_was(aligned_dir, tmp_path, nan_when_lr_is_high):
    """--resume --lr that fails before its first checkpoint must not record the new rate: a plain
    --resume afterwards continues with the run's own."""
    ck = tmp_path / "ck"
    assert invoke(*train_args(aligned_dir, ck, "--max-steps", "2", "--save-every", "2")).exit_code == 0
    before = json.loads((ck / "r" / "config.json").read_text())
    nan_when_lr_is_high["call"] = 1  # the resumed run's first step
    failed = invoke("train", "--resume", "--name", "r", "--checkpoints-dir", ck, "--lr", "10", "--max-steps", "4")
    assert failed.exit_code == 1, failed.output
    assert json.loads((ck / "r" / "config.json").read_text())["lr"] == before["lr"]
    nan_when_lr_is_high["call"] = None
    again = invoke("train", "--resume", "--name", "r", "--checkpoints-dir", ck, "--max-steps", "4")
    assert again.exit_code == 0, again.output
    assert train_steps(ck / "r")[-1] == 4


def test_resume_after_the_data_moved_follows_its_advice(aligned_dir, tmp_path, monkeypatch):
    """A run whose data folder is not where config.json says (another working folder, or the data
    moved) is refused with the option to give; giving it resumes."""
    ck = tmp_path / "ck"
    monkeypatch.chdir(aligned_dir.parent)
    assert invoke(*train_args("ab", ck, "--max-steps", "2", "--save-every", "2")).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    line = one_line(invoke("train", "--resume", "--name", "r", "--checkpoints-dir", ck, "--max-steps", "3"))
    assert "--a in config.json" in line and "add --a" in line
    result = invoke("train", "--resume", "--name", "r", "--checkpoints-dir", ck, "--max-steps", "3", "--a", aligned_dir)
    assert result.exit_code == 0, result.output
    assert train_steps(ck / "r")[-1] == 3
    assert json.loads((ck / "r" / "config.json").read_text())["a"] == str(aligned_dir)


@pytest.mark.parametrize("field, value", [("direction", "x"), ("batch_size", -1), ("mode", [1]), ("mode", {}),
                                          ("crop_size", 0)])
def test_a_saved_value_that_fails_the_checks_names_config_json(aligned_dir, tmp_path, field, value):
    ck = tmp_path / "ck"
    assert invoke(*train_args(aligned_dir, ck, "--max-steps", "1")).exit_code == 0
    path = ck / "r" / "config.json"
    doc = json.loads(path.read_text())
    doc[field] = value
    path.write_text(json.dumps(doc))
    line = one_line(invoke("train", "--resume", "--name", "r", "--checkpoints-dir", ck, "--max-steps", "2"))
    assert str(path) in line and "cannot change when resuming" not in line


def test_every_writer_clears_the_temp_files_a_killed_one_left(aligned_dir, tmp_path):
    """The first atomic write of a process into a folder removes dead writers' temp files there:
    report, eval and sample included, not only train and translate."""
    ck = tmp_path / "ck"
    assert invoke(*train_args(aligned_dir, ck, "--max-steps", "1")).exit_code == 0
    run = ck / "r"
    stale = [folder / f".x.png.i2i-{_owner()}-999999-abc.tmp" for folder in (run, run / "report_files")]
    for path in stale:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"left by kill -9")
    import i2i.io

    i2i.io._cleaned.clear()  # each command runs in a new process; this test runs them in its own
    assert invoke("report", run).exit_code == 0
    assert invoke("eval", run, "--a", aligned_dir).exit_code == 0
    assert not any(p.exists() for p in stale)
