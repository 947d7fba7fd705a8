"""Several processes: training under torchrun (gloo on CPU), the per-rank sampler, sharded translate."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from i2i import nets
from i2i.cli import app
from i2i.data.transforms import EpochSampler
from i2i.distributed import World, state_digest, use_sync_batchnorm
from i2i.runs import save_weights
from i2i.train import resume_config, train
from i2i.translate import parse_shard

from conftest import random_image

runner = CliRunner()

TINY = ["--ngf", "4", "--ndf", "4", "--load-size", "36", "--crop-size", "32", "--workers", "0", "--seed", "1",
        "--no-report", "--save-every", "2", "--sample-every", "1000"]


def torchrun(args, cwd, processes=2):
    """``torchrun --nproc_per_node=processes -m i2i ...``; returns (exit code, stdout + stderr)."""
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "300"}  # no wrapping
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "i2i", *args]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("mode", ["pix2pix", "cycle"])
def test_two_processes_train_identical_weights_and_resume_in_one(mode, aligned_dir, unpaired_dirs, tmp_path):
    if mode == "pix2pix":
        data = ["--a", str(aligned_dir), "--net-g", "unet_32"]
    else:
        data = ["--mode", "cycle", "--a", str(unpaired_dirs[0]), "--b", str(unpaired_dirs[1]), "--net-g", "resnet_6blocks"]
    code, output = torchrun(["train", *data, *TINY, "--name", "ddp", "--checkpoints-dir", str(tmp_path / "ck"),
                             "--batch-size", "1", "--max-steps", "4"], tmp_path)
    assert code == 0, output
    output = " ".join(output.split())  # rich may wrap or pad log lines
    # the batch is per process, and the log says what that makes
    assert "batch 1 per step in each of 2 processes, 2 in all" in output
    # rank 0 compares every rank's SHA-256 of all weights at each save, and fails the run on a mismatch
    checks = re.findall(r"weights identical on all 2 ranks \(SHA-256 by rank: ([0-9a-f]{12}), ([0-9a-f]{12})\)", output)
    assert len(checks) == 2, output  # at the save at step 2 and the final one at step 4
    assert all(rank0 == rank1 for rank0, rank1 in checks) and checks[0] != checks[1]
    assert output.count("finished at step 4") == 1  # rank 0 alone logs
    run = tmp_path / "ck" / "ddp"
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "eval" not in r and "val" not in r] == [1, 4]  # written once, not per rank
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["world_size"] == 2 and state["step"] == 4

    # the checkpoint continues in a single process
    cfg = resume_config(run, max_steps=6)
    train(cfg, resume=True)
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["world_size"] == 1 and state["step"] == 6
    assert [r["step"] for r in (json.loads(line) for line in (run / "log.jsonl").read_text().splitlines())][-1] == 6


def test_two_processes_agree_on_the_steps_that_minutes_fit(aligned_dir, tmp_path):
    """--minutes under torchrun: the ranks plan at the same step, take rank 0's count, and stop
    together with identical weights (rank 0 checks every rank's SHA-256 at the final save)."""
    code, output = torchrun(["train", "--a", str(aligned_dir), "--net-g", "unet_32", *TINY, "--name", "ddp",
                             "--checkpoints-dir", str(tmp_path / "ck"), "--minutes", "0.02", "--save-every", "100000"],
                            tmp_path)
    assert code == 0, output
    output = " ".join(output.split())
    assert re.search(r"--minutes 0.02: \d+ steps fit", output), output
    checks = re.findall(r"weights identical on all 2 ranks \(SHA-256 by rank: ([0-9a-f]{12}), ([0-9a-f]{12})\)", output)
    assert len(checks) == 1 and checks[0][0] == checks[0][1], output
    run = tmp_path / "ck" / "ddp"
    steps = json.loads((run / "config.json").read_text())["steps"]
    assert torch.load(run / "state.pt", weights_only=True)["step"] == steps >= 1


def test_sampler_gives_each_rank_an_equal_share_of_the_same_permutation():
    for n in (1, 5, 6, 7):
        whole = list(EpochSampler(n, seed=3))
        for world in (1, 2, 3):
            shares = [list(EpochSampler(n, seed=3, rank=r, world=world)) for r in range(world)]
            assert len({len(s) for s in shares}) == 1  # the same number of steps on every rank
            seen = [pair for s in shares for pair in s]
            assert set(seen) == set(whole)  # every example, with its seed, in some rank
            assert len(seen) - len(whole) < world  # padding by wrapping around only
        assert list(EpochSampler(n, seed=3, rank=0, world=1)) == whole  # one process: unchanged


def test_sampler_resumes_within_a_ranks_share():
    full = list(EpochSampler(9, seed=1, rank=1, world=2))
    s = EpochSampler(9, seed=1, rank=1, world=2)
    s.start = 2
    assert list(s) == full[2:] and len(s) == len(full) - 2


def test_world_from_env(monkeypatch):
    assert World.from_env() == World() and not World().enabled and World().main
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert World.from_env() == World(rank=3, size=4, local_rank=1, local_size=2)
    assert World.from_env().enabled and not World.from_env().main


def test_state_digest_sees_a_one_ulp_change():
    net = nets.create("unet_32", in_channels=3, out_channels=3, ngf=4)
    before = state_digest({"G": net})
    assert state_digest({"G": net}) == before
    with torch.no_grad():
        w = next(net.parameters())
        w.view(-1)[0] = torch.nextafter(w.view(-1)[0], torch.tensor(1.0))
    assert state_digest({"G": net}) != before


def test_sync_batchnorm_keeps_parameters_and_state_dict_layout():
    net = nets.create("unet_32", in_channels=3, out_channels=3, ngf=4, norm="batch")
    keys, params = list(net.state_dict()), [id(p) for p in net.parameters()]
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert use_sync_batchnorm({"G": net}) == n_bn > 0
    assert all(not isinstance(m, torch.nn.BatchNorm2d) or isinstance(m, torch.nn.SyncBatchNorm) for m in net.modules())
    assert list(net.state_dict()) == keys and [id(p) for p in net.parameters()] == params  # optimisers still hold them


@pytest.fixture
def model_file(tmp_path):
    spec = {"name": "unet_32", "in_channels": 3, "out_channels": 3, "ngf": 4, "norm": "batch", "dropout": False}
    path = tmp_path / "G.safetensors"
    save_weights(path, nets.create(**spec), spec)
    return path


@pytest.mark.parametrize("n", [1, 2, 3])
def test_shards_cover_every_input_exactly_once(n, model_file, tmp_path):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    for i in range(11):
        random_image(32, 32, seed=i).save(src / ("sub" if i % 3 == 0 else "") / f"{i}.png")
    written = []
    for i in range(n):
        out = tmp_path / f"out{i}"
        result = runner.invoke(app, ["translate", str(src), "--model", str(model_file), "--out", str(out),
                                     "--shard", f"{i}/{n}"])
        assert result.exit_code == 0, result.output
        written += [p.relative_to(out).as_posix() for p in out.rglob("*.png")]
    expected = sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png"))
    assert sorted(written) == expected  # every input once: no gaps, no duplicates


def test_shards_into_one_folder_then_nothing_left(model_file, tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(7):
        random_image(32, 32, seed=i).save(src / f"{i}.png")
    out = tmp_path / "out"
    for i in range(3):
        assert runner.invoke(app, ["translate", str(src), "--model", str(model_file), "--out", str(out),
                                   "--shard", f"{i}/3"]).exit_code == 0
    result = runner.invoke(app, ["translate", str(src), "--model", str(model_file), "--out", str(out)])
    text = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 0 and "0 image(s) written" in text and "7 already there" in text


def test_translate_under_torchrun_takes_one_shard_per_rank(model_file, tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(9):
        random_image(32, 32, seed=i).save(src / f"{i}.png")
    code, output = torchrun(["translate", str(src), "--model", str(model_file), "--out", str(tmp_path / "out")], tmp_path)
    assert code == 0, output
    counts = {}
    for line in output.splitlines():
        if "image(s) written" in line:
            shard, rest = line.split(": ", 1)
            counts[shard] = int(rest.split()[0])
    assert set(counts) == {"shard 0/2", "shard 1/2"} and sum(counts.values()) == 9
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in src.iterdir())


def test_bad_shard_is_a_usage_error():
    assert parse_shard("2/3") == (2, 3)
    for text in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(Exception, match="--shard"):
            parse_shard(text)
    result = runner.invoke(app, ["translate", ".", "--shard", "5/2"])
    assert result.exit_code == 2 and "--shard 5/2" in result.output
