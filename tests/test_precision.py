"""Precision is a tested dimension, not a property of the test machine: every feature that runs a
network works at fp32 and at bf16 on any CPU (bf16 is emulated, slowly but correctly, on CPUs without
native support, so the models here are tiny). A bf16-only fault fails on an AVX2 machine too.

``I2I_CPU_BF16=1 python -m pytest`` (or ``=0``) runs the whole suite as on the other kind of CPU."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from conftest import ab_folder, random_image, tiny_config, tiny_unpaired_config
from i2i.runtime import input_dtype, resolve
from i2i.train import train

PRECISIONS = ["fp32", "bf16"]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

pytestmark = pytest.mark.usefixtures("one_thread")


def _val_rows(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"val"' in line]


@pytest.fixture(scope="module", params=PRECISIONS)
def precision(request):
    return request.param


@pytest.fixture(scope="module")
def pix2pix_run(precision, tmp_path_factory):
    """A pix2pix run trained at ``precision`` with validation (the bf16 path of training and
    validation together: fp32 weights under autocast, validated by the inference translator)."""
    tmp = tmp_path_factory.mktemp(f"p2p_{precision}")
    data = ab_folder(tmp / "ab")
    cfg = tiny_config(data, tmp, precision=precision, device="cpu", threads=1, max_steps=2, val_fraction=0.34,
                      val_every=1, ngf=4, ndf=4)
    return train(cfg), data


@pytest.fixture(scope="module")
def cycle_run(precision, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"cycle_{precision}")
    a, b = tmp / "A", tmp / "B"
    a.mkdir()
    b.mkdir()
    for i in range(3):
        random_image(32, 32, seed=i).save(a / f"a{i}.png")
        random_image(32, 32, seed=10 + i).save(b / f"b{i}.png")
    cfg = tiny_unpaired_config((a, b), tmp, precision=precision, device="cpu", threads=1, max_steps=2,
                               val=str(a), val_b=str(b), val_every=1)
    return train(cfg), (a, b)


def test_training_with_validation(pix2pix_run, cycle_run):
    for run, _ in (pix2pix_run, cycle_run):
        rows = _val_rows(run)
        assert [r["step"] for r in rows] == [1, 2]
        assert (run / "best" / "config.json").is_file()
    assert all(0 <= r["L1"] <= 2 for r in _val_rows(pix2pix_run[0]))
    assert all(0 <= r["cycle_L1"] <= 2 for r in _val_rows(cycle_run[0]))


def test_translate_runs_in_the_chosen_precision(pix2pix_run, precision, tmp_path):
    from i2i.translate import translate_files
    from i2i.translator import load_translator

    run, data = pix2pix_run
    t = load_translator(run, runtime=resolve("cpu", precision, threads=1))
    assert input_dtype(t.net) == DTYPES[precision]
    summary = translate_files(t, [str(data)], tmp_path / "out", ab=True)
    assert summary.written == 6 and not summary.failed
    assert Image.open(tmp_path / "out" / "0.png").size == (32, 32)


def test_eval_and_report(pix2pix_run, cycle_run, precision):
    from i2i.evaluate import evaluate
    from i2i.report import write_report

    runtime = resolve("cpu", precision, threads=1)
    run, data = pix2pix_run
    scores = evaluate(run, str(data), runtime=runtime)["scores"]
    assert scores["images"] == 6 and 0 <= scores["L1"] <= 2
    crun, (a, b) = cycle_run
    scores = evaluate(crun, str(a), str(b), runtime=runtime)["scores"]
    assert scores["images"] == 6 and 0 <= scores["cycle_L1"] <= 2
    for r in (run, crun):
        page = write_report(r, runtime=runtime)
        assert "gallery.png" in page.read_text()
        assert (r / "report_files" / "gallery.png").is_file()


def test_api_and_serve(cycle_run, precision):
    from i2i import load
    from i2i.serve import translate_image

    run, _ = cycle_run
    model = load(run, device="cpu", precision=precision, threads=1)
    img = random_image(21, 13, seed=3)
    for direction in ("AtoB", "BtoA"):
        out = model(img, direction=direction)
        assert out.size == (21, 13)
        assert input_dtype(model.translator(direction).net) == DTYPES[precision]
    assert translate_image(model, img, "BtoA").size == (21, 13)


def test_export_of_a_run_trained_at_this_precision(cycle_run, tmp_path):
    from i2i.export import export

    run, _ = cycle_run
    report = export(run, "pt2", tmp_path / "g.pt2")
    assert report["max_abs_diff"] <= 1e-3


def test_sample_interpolate_and_reconstruct(precision, tmp_path):
    from i2i.modes import make_config
    from i2i.generate import interpolate, reconstruct, sample

    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(4):
        random_image(32, 32, seed=i).save(folder / f"{i}.png")
    runtime = resolve("cpu", precision, threads=1)
    for mode in ("gan", "vae"):
        critic = {"ndf": 4} if mode == "gan" else {}  # the vae has no discriminator (--ndf is refused)
        cfg = make_config(mode, a=str(folder), name=mode, checkpoints_dir=str(tmp_path / "ck"), image_size=32, ngf=4,
                          z_dim=8, batch_size=2, workers=0, seed=0, max_steps=1, precision=precision,
                          device="cpu", threads=1, report=False, **critic)
        run = train(cfg)
        assert sample(run, 4, 0, runtime=runtime).size == (2 * 34 + 2, 2 * 34 + 2)
        assert interpolate(run, 3, (0, 1), runtime=runtime).size == (3 * 34 + 2, 34 + 2)
    written, failed = reconstruct(run, [str(folder)], tmp_path / "recon", runtime=runtime)
    assert written == 4 and failed == []
    row = interpolate(run, 3, images=(folder / "0.png", folder / "1.png"), runtime=runtime)
    assert row.size == (3 * 34 + 2, 34 + 2)


def test_i2i_cpu_bf16_decides_what_auto_picks(monkeypatch):
    """The override that lets the suite run as on the other kind of CPU."""
    monkeypatch.setenv("I2I_CPU_BF16", "1")
    assert resolve("cpu", "auto", threads=1).dtype == torch.bfloat16
    assert resolve("cpu", "auto", threads=1, training=True).dtype == torch.bfloat16
    monkeypatch.setenv("I2I_CPU_BF16", "0")
    assert resolve("cpu", "auto", threads=1).dtype == torch.float32
    assert resolve("cpu", "auto", threads=1).nnpack
