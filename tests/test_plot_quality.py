"""tools/plot_quality.py: the points it draws, computed by hand, and the picture it writes."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from conftest import load_tool


@pytest.fixture(scope="module")
def pq():
    return load_tool("plot_quality")


def record(variant, seed, step, seconds, score):
    return {"protocol": "facades-label", "variant": variant, "seed": seed, "step": step, "seconds": seconds,
            "scores": {"pixel_accuracy": score}}


RECORDS = [record("bf16", 0, 400, 60, 0.30), record("bf16", 1, 400, 66, 0.34), record("bf16", 0, 800, 120, 0.40),
           record("bf16", 1, 800, 126, 0.42), record("fp32", 0, 400, 150, 0.31)]


def test_points_are_the_seeds_means_and_spreads(pq):
    points = pq.series(RECORDS, "pixel_accuracy")
    (m1, sm1, s1, ss1), (m2, _, s2, ss2) = points["bf16"]
    assert (m1, s1, m2, s2) == pytest.approx((1.05, 0.32, 2.05, 0.41))  # minutes (60 + 66) / 2 / 60, ...
    assert sm1 == pytest.approx(0.0707, abs=1e-4)  # sample sd of 1.0 and 1.1 minutes
    assert ss1 == pytest.approx(0.02828, abs=1e-4) and ss2 == pytest.approx(0.01414, abs=1e-4)
    assert points["fp32"] == [(2.5, 0.0, 0.31, 0.0)]  # one seed: no bar
    assert pq.series(RECORDS, "mean_iou") == {}


def test_join_draws_a_files_variants_as_one_line_in_order_of_minutes(pq, tmp_path, monkeypatch):
    drawn = {}
    from matplotlib.axes import Axes

    monkeypatch.setattr(Axes, "errorbar", lambda self, x, y, label, **kw: drawn.setdefault(label, (list(x), list(y))))
    monkeypatch.setattr(Axes, "legend", lambda self, **kw: None)  # nothing was drawn to name
    results = tmp_path / "results.json"
    results.write_text(json.dumps(RECORDS))
    pq.main([f"i2i={results}", "--join", "--out", str(tmp_path / "joined.png")])
    assert drawn == {"i2i": ([1.05, 2.05, 2.5], pytest.approx([0.32, 0.41, 0.31]))}
    drawn.clear()
    pq.main([f"i2i={results}", "--out", str(tmp_path / "apart.png")])
    assert set(drawn) == {"i2i: bf16", "i2i: fp32"}


def test_writes_a_picture_and_refuses_bad_input_in_one_line(pq, tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(RECORDS))
    out = tmp_path / "ttq.png"
    pq.main([f"i2i={results}", "--reference", "reference, 6 minutes:6:0.406", "--out", str(out)])
    assert Image.open(out).size == (640, 400)
    with pytest.raises(SystemExit, match="no 'mean_iou' scores"):
        pq.main([f"i2i={results}", "--score", "mean_iou", "--out", str(out)])
    with pytest.raises(SystemExit, match="not a readable results.json"):
        pq.main([f"i2i={tmp_path / 'missing.json'}", "--out", str(out)])
    for bad in ([str(results)], [f"i2i={results}", "--reference", "reference:six:0.4"]):
        with pytest.raises(SystemExit) as e:
            pq.main(bad + ["--out", str(out)])
        assert e.value.code == 2
        assert "expected" in capsys.readouterr().err
