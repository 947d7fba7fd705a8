"""Messy folders: a corpus of bad and unusual files fed to translate, prepare and train. Each bad file
gets its documented outcome (reported and skipped, naming the file) and every good file beside it is
still processed."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import random_image
from i2i.data.images import check_image, max_pixels_scope, open_image
from i2i.errors import ImageError

W, H = 40, 24


def _png_with_header(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming ``width`` x ``height``, with a tiny IDAT: a file whose
    header promises far more pixels than it holds."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _exif_rotated(path: Path) -> None:
    """A W x H JPEG whose EXIF says 'rotate 90 degrees': upright it is H x W."""
    img = random_image(W, H, seed=7)
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, exif=exif.tobytes())


# name -> (how to make it, None if it must be processed or the words its error must contain)
def _corpus() -> dict[str, tuple]:
    rgb = random_image(W, H, seed=1)
    jpeg = io.BytesIO()
    rgb.save(jpeg, "JPEG")
    p_img = rgb.convert("P", palette=Image.ADAPTIVE)
    p_img.info["transparency"] = 0
    deep = Image.fromarray((np.linspace(0, 65535, W * H).reshape(H, W)).astype(np.uint16))
    return {
        "good1.png": (lambda p: random_image(W, H, seed=2).save(p), None),
        "good2.jpg": (lambda p: random_image(W, H, seed=3).save(p), None),
        "mode_1.png": (lambda p: rgb.convert("1").save(p), None),
        "mode_L.png": (lambda p: rgb.convert("L").save(p), None),
        "mode_LA.png": (lambda p: rgb.convert("LA").save(p), None),
        "mode_P_transparent.png": (lambda p: p_img.save(p, transparency=0), None),
        "mode_RGBA.png": (lambda p: rgb.convert("RGBA").save(p), None),
        "mode_CMYK.jpg": (lambda p: rgb.convert("CMYK").save(p), None),
        "mode_I16.png": (lambda p: deep.save(p), None),
        "mode_I.tif": (lambda p: deep.convert("I").save(p), None),
        "exif_rotated.jpg": (_exif_rotated, None),
        "truncated.jpg": (lambda p: p.write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2]), "truncated"),
        "zero_bytes.png": (lambda p: p.write_bytes(b""), "0 bytes"),
        "text.jpg": (lambda p: p.write_text("this is not an image\n"), "not an image"),
        "huge_header.png": (lambda p: p.write_bytes(_png_with_header(100_000, 100_000)), "pixels, over the limit"),
        ".DS_Store": (lambda p: p.write_bytes(b"\0\0\0\1Bud1"), "hidden"),
        "notes.txt": (lambda p: p.write_text("not an image either"), "hidden"),  # not an image extension
    }


GOOD = [n for n, (_, err) in _corpus().items() if err is None]
BAD = {n: err for n, (_, err) in _corpus().items() if err not in (None, "hidden")}


@pytest.fixture
def corpus(tmp_path) -> Path:
    root = tmp_path / "messy"
    root.mkdir()
    for name, (make, _) in _corpus().items():
        make(root / name)
    return root


@pytest.mark.parametrize("name", GOOD)
def test_every_mode_loads_as_rgb_and_gray(corpus, name):
    from i2i.data.images import load_image

    for channels, mode in ((3, "RGB"), (1, "L")):
        img = load_image(corpus / name, channels)
        assert img.mode == mode
        assert img.size == ((H, W) if name.startswith("exif") else (W, H))


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_fail_with_a_message_naming_them(corpus, name):
    for check in (check_image, open_image):
        with pytest.raises(ImageError, match=BAD[name]) as e:
            check(corpus / name)
        assert str(e.value).startswith(str(corpus / name))


def test_pixel_limit_guards_against_decompression_bombs(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("L", (4000, 4000)).save(path)  # 16 megapixels of zeros in a few kB
    assert path.stat().st_size < 100_000
    with max_pixels_scope(1_000_000):
        with pytest.raises(ImageError, match="--max-pixels 16000000"):
            open_image(path)
    with max_pixels_scope(20_000_000):
        assert open_image(path).size == (4000, 4000)
    with pytest.raises(ImageError, match="--max-pixels 16000000"):
        with max_pixels_scope(1_000_000):
            open_image(path)


def test_translate_processes_the_good_files_and_reports_the_bad(corpus, tmp_path):
    from i2i import nets
    from i2i.runs import save_weights
    from i2i.runtime import resolve
    from i2i.translate import translate_files
    from i2i.translator import load_translator

    spec = {"name": "resnet_6blocks", "in_channels": 3, "out_channels": 3, "ngf": 4, "norm": "instance",
            "dropout": False}
    save_weights(tmp_path / "G.safetensors", nets.create(**spec), spec)
    t = load_translator(tmp_path / "G.safetensors", runtime=resolve("cpu", "auto", threads=1))
    summary = translate_files(t, [str(corpus)], tmp_path / "out")
    assert summary.written == len(GOOD)
    assert sorted(Path(p).name for p, _ in summary.failed) == sorted(BAD)
    for p, reason in summary.failed:
        assert reason.startswith(str(p)) and BAD[Path(p).name] in reason
    out = tmp_path / "out"
    assert sorted(f.name for f in out.iterdir()) == sorted(GOOD)
    assert Image.open(out / "exif_rotated.jpg").size == (H, W)  # upright
    assert Image.open(out / "mode_RGBA.png").mode == "RGBA"  # alpha kept
    import cv2  # Pillow reads 48-bit RGB PNGs as 8-bit; OpenCV reads them as they are

    deep = cv2.imread(str(out / "mode_I16.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (H, W, 3)
    assert len(np.unique(deep)) > 256  # 16-bit in, 16-bit out


def test_sixteen_bit_input_is_not_rounded_to_eight_bits(tmp_path):
    """An identity-like check: 16-bit values reach the network with more than 256 levels."""
    from i2i.data.codecs import prepare_image

    ramp = (np.arange(1024, dtype=np.uint16) * 64).reshape(32, 32)
    x, alpha, deep = prepare_image(Image.fromarray(ramp), 3, None)
    assert deep and alpha is None and x.shape == (3, 32, 32)
    assert len(np.unique(x[0].numpy())) == 1024


def test_prepare_skips_the_bad_files(corpus, tmp_path):
    from i2i.prepare import split

    report = split(corpus, tmp_path / "split", val=0.0, test=0.0)
    assert report.written == len(GOOD)
    assert sorted(Path(p).name for p, _ in report.skipped) == sorted(BAD)


def test_training_scan_skips_the_bad_files_or_stops_with_strict(corpus, tmp_path, caplog):
    from conftest import tiny_unpaired_config

    from i2i.errors import UsageError
    from i2i.train import train

    good_b = tmp_path / "b"
    good_b.mkdir()
    for i in range(2):
        random_image(W, H, seed=20 + i).save(good_b / f"{i}.png")
    cfg = tiny_unpaired_config((corpus, good_b), tmp_path, max_steps=2)
    train(cfg)
    assert f"skipped {len(BAD)} unreadable image(s) of {len(GOOD) + len(BAD)}" in caplog.text
    with pytest.raises(UsageError, match="drop --strict"):
        train(tiny_unpaired_config((corpus, good_b), tmp_path / "strict", strict=True))


def _tiny_translator(tmp_path):
    from i2i import nets
    from i2i.runs import save_weights
    from i2i.runtime import resolve
    from i2i.translator import load_translator

    spec = {"name": "resnet_6blocks", "in_channels": 3, "out_channels": 3, "ngf": 4, "norm": "instance",
            "dropout": False}
    save_weights(tmp_path / "G.safetensors", nets.create(**spec), spec)
    return load_translator(tmp_path / "G.safetensors", runtime=resolve("cpu", "auto", threads=1))


def test_full_disk_stops_translate_with_one_message_and_no_partial_files(tmp_path, monkeypatch):
    import errno

    from i2i.errors import I2IError
    from i2i.translate import translate_files

    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        random_image(W, H, seed=i).save(src / f"{i}.png")
    translator = _tiny_translator(tmp_path)

    def full_disk(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half a file")  # the write gets part of the way
        raise OSError(errno.ENOSPC, "No space left on device", str(fp))

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(I2IError, match="disk is full.*rerun the same command"):
        translate_files(translator, [str(src)], tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # not even a hidden temp file


def test_memory_stays_flat_over_a_long_translate(tmp_path):
    """RSS after 40 more images is within a few MB of RSS after the first 40 (no growth per image)."""
    from i2i.translate import translate_files

    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    src = tmp_path / "in"
    src.mkdir()
    for i in range(40):
        random_image(64, 48, seed=i).save(src / f"{i:03d}.png")
    translator = _tiny_translator(tmp_path)
    translate_files(translator, [str(src)], tmp_path / "warm")
    readings = []
    for run in range(3):
        translate_files(translator, [str(src)], tmp_path / f"out{run}")
        readings.append(rss_mb())
    assert readings[-1] - readings[0] < 8, readings
