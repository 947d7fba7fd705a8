"""The run report: plots, gallery and tables written beside the run, and a real browser loads them all."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import tiny_config, tiny_unpaired_config
from i2i.evaluate import evaluate
from i2i.report import write_report
from i2i.runtime import resolve
from i2i.train import train

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def pix2pix_run(aligned_dir, tmp_path):
    run = train(tiny_config(aligned_dir, tmp_path, val=str(aligned_dir), max_steps=8, log_every=1, report=True))
    evaluate(run, str(aligned_dir), runtime=resolve("cpu", "fp32", threads=1))
    return run


def test_training_writes_a_report_with_plots_gallery_and_eval_table(pix2pix_run):
    page = (pix2pix_run / "report.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images == ["report_files/losses.png", "report_files/validation.png", "report_files/gallery.png"]
    assert all((pix2pix_run / p).stat().st_size > 1000 for p in images)  # relative paths that resolve
    assert "Evaluation" not in page  # training wrote it before i2i eval ran
    write_report(pix2pix_run)
    page = (pix2pix_run / "report.html").read_text()
    assert "<h2>Evaluation</h2>" in page and "PSNR" in page and "Best checkpoint: step" in page
    assert str(pix2pix_run.parent) not in page.split("<h2>Config</h2>")[0]  # no absolute paths in links


def test_writing_a_report_leaves_the_processs_matplotlib_alone(pix2pix_run):
    """A notebook's own backend and figures are its business: the report draws on its own Figure
    objects, without pyplot, so the backend a user chose stays chosen."""
    code = ("import sys, matplotlib; matplotlib.use('svg'); from i2i.report import write_report; "
            f"write_report({str(pix2pix_run)!r}); "
            "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend(); "
            "assert 'matplotlib.pyplot' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    assert done.returncode == 0, done.stderr
    assert (pix2pix_run / "report_files" / "losses.png").stat().st_size > 1000


def test_report_without_validation_shows_the_latest_samples(unpaired_dirs, tmp_path):
    run = train(tiny_unpaired_config(unpaired_dirs, tmp_path, max_steps=2, sample_every=1))
    page = write_report(run).read_text()
    assert 'src="samples/step_0000002.png"' in page and "validation.png" not in page


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_report_opens_in_headless_chromium_with_no_broken_images(pix2pix_run):
    write_report(pix2pix_run)
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                          "--virtual-time-budget=5000", "--dump-dom", (pix2pix_run / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-broken-images="0"' in body and 'data-images="3"' in body, body


def test_gallery_of_a_val_fraction_run_shows_its_held_out_images(aligned_dir, tmp_path, caplog):
    """Before its first checkpoint a run has no weights and its report no gallery, quietly (the
    epoch-end reports of a run saving every 1000 steps warned at every epoch until then)."""
    import logging

    with caplog.at_level(logging.WARNING, logger="i2i"):
        run = train(tiny_config(aligned_dir, tmp_path, val_fraction=0.34, epochs=3, epochs_decay=0, report=True))
    assert "gallery skipped" not in caplog.text
    page = write_report(run).read_text()
    assert 'src="report_files/gallery.png"' in page
    from PIL import Image

    assert Image.open(run / "report_files" / "gallery.png").size[1] > 2 * 32  # two held-out rows
