"""The pixel limit on every path that decodes an image, without touching Pillow's global.

A 27-byte-per-row lie: a tiny PNG whose header claims 15000x15000 (225 megapixels, over twice
Pillow's default limit) must be refused by open_image, check_image, translate, the Python API and
serve's page function, quickly and without allocating the image. --max-pixels lets a trusted
over-limit file through, even above twice Pillow's default.
"""

from __future__ import annotations

import resource
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin
from typer.testing import CliRunner

from conftest import random_image
from i2i.data.images import DEFAULT_MAX_PIXELS, check_image, max_pixels_scope, open_image
from i2i.errors import ImageError, UsageError

PILLOW_LIMIT = Image.MAX_IMAGE_PIXELS
SIDE = 15000


def _png_with_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.fixture
def bomb(tmp_path) -> Path:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_with_header(SIDE, SIDE))
    assert path.stat().st_size < 100
    return path


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory) -> Path:
    from i2i import nets
    from i2i.runs import save_weights

    path = tmp_path_factory.mktemp("limit") / "G.safetensors"
    spec = {"name": "resnet_6blocks", "in_channels": 3, "out_channels": 3, "ngf": 4, "norm": "instance",
            "dropout": False}
    save_weights(path, nets.create(**spec), spec)
    return path


class Cheap:
    """Asserts that the block neither took long nor raised the process's peak memory by much."""

    def __enter__(self):
        self.rss, self.start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
        return self

    def __exit__(self, *exc):
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.rss) / 1024  # ru_maxrss is in KiB
        assert grown_mb < 100, f"peak memory grew by {grown_mb:.0f} MB"  # the image would be 675 MB as RGB
        assert time.perf_counter() - self.start < 5
        assert Image.MAX_IMAGE_PIXELS == PILLOW_LIMIT  # Pillow's global is never changed
        return False


def _limit_message(e: pytest.ExceptionInfo, where) -> str:
    text = str(e.value)
    assert text.startswith(f"{where}: {SIDE}x{SIDE} is 225,000,000 pixels, over the limit of 89,478,485")
    assert "\n" not in text
    return text


def test_importing_i2i_leaves_pillows_limit_alone():
    code = ("import PIL.Image as I; before = I.MAX_IMAGE_PIXELS; import i2i, i2i.cli, i2i.api, i2i.serve, "
            "i2i.translate, i2i.prepare, i2i.data.images, i2i.data.transforms; "
            "assert I.MAX_IMAGE_PIXELS == before == 89478485, I.MAX_IMAGE_PIXELS")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_open_and_check_refuse_the_bomb_cheaply(bomb):
    for read in (open_image, check_image):
        with Cheap(), pytest.raises(ImageError) as e:
            read(bomb)
        assert _limit_message(e, bomb).endswith(f"pass --max-pixels {SIDE * SIDE} if the file is trusted")


def test_translate_reports_and_skips_the_bomb(bomb, generator_file, tmp_path):
    from i2i.translate import translate_files
    from i2i.translator import load_translator

    random_image(8, 8).save(bomb.parent / "good.png")
    t = load_translator(generator_file)
    with Cheap():
        summary = translate_files(t, [str(bomb.parent)], tmp_path.parent / f"{tmp_path.name}_out")
    assert summary.written == 1 and [p for p, _ in summary.failed] == [bomb]
    assert "over the limit" in summary.failed[0][1]


def test_api_refuses_images_over_the_limit_before_any_work(bomb, generator_file):
    import i2i

    model = i2i.load(generator_file, threads=1)
    assert model.max_pixels == DEFAULT_MAX_PIXELS
    with open(bomb, "rb") as f:
        lazy = PngImagePlugin.PngImageFile(f)  # opened, header only, as Image.open would give it
        with Cheap(), pytest.raises(ImageError) as e:
            model(lazy)
    assert _limit_message(e, "the image").endswith(f"i2i.load(..., max_pixels={SIDE * SIDE}) if the image is trusted")
    huge = np.broadcast_to(np.zeros(1, np.uint8), (SIDE, SIDE, 3))  # no memory behind it
    for x, where in ((huge, "the image"), (torch.zeros(1).expand(3, SIDE, SIDE), "the image"),
                     (torch.zeros(1).expand(2, 3, SIDE, SIDE), "the image"),
                     ([np.zeros((4, 4, 3), np.uint8), huge], "image 1 of the list")):
        with Cheap(), pytest.raises(ImageError) as e:
            model(x)
        _limit_message(e, where)
    small = i2i.load(generator_file, threads=1, max_pixels=15)
    with pytest.raises(ImageError, match=r"the image: 4x4 is 16 pixels, over the limit of 15 .*max_pixels=16\)"):
        small(random_image(4, 4))
    assert small(random_image(3, 5)).size == (3, 5)
    assert i2i.load(generator_file, threads=1, max_pixels=np.int64(16))(random_image(4, 4)).size == (4, 4)
    for bad in (0, -5, 1.5, "many", True):
        with pytest.raises(UsageError, match="max_pixels=.*give a positive whole number"):
            i2i.load(generator_file, threads=1, max_pixels=bad)


def test_serve_page_decodes_uploads_itself_under_the_limit(bomb, generator_file):
    gr = pytest.importorskip("gradio", reason="the ui extra is not installed (pip install 'i2i[ui]')")
    from gradio.data_classes import ImageData

    import i2i
    from i2i.serve import page_result, translate_image, upload_path

    model = i2i.load(generator_file, threads=1)
    component = upload_path(gr.Image(type="filepath", image_mode=None))
    with Cheap():
        assert component.preprocess(ImageData(path=str(bomb), orig_name="bomb.png")) == str(bomb)  # not opened
        with pytest.raises(ImageError) as e:
            translate_image(model, str(bomb), "AtoB")
        assert _limit_message(e, bomb).endswith(f"i2i serve --max-pixels {SIDE * SIDE} if such files are trusted")
        with pytest.raises(gr.Error, match="over the limit"):
            page_result(model, str(bomb), "AtoB")
    good = bomb.parent / "good.png"
    random_image(10, 6).save(good)
    assert page_result(model, str(good), "AtoB").size == (10, 6)


def test_max_pixels_above_twice_pillows_limit_lets_a_trusted_file_through(tmp_path, monkeypatch):
    """Pillow's limit made small for the test (monkeypatch restores it): a 100x100 file is over twice
    Pillow's limit, which Image.open refuses; i2i reads it with --max-pixels, without warnings."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    monkeypatch.setattr("i2i.data.images.MAX_PIXELS", 1000)
    for name in ("big.png", "big.gif", "big.tif", "big.jpg"):
        random_image(100, 100, seed=1).save(tmp_path / name)
        with pytest.raises(Image.DecompressionBombError):
            Image.open(tmp_path / name)
        with pytest.raises(ImageError, match="pass --max-pixels 10000"):
            open_image(tmp_path / name)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # not even Pillow's DecompressionBombWarning
            assert open_image(tmp_path / name, max_pixels=10000).size == (100, 100)
            assert check_image(tmp_path / name, max_pixels=10000) == (100, 100)
            with max_pixels_scope(10000):
                assert open_image(tmp_path / name).size == (100, 100)
        assert Image.MAX_IMAGE_PIXELS == 1000


def test_cli_max_pixels_lets_prepare_read_a_trusted_file(tmp_path, monkeypatch):
    from i2i.cli import app

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for side in ("A", "B"):
        (tmp_path / side).mkdir()
        random_image(100, 100).save(tmp_path / side / "x.png")
    runner = CliRunner()
    refused = runner.invoke(app, ["prepare", "--max-pixels", "1000", "combine", "--a", str(tmp_path / "A"),
                                  "--b", str(tmp_path / "B"), "--out", str(tmp_path / "o1")])
    assert "over the limit of 1,000" in refused.output and "--max-pixels 10000" in refused.output
    advice = runner.invoke(app, ["prepare", "--max-pixels", "10000", "combine", "--a", str(tmp_path / "A"),
                                 "--b", str(tmp_path / "B"), "--out", str(tmp_path / "o2")])
    assert advice.exit_code == 0, advice.output
    assert open_image(tmp_path / "o2" / "x.png", max_pixels=20000).size == (200, 100)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_serve_upload_of_the_bomb_is_refused_on_the_live_page(bomb, generator_file):
    """Through the running server: Gradio hands over the file unopened, i2i refuses it in one line."""
    pytest.importorskip("gradio", reason="the ui extra is not installed (pip install 'i2i[ui]')")
    client_module = pytest.importorskip("gradio_client", reason="gradio_client comes with the ui extra")
    import socket

    from i2i.serve import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = serve(generator_file, port=port, block=False, threads=1)
    try:
        client = client_module.Client(f"http://127.0.0.1:{port}/", verbose=False)
        with Cheap(), pytest.raises(Exception, match=r"bomb.png: 15000x15000 is 225,000,000 pixels, over the limit"):
            client.predict(client_module.handle_file(str(bomb)), "AtoB", api_name="/run_page")
    finally:
        app.close()


def test_serve_advice_to_raise_the_limit_works(generator_file, tmp_path, monkeypatch):
    """The page's refusal names ``i2i serve --max-pixels N``; that command line reaches the model and
    the same file then translates."""
    pytest.importorskip("gradio", reason="the ui extra is not installed (pip install 'i2i[ui]')")
    import re

    from typer.testing import CliRunner

    import i2i
    import i2i.serve
    from i2i.cli import app
    from i2i.serve import translate_image

    big = tmp_path / "big.png"
    random_image(40, 30).save(big)
    with pytest.raises(ImageError) as e:
        translate_image(i2i.load(generator_file, threads=1, max_pixels=1000), str(big), "AtoB")
    advice = re.search(r"i2i serve (--max-pixels \d+)", str(e.value)).group(1).split()
    started = {}
    monkeypatch.setattr(i2i.serve, "serve", lambda *a, **kw: started.update(args=a, kwargs=kw))
    result = CliRunner().invoke(app, ["serve", str(generator_file), *advice, "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    kwargs = {k: v for k, v in started["kwargs"].items() if k in ("device", "precision", "max_pixels")}
    assert kwargs["max_pixels"] == 1200
    assert translate_image(i2i.load(generator_file, threads=1, **kwargs), str(big), "AtoB").size == (40, 30)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(side=st.integers(0, 10**6), limit=st.integers(1, 10**10))
def test_a_side_is_refused_exactly_when_its_square_is_over_the_limit(side, limit):
    from i2i.data.images import check_side

    if side * side > limit:
        with pytest.raises(UsageError) as e:
            check_side("--size", side, limit)
        text = str(e.value)
        assert text.startswith(f"--size {side} makes {side}x{side} images") and "\n" not in text
        assert f"pass --max-pixels {side * side}" in text  # enough for exactly this side
        check_side("--size", side, side * side)  # and the advice holds
    else:
        check_side("--size", side, limit)


@pytest.mark.parametrize("command", ["translate", "eval"])
def test_size_options_over_the_limit_are_refused_before_anything_is_read(command, tmp_path, aligned_dir, monkeypatch):
    """--size 100000 would be a 30 GB image: refused in one line (exit 2) at once, for translate and
    eval alike; the advice (--max-pixels N, here with a small size and limit) then runs."""
    from conftest import tiny_config
    from i2i.cli import app
    from i2i.train import train

    run = train(tiny_config(aligned_dir, tmp_path, max_steps=1))
    runner = CliRunner()

    def invoke(*extra):
        if command == "translate":
            return runner.invoke(app, ["translate", str(aligned_dir), "--model", str(run), "--out", str(tmp_path / "o"),
                                       "--threads", "1", "--overwrite", *extra])
        return runner.invoke(app, ["eval", str(run), "--a", str(aligned_dir), "--threads", "1", *extra])

    with Cheap():
        result = invoke("--size", "100000")
    assert result.exit_code == 2 and "--size 100000 makes 100000x100000 images" in result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output
    result = invoke("--size", "64", "--max-pixels", "4000")
    assert result.exit_code == 2 and "pass --max-pixels 4096" in result.output
    result = invoke("--size", "64", "--max-pixels", "4096")  # the advice, run
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def limit_run(tmp_path_factory):
    from conftest import ab_folder, tiny_config
    from i2i.train import train

    root = tmp_path_factory.mktemp("limit")
    data = ab_folder(root / "ab")
    return root, data, train(tiny_config(data, root, max_steps=1, precision="fp32", threads=1))


@settings(max_examples=12, deadline=None)
@given(limit=st.one_of(st.none(), st.integers(1, 10**13)),
       entry=st.sampled_from(["translate", "eval", "prepare", "train", "train()"]))
def test_a_max_pixels_ends_with_its_command_or_run(limit_run, limit, entry):
    """Whatever --max-pixels a command or a training run is given, and whether it succeeds or is
    refused, i2i's limit afterwards is what it was: a limit raised for one trusted job never carries
    over to files the same process (a test run, a notebook, a server) reads later."""
    import i2i.data.images as images
    from conftest import tiny_config
    from i2i.cli import app
    from i2i.train import train

    root, data, run = limit_run
    before = images.MAX_PIXELS
    flag = [] if limit is None else ["--max-pixels", str(limit)]
    out = root / f"out{time.perf_counter_ns()}"
    if entry == "translate":
        CliRunner().invoke(app, ["translate", str(data), "--model", str(run), "--out", str(out), "--threads", "1", *flag])
    elif entry == "eval":
        CliRunner().invoke(app, ["eval", str(run), "--a", str(data), "--threads", "1", *flag])
    elif entry == "prepare":
        CliRunner().invoke(app, ["prepare", *flag, "split-ab", str(data), "--out", str(out)])
    elif entry == "train":
        CliRunner().invoke(app, ["train", "--a", str(data), "--name", out.name, "--checkpoints-dir", str(root / "ck"),
                                 "--net-g", "unet_32", "--ngf", "4", "--ndf", "4", "--load-size", "36", "--crop-size",
                                 "32", "--workers", "0", "--max-steps", "1", "--threads", "1", "--no-report", *flag])
    else:
        try:
            train(tiny_config(data, root, name=out.name, max_steps=1, max_pixels=limit, threads=1, precision="fp32"))
        except UsageError:
            pass  # a limit below the crop size is refused; the limit must still be put back
    assert images.MAX_PIXELS == before == DEFAULT_MAX_PIXELS


def test_max_pixels_scope_applies_inside_and_nests():
    import i2i.data.images as images

    with max_pixels_scope(100):
        assert images.pixel_limit() == 100
        with max_pixels_scope(None):
            assert images.pixel_limit() == DEFAULT_MAX_PIXELS
        assert images.pixel_limit() == 100
        assert images.pixel_limit(5) == 5  # an explicit limit wins
    assert images.pixel_limit() == DEFAULT_MAX_PIXELS
