"""``i2i export``: a run's generator as an ONNX or torch.export (.pt2) file, checked after writing.

The exported graph takes and returns what an image library hands over, so callers need no i2i:

- input: float32, N x C x H x W, values in [0, 1] (divide 8-bit pixels by 255);
- output: float32, N x C x H x W, values in [0, 1] (multiply by 255 and round for 8-bit);
- batch, height and width are dynamic; height and width must be multiples of the generator's
  ``size_multiple`` (4 for ResNets, 2^depth for U-Nets: 256 for unet_256), which is written into
  the file's metadata (ONNX) and printed; pad (reflect) and crop around the call for other sizes.

The graph is traced in eval mode (dropout off, batch norm on its running statistics). After
writing, the file is run (onnxruntime for ONNX, ``torch.export.load`` for pt2) on a test image at
two sizes, and the largest difference from i2i's own output is reported; above 1e-3 it fails.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn

from .errors import I2IError, UsageError
from .translator import load_translator

log = logging.getLogger(__name__)

FORMATS = ("onnx", "pt2")
TOLERANCE = 1e-3


class UnitRange(nn.Module):
    """A generator with [0, 1] input and output (i2i's generators work in [-1, 1])."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.generator(x * 2 - 1) + 1) / 2).clamp(0, 1)


def _dynamic_shapes(multiple: int) -> dict:
    dim = torch.export.Dim
    return {"x": {0: dim("batch", min=1, max=1024), 2: multiple * dim("h_blocks", min=1, max=4096 // multiple),
                  3: multiple * dim("w_blocks", min=1, max=4096 // multiple)}}


def _check_sizes(multiple: int) -> list[tuple[int, int]]:
    """Two different shapes of at least 64 pixels a side (square and not)."""
    a = multiple * max(1, -(-32 // multiple))
    return [(2 * a, 2 * a), (3 * a, 2 * a)]


def export(model: str | Path, fmt: str, out: str | Path, direction: str | None = None) -> dict:
    """Export the generator for ``direction`` of ``model`` to ``out``; returns the parity report."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = Path(out)
    from .runtime import Runtime

    translator = load_translator(model, direction, runtime=Runtime(torch.device("cpu")))  # plain fp32 on CPU
    wrapped = UnitRange(translator.net).eval()
    multiple = translator.multiple
    channels = translator.in_channels
    example = torch.rand(2, channels, 2 * multiple, 2 * multiple)  # sizes of 2 avoid 0/1 specialisation
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")  # the suffix tells torch.export what it writes
    try:
        with torch.no_grad():
            if fmt == "pt2":
                program = torch.export.export(wrapped, (example,), dynamic_shapes=_dynamic_shapes(multiple))
                torch.export.save(program, tmp)
            else:
                _need_onnx()
                onnx_program = torch.onnx.export(wrapped, (example,), dynamo=True, dynamic_shapes=_dynamic_shapes(multiple),
                                                 input_names=["x"], output_names=["y"], verbose=False)
                _add_metadata(onnx_program.model_proto, multiple, translator)
                onnx_program.save(str(tmp))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    report = {"file": str(out), "format": fmt, "generator": translator.spec["name"], "direction": translator.direction,
              "size_multiple": multiple, "checks": []}
    run = _runner(fmt, out)
    torch.manual_seed(0)
    for h, w in _check_sizes(multiple):
        x = torch.rand(2, channels, h, w)
        with torch.no_grad():
            expected = wrapped(x)
        diff = (run(x) - expected).abs().max().item()
        report["checks"].append({"shape": [2, channels, h, w], "max_abs_diff": diff})
    worst = max(c["max_abs_diff"] for c in report["checks"])
    report["max_abs_diff"] = worst
    if not worst <= TOLERANCE:
        raise I2IError(f"{out}: the exported file differs from i2i by {worst:.3g} (more than {TOLERANCE}); "
                       "it was written but should not be used")
    return report


def _need_onnx() -> None:
    import importlib.util

    if any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxscript")):
        raise UsageError("ONNX export needs the onnx extra: pip install 'i2i[onnx]'")


def _add_metadata(proto, multiple: int, translator) -> None:
    for key, value in {"i2i.size_multiple": str(multiple), "i2i.generator": translator.spec["name"],
                       "i2i.direction": str(translator.direction), "i2i.input": "float32 NCHW in [0, 1]",
                       "i2i.output": "float32 NCHW in [0, 1]"}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def _runner(fmt: str, path: Path):
    if fmt == "pt2":
        module = torch.export.load(path).module()
        return lambda x: module(x).detach()
    try:
        import onnxruntime
    except ImportError:
        raise UsageError("checking the ONNX file needs onnxruntime: pip install 'i2i[onnx]'") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])
