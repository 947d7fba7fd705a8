"""i2i export: ONNX and torch.export files that match i2i's outputs at several sizes."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from i2i import nets
from i2i.errors import UsageError
from i2i.export import export
from i2i.runs import save_weights


def _generator(tmp_path, name, norm):
    spec = {"name": name, "in_channels": 3, "out_channels": 3, "ngf": 4, "norm": norm, "dropout": False}
    torch.manual_seed(0)
    path = tmp_path / f"{name}.safetensors"
    save_weights(path, nets.create(**spec), spec)
    return path


HAVE_ONNX = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnxscript") is not None
FORMATS = ["pt2", pytest.param("onnx", marks=pytest.mark.skipif(
    not HAVE_ONNX, reason="the onnx extra is not installed (pip install 'i2i[onnx]')"))]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name,norm", [("resnet_6blocks", "instance"), ("unet_32", "batch")])
def test_export_matches_i2i_at_two_sizes(tmp_path, fmt, name, norm):
    report = export(_generator(tmp_path, name, norm), fmt, tmp_path / f"g.{fmt}")
    assert len(report["checks"]) == 2 and len({tuple(c["shape"]) for c in report["checks"]}) == 2
    assert report["max_abs_diff"] <= 1e-3
    assert (tmp_path / f"g.{fmt}").stat().st_size > 1000


def test_export_refuses_runs_without_a_translator(tmp_path):
    import json

    run = tmp_path / "gan_run"
    run.mkdir()
    gan = {"file": "G.safetensors", "spec": {"name": "dcgan_generator"}, "directions": []}  # as gan runs write it
    (run / "config.json").write_text(json.dumps({"mode": "gan", "generators": {"G": gan}}))
    with pytest.raises(UsageError, match="generates images rather than translating"):
        export(run, "pt2", tmp_path / "x.pt2")
    with pytest.raises(UsageError, match="--format"):
        export(run, "coreml", tmp_path / "x.ml")
