"""Any image, any generator: every readable image translates at its own size with every generator kind
(ResNet, U-Net, a reference-imported file) at both precisions, and whatever goes wrong with one input
is reported with its name and skipped while the rest are done."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from i2i import nets
from i2i.cli import app
from i2i.errors import UsageError
from i2i.runs import save_weights
from i2i.runtime import resolve
from i2i.translate import translate_files
from i2i.translator import Translator, load_translator, pad_reflect

pytestmark = pytest.mark.usefixtures("one_thread")

KINDS = {
    "resnet": {"name": "resnet", "n_blocks": 1, "in_channels": 3, "out_channels": 3, "ngf": 4, "norm": "instance",
               "dropout": False},
    "unet": {"name": "unet_32", "in_channels": 3, "out_channels": 3, "ngf": 4, "norm": "batch", "dropout": True},
}
MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F")
EXTENSION = {"CMYK": ".jpg", "I": ".tif", "F": ".tif"}  # the rest as PNG


@pytest.fixture(scope="module")
def generator_files(tmp_path_factory):
    """One weights file per generator kind: two i2i .safetensors and a reference-layout .pth."""
    root = tmp_path_factory.mktemp("generators")
    torch.manual_seed(0)
    files = {}
    for kind, spec in KINDS.items():
        files[kind] = root / f"{kind}.safetensors"
        save_weights(files[kind], nets.create(**spec), spec)
    reference = nets.create("resnet", n_blocks=2, in_channels=3, out_channels=3, ngf=4, norm="instance")
    files["reference"] = root / "latest_net_G.pth"
    torch.save(reference.state_dict(), files["reference"])  # a bare state dict, as the reference writes
    return files


_translators: dict = {}


def translator(files, kind: str, precision: str) -> Translator:
    if (kind, precision) not in _translators:
        _translators[kind, precision] = load_translator(files[kind], runtime=resolve("cpu", precision, threads=1))
    return _translators[kind, precision]


def make_image(mode: str, w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode in ("I;16", "I"):
        img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
        return img if mode == "I;16" else img.convert("I")
    if mode == "F":
        return Image.fromarray(rng.random((h, w), dtype=np.float32))
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)


sides = st.one_of(st.integers(1, 12), st.integers(13, 70), st.sampled_from([257, 300, 3000]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(w=sides, h=sides, mode=st.sampled_from(MODES), kind=st.sampled_from(sorted(KINDS) + ["reference"]),
       precision=st.sampled_from(["fp32", "bf16"]), seed=st.integers(0, 2**16))
def test_every_image_translates_at_its_own_size(generator_files, tmp_path_factory, w, h, mode, kind, precision,
                                                 seed):
    if w * h > 20_000:  # long thin images only: 5x3000, not 3000x3000
        w, h = min(w, 7), h
    folder = tmp_path_factory.mktemp("in")
    src = folder / f"x{EXTENSION.get(mode, '.png')}"
    make_image(mode, w, h, seed).save(src)
    summary = translate_files(translator(generator_files, kind, precision), [str(folder)],
                              tmp_path_factory.mktemp("out") / "o")
    assert summary.failed == [], summary.failed
    out = Image.open(summary.out / src.name)
    assert out.size == (w, h)


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 6), w=st.integers(1, 6), pads=st.tuples(*[st.integers(0, 20)] * 4))
def test_pad_reflect_matches_numpy_for_any_pad(h, w, pads):
    """Reflection repeated for pads larger than the side, as numpy's 'reflect' mode does; a side of
    one pixel (nothing to reflect) is repeated, as numpy's 'edge' mode."""
    x = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
    left, right, top, bottom = pads
    want = x.numpy()
    for axis, before, after in ((3, left, right), (2, top, bottom)):
        width = [(0, 0)] * 4
        width[axis] = (before, after)
        want = np.pad(want, width, mode="edge" if want.shape[axis] == 1 else "reflect")
    assert np.array_equal(pad_reflect(x, *pads).numpy(), want)


def test_a_failing_image_is_skipped_and_the_batch_goes_on(generator_files, tmp_path, monkeypatch):
    """Whatever the network raises on one image (here: on one width) fails that image alone, also
    when it shares a batch with others."""
    t = load_translator(generator_files["resnet"], runtime=resolve("cpu", "fp32", threads=1))
    for i in range(5):
        make_image("RGB", 16, 16, i).save(tmp_path / f"{i}.png")
    make_image("RGB", 24, 16, 9).save(tmp_path / "wide.png")
    forward = t.net.forward

    def flaky(x):
        if x.shape[-1] == 24:
            raise RuntimeError("simulated failure\nsecond line")
        return forward(x)

    monkeypatch.setattr(t.net, "forward", flaky)
    summary = translate_files(t, [str(tmp_path)], tmp_path.parent / "out", batch_size=4)
    assert summary.written == 5
    assert [str(p.name) for p, _ in summary.failed] == ["wide.png"]
    reason = summary.failed[0][1]
    assert reason.startswith(str(tmp_path / "wide.png")) and "simulated failure" in reason and "\n" not in reason


def test_cli_reports_every_bad_file_and_translates_the_rest(generator_files, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i, (w, h) in enumerate([(1, 1), (2, 2), (3, 257), (4, 4), (40, 30)]):
        make_image("RGB", w, h, i).save(src / f"{i}.png")
    make_image("RGB", 20, 20, 7).save(src / "anim.gif")
    os.symlink("loop.png", src / "loop.png")
    os.symlink("missing.png", src / "broken.png")
    (src / "empty.png").write_bytes(b"")
    (src / "junk.jpg").write_bytes(b"not a jpeg at all")
    out = tmp_path / "out"
    args = ["translate", str(src), "--model", str(generator_files["resnet"]), "--out", str(out), "--precision",
            "fp32", "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "unexpected" not in text and "Traceback" not in text
    for name in ("loop.png", "broken.png", "empty.png", "junk.jpg"):
        assert name in text
    assert "4 image(s) could not be translated" in text
    written = sorted(p.name for p in out.iterdir())
    assert written == ["0.png", "1.png", "2.png", "3.png", "4.png", "anim.gif"]
    # a rerun keeps what was written and reports the same bad files again, not a new failure
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "6 already there" in " ".join(again.output.split())


def test_a_globs_folder_is_an_input_folder(generator_files, tmp_path):
    """``th/*.jpg --out th/sub`` would write inside the folder the pattern reads; the advice to choose
    a folder outside it works."""
    th = tmp_path / "th"
    th.mkdir()
    for i in range(2):
        make_image("RGB", 16, 16, i).save(th / f"{i}.jpg")
    t = load_translator(generator_files["resnet"], runtime=resolve("cpu", "fp32", threads=1))
    with pytest.raises(UsageError, match="inside the input folder"):
        translate_files(t, [str(th / "*.jpg")], th / "sub")
    with pytest.raises(UsageError, match="inside the input folder"):
        translate_files(t, [str(tmp_path / "**" / "*.jpg")], th / "sub")
    assert not (th / "sub").exists()
    summary = translate_files(t, [str(th / "*.jpg")], tmp_path / "th_out")
    assert summary.written == 2 and not summary.failed
