"""One numeric rule for deep images, multi-frame files, and every kind of unreadable file.

The rule (i2i.data.images): 8-bit v/255; integer grayscale (I;16, I) v/65535 clipped, whatever the
file's own maximum; float (F) clipped to [0, 1]. prepare, the training datasets, translate and the
Python API must give the same network input for the same file, never rounded to 8 bits.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import socket
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from conftest import random_image
from i2i.data.images import (array_to_tensor, check_image, list_images, load_image, network_array, open_image,
                             read_array, upright_size)
from i2i.errors import ImageError

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Recorder:
    """Stands in for a translator: records the network input and returns it as the output."""

    def __init__(self, in_channels: int):
        self.in_channels, self.inputs = in_channels, []
        self.spec = {"in_channels": in_channels, "out_channels": in_channels}
        self.device, self.multiple, self.min_size, self.net = torch.device("cpu"), 1, 1, torch.nn.Identity()

    def padded_side(self, n: int) -> int:
        return n

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.inputs.append(batch.clone())
        return batch


@pytest.fixture(scope="module")
def api_models(tmp_path_factory):
    """i2i.load models (1 and 3 input channels) whose translators record their input."""
    import i2i
    from i2i import nets
    from i2i.runs import save_weights

    models = {}
    for c in (1, 3):
        spec = {"name": "resnet_6blocks", "in_channels": c, "out_channels": c, "ngf": 4, "norm": "instance",
                "dropout": False}
        path = tmp_path_factory.mktemp("deep") / f"G{c}.safetensors"
        save_weights(path, nets.create(**spec), spec)
        model = i2i.load(path, device="cpu", precision="fp32", threads=1)
        model._translators[model.default_direction] = Recorder(c)
        models[c] = model
    return models


def _api_input(model, x) -> torch.Tensor:
    recorder = model._translators[model.default_direction]
    recorder.inputs.clear()
    model(x)
    return recorder.inputs[-1][0]


def _save16(arr: np.ndarray, path: Path) -> None:
    Image.fromarray(arr.astype(np.uint16)).save(path)  # mode I;16
    assert Image.open(path).mode == "I;16"


deep_arrays = st.sampled_from([0, 255, 4095, 65535]).flatmap(
    lambda top: arrays(np.uint16, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=st.integers(0, top)))


@PROPERTY
@given(a=deep_arrays, b_values=st.integers(0, 65535), channels=st.sampled_from([1, 3]))
def test_sixteen_bit_files_give_the_same_input_on_every_path(api_models, a, b_values, channels):
    """prepare->train, the paired, unpaired and folder datasets, translate, the API and eval's
    unpaired reader (also report's gallery) agree: v/65535."""
    from i2i.data.folder import ImageFolder
    from i2i.evaluate import evaluate_unpaired
    from i2i.data.paired import PairedDataset
    from i2i.data.unpaired import UnpairedDataset
    from i2i.prepare import combine
    from i2i.data.codecs import prepare_image

    b = np.full_like(a, b_values)
    expected_a = torch.from_numpy(np.repeat((a.astype(np.float32) / 65535)[None], channels, axis=0)) * 2 - 1
    expected_b = torch.from_numpy(np.repeat((b.astype(np.float32) / 65535)[None], channels, axis=0)) * 2 - 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "A").mkdir()
        (root / "B").mkdir()
        _save16(a, root / "A" / "x.png")
        _save16(b, root / "B" / "x.png")
        combine(root / "A", root / "B", root / "AB")
        assert Image.open(root / "AB" / "x.png").mode == "I;16"  # 16-bit in, 16-bit A|B out
        inputs = {
            "prepare->train": PairedDataset(root / "AB", input_nc=channels, output_nc=channels)[0],
            "paired folders": PairedDataset(root / "A", root / "B", input_nc=channels, output_nc=channels)[0],
            "unpaired": UnpairedDataset(root / "A", root / "B", channels, channels)[0],
        }
        got = {name: item["A"] for name, item in inputs.items()}
        got["folder"] = ImageFolder(root / "A", channels)[0]["A"]
        got["translate"] = prepare_image(open_image(root / "A" / "x.png"), channels, None)[0]
        got["api (PIL)"] = _api_input(api_models[channels], Image.open(root / "A" / "x.png"))
        got["api (numpy)"] = _api_input(api_models[channels], a)
        recorder = Recorder(channels)
        evaluate_unpaired(recorder, recorder, [root / "A" / "x.png"], [root / "B" / "x.png"], None)
        got["eval (unpaired)"] = recorder.inputs[0][0]
        targets = {name: item["B"] for name, item in inputs.items()}
    for name, x in got.items():
        assert x.dtype == torch.float32 and x.shape == expected_a.shape, name
        assert torch.allclose(x, expected_a, atol=1e-6, rtol=0), name  # 1/255 apart would fail
    for name, y in targets.items():
        assert torch.allclose(y, expected_b, atol=1e-6, rtol=0), name


def test_the_file_maximum_does_not_change_a_value(tmp_path):
    """200 is 200/65535 in a file whose maximum is 255 and in one whose maximum is 65535."""
    low, high = np.array([[200, 255]], np.uint16), np.array([[200, 65535]], np.uint16)
    _save16(low, tmp_path / "low.png")
    _save16(high, tmp_path / "high.png")
    a, b = read_array(tmp_path / "low.png", 1), read_array(tmp_path / "high.png", 1)
    assert a.dtype == np.float32 and a[0, 0, 0] == b[0, 0, 0] == np.float32(200 / 65535)
    Image.fromarray(np.array([[200, 70000, -5]], np.int32), "I").save(tmp_path / "i32.tif")
    assert read_array(tmp_path / "i32.tif", 1)[0, :, 0].tolist() == pytest.approx([200 / 65535, 1.0, 0.0])


@pytest.mark.parametrize("values, expected", [([0.0, 0.25, 1.0], [0.0, 0.25, 1.0]),
                                              ([-1.0, 2.0, float("nan")], [0.0, 1.0, 0.0])])
def test_float_tiffs_are_values_in_zero_one(tmp_path, values, expected):
    from i2i.data.codecs import prepare_image

    path = tmp_path / "f.tif"
    Image.fromarray(np.array([values], np.float32), "F").save(path)
    assert open_image(path).mode == "F"
    assert read_array(path, 3)[0, :, 1].tolist() == expected
    x, alpha, deep = prepare_image(open_image(path), 3, None)
    assert deep and alpha is None and torch.equal(x[2, 0], torch.tensor(expected) * 2 - 1)


images_8bit = st.tuples(st.integers(1, 9), st.integers(1, 9), st.sampled_from(["1", "L", "P", "RGB", "RGBA", "LA"]),
                        st.integers(0, 99))


@PROPERTY
@given(spec=images_8bit, channels=st.sampled_from([1, 3]))
def test_eight_bit_images_keep_their_exact_uint8_path(spec, channels):
    """Bit-identical to before: the tensor is to_mode(image) as uint8, / 127.5 - 1, on every path."""
    from i2i.data.folder import ImageFolder
    from i2i.data.images import to_mode
    from i2i.data.paired import PairedDataset
    from i2i.data.codecs import prepare_image

    w, h, mode, seed = spec
    img = random_image(w, h, "RGBA", seed).convert(mode)

    def legacy(pil: Image.Image) -> torch.Tensor:
        arr = np.asarray(pil)
        arr = arr[:, :, None] if arr.ndim == 2 else arr
        return torch.from_numpy(arr.transpose(2, 0, 1).copy()).float().div_(127.5).sub_(1.0)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for side in ("A", "B"):
            (root / side).mkdir()
            img.save(root / side / "x.png")
        img = Image.open(root / "A" / "x.png")
        assert network_array(img, channels).dtype == np.uint8
        assert torch.equal(ImageFolder(root / "A", channels)[0]["A"], legacy(to_mode(img, channels)))
        assert torch.equal(prepare_image(img, channels, None)[0], legacy(to_mode(img, channels)))
        item = PairedDataset(root / "A", root / "B", input_nc=channels, output_nc=channels)[0]  # via RGB, as before
        assert torch.equal(item["A"], legacy(to_mode(to_mode(img, 3), channels)))


def test_deep_images_are_not_rounded_by_augmentation(tmp_path):
    """Resize, crop and flip carry float32 in [0, 1]: a 16-bit ramp keeps more than 256 levels."""
    from i2i.data.folder import ImageFolder
    from i2i.data.transforms import Augment

    ramp = (np.arange(64 * 64, dtype=np.uint32) * 16).reshape(64, 64).astype(np.uint16)
    _save16(ramp, tmp_path / "ramp.png")
    for preprocess in ("resize_and_crop", "crop", "scale_width", "none"):
        x = ImageFolder(tmp_path, 3, Augment(preprocess, 64, 48, True, 4))[(0, 7)]["A"]
        assert x.dtype == torch.float32 and len(torch.unique(x[0])) > 256, preprocess
        assert x.min() >= -1 and x.max() <= 1
        assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # one channel repeated
    assert array_to_tensor(np.full((1, 1, 1), 1.5, np.float32)).item() == 1.0  # bicubic overshoot is clipped


def test_prepare_split_ab_keeps_sixteen_bits(tmp_path):
    from i2i.prepare import combine, split_ab

    a = (np.arange(12, dtype=np.uint16) * 5000).reshape(3, 4)
    for d in ("A", "B"):
        (tmp_path / d).mkdir()
    _save16(a, tmp_path / "A" / "x.png")
    _save16(a[::-1].copy(), tmp_path / "B" / "x.png")
    combine(tmp_path / "A", tmp_path / "B", tmp_path / "AB")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "AB" / "x.png")), np.concatenate([a, a[::-1]], axis=1))
    split_ab(tmp_path / "AB", tmp_path / "split")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "split" / "A" / "x.png")), a)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "split" / "B" / "x.png")), a[::-1])


def test_prepare_combine_of_mixed_depths_is_eight_bit_by_the_rule(tmp_path):
    from i2i.prepare import combine

    for d in ("A", "B"):
        (tmp_path / d).mkdir()
    _save16(np.full((2, 2), 32768, np.uint16), tmp_path / "A" / "x.png")  # 255 * 32768 / 65535 = 127.502
    Image.new("RGB", (2, 2), (10, 20, 30)).save(tmp_path / "B" / "x.png")
    combine(tmp_path / "A", tmp_path / "B", tmp_path / "AB")
    out = np.asarray(Image.open(tmp_path / "AB" / "x.png"))
    assert out.shape == (2, 4, 3) and out[0, 0].tolist() == [128, 128, 128] and out[0, 2].tolist() == [10, 20, 30]


def test_api_sixteen_bit_numpy_in_gives_sixteen_bit_out(api_models):
    arr = np.array([[0, 1000, 65535]], np.uint16)
    out = api_models[1](arr)
    assert out.dtype == np.uint16 and np.array_equal(out, arr)  # the recorder is an identity network
    assert api_models[1](arr.astype(np.uint8)).dtype == np.uint8


# --- multi-frame files ---------------------------------------------------------------------------

def _multi_frame(path: Path, fmt: str) -> None:
    frames = [Image.new("RGB", (6, 4), color) for color in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:])


@pytest.mark.parametrize("name, fmt", [("a.gif", "GIF"), ("a.webp", "WEBP"), ("a.tif", "TIFF")])
def test_multi_frame_files_give_their_first_frame_logged_once(tmp_path, caplog, name, fmt):
    path = tmp_path / name
    _multi_frame(path, fmt)
    assert list_images(tmp_path) == [path]
    with caplog.at_level(logging.INFO, logger="i2i"):
        for _ in range(3):
            img = load_image(path)
            assert img.size == (6, 4) and img.getpixel((0, 0))[0] > 200 and img.getpixel((0, 0))[2] < 50  # red
    notes = [r for r in caplog.records if "only the first frame" in r.getMessage()]
    assert len(notes) == 1 and str(path) in notes[0].getMessage()


def test_a_damaged_later_frame_does_not_stop_the_first(tmp_path):
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(tmp_path / "whole.gif", save_all=True, append_images=frames[1:])
    data = (tmp_path / "whole.gif").read_bytes()
    (tmp_path / "cut.gif").write_bytes(data[: len(data) * 3 // 4])  # inside the third frame
    first = np.asarray(open_image(tmp_path / "whole.gif").convert("RGB"))
    assert np.array_equal(np.asarray(open_image(tmp_path / "cut.gif").convert("RGB")), first)


def test_translate_keeps_a_gif_a_gif(api_models, tmp_path):
    from i2i import nets
    from i2i.runs import save_weights
    from i2i.translate import translate_files
    from i2i.translator import load_translator

    src = tmp_path / "in"
    src.mkdir()
    _multi_frame(src / "a.gif", "GIF")
    random_image(8, 8).save(src / "b.png")
    spec = {"name": "resnet_6blocks", "in_channels": 3, "out_channels": 3, "ngf": 4, "norm": "instance",
            "dropout": False}
    save_weights(tmp_path / "G.safetensors", nets.create(**spec), spec)
    summary = translate_files(load_translator(tmp_path / "G.safetensors"), [str(src)], tmp_path / "out")
    assert summary.written == 2 and not summary.failed
    out = Image.open(tmp_path / "out" / "a.gif")
    assert out.format == "GIF" and out.size == (6, 4)


# --- any problem with one file is an ImageError naming it -------------------------------------------

def _encoded(fmt: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    arr = rng.integers(0, 256, (rng.integers(1, 24), rng.integers(1, 24), 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    if fmt == "GIF":
        img.save(buf, "GIF", save_all=True, append_images=[Image.fromarray(255 - arr)])
    elif fmt == "TIFF16":
        Image.fromarray(arr[:, :, 0].astype(np.uint16) * 257).save(buf, "TIFF")
    elif fmt == "TIFFF":
        Image.fromarray(arr[:, :, 0].astype(np.float32) / 255, "F").save(buf, "TIFF")
    else:
        img.save(buf, fmt)
    return buf.getvalue()


damage = st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert"]), st.floats(0, 1), st.integers(1, 255)),
                  min_size=1, max_size=3)


@pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")  # Pillow's notes on damaged TIFF tags
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(["PNG", "JPEG", "GIF", "TIFF", "TIFF16", "TIFFF", "WEBP", "BMP"]), seed=st.integers(0, 20),
       edits=damage)
def test_damaged_files_give_an_image_or_an_image_error(tmp_path, fmt, seed, edits):
    data = bytearray(_encoded(fmt, seed))
    for op, where, value in edits:
        i = min(int(where * len(data)), max(len(data) - 1, 0))
        if op == "flip" and data:
            data[i] ^= value
        elif op == "cut":
            data = data[:i]
        else:
            data[i:i] = bytes([value]) * (value % 7 + 1)
    suffix = {"JPEG": ".jpg", "TIFF16": ".tif", "TIFFF": ".tif"}.get(fmt, "." + fmt.lower())
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(bytes(data))
    for read in (check_image, open_image, upright_size, load_image, lambda p: read_array(p, 3),
                 lambda p: read_array(p, 1)):
        try:
            read(path)
        except ImageError as e:
            assert str(e).startswith(f"{path}: ") and "\n" not in str(e)


def _special_files(root: Path) -> dict[str, str]:
    """name -> words its error must contain."""
    (root / "loop.png").symlink_to(root / "loop.png")
    (root / "dangling.png").symlink_to(root / "missing.png")
    os.mkfifo(root / "fifo.png")
    (root / "device.png").symlink_to("/dev/null")
    (root / "folder.png").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "socket.png"))
    sock.close()
    return {"loop.png": "symlink loop", "dangling.png": "no such file", "fifo.png": "a FIFO",
            "device.png": "a device file", "folder.png": "is a folder", "socket.png": "not a regular file"}


def test_special_files_are_image_errors_naming_them(tmp_path):
    from i2i.data.images import scan_images

    expected = _special_files(tmp_path)
    random_image(4, 4).save(tmp_path / "good.png")
    for name, words in expected.items():
        for read in (check_image, open_image, upright_size, lambda p: read_array(p, 3)):
            with pytest.raises(ImageError, match=words) as e:
                read(tmp_path / name)
            assert str(e.value).startswith(f"{tmp_path / name}: ")
    files = list_images(tmp_path)  # a folder named x.png is not listed; the others are, and skipped
    assert scan_images(files, str(tmp_path)) == [tmp_path / "good.png"]


def test_permission_denied_is_an_image_error(tmp_path, monkeypatch):
    import i2i.data.images as images

    path = tmp_path / "secret.png"
    random_image(4, 4).save(path)
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: make the open fail as it does for a user
        real_open = os.open
        monkeypatch.setattr(images.os, "open", lambda p, *a, **k: (_ for _ in ()).throw(
            PermissionError(errno.EACCES, "Permission denied", str(p))) if str(p) == str(path) else real_open(p, *a, **k))
    for read in (check_image, open_image):
        with pytest.raises(ImageError, match="permission denied; make the file readable") as e:
            read(path)
        assert str(e.value).startswith(f"{path}: ")


@pytest.mark.parametrize("error", [struct.error("unpack requires a buffer of 4 bytes"), IndexError("list index"),
                                   ZeroDivisionError("division by zero"), KeyError(273), RuntimeError("odd tiff"),
                                   OSError("broken data stream when reading image file"), MemoryError()])
def test_any_decoder_exception_is_an_image_error(tmp_path, monkeypatch, error):
    from PIL import ImageFile

    path = tmp_path / "odd.tif"
    random_image(4, 4).save(path)

    def fail(self):
        raise error

    monkeypatch.setattr(ImageFile.ImageFile, "load", fail)
    with pytest.raises(ImageError) as e:
        open_image(path)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)
