"""The Python API: PIL, numpy and tensor inputs (and lists) round-trip through the same path as translate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import i2i
from conftest import random_image, tiny_unpaired_config
from i2i.errors import ImageError, UsageError
from i2i.train import train
from i2i.translator import load_translator


@pytest.fixture(scope="module")
def cycle_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    dirs = root / "A", root / "B"
    for d in dirs:
        d.mkdir()
        for i in range(2):
            random_image(32, 32, seed=i).save(d / f"{i}.png")
    return train(tiny_unpaired_config(dirs, root, max_steps=1))


def test_public_names():
    assert set(i2i.__all__) == {"__version__", "load", "Model"}
    assert i2i.Model.__name__ == "Model"


def test_pil_numpy_and_tensor_inputs_agree_with_translate(cycle_run):
    model = i2i.load(cycle_run, precision="fp32", threads=1)
    img = random_image(40, 24, seed=5)  # not a multiple of 4: padded and cropped back
    out = model(img, direction="AtoB")
    assert isinstance(out, Image.Image) and out.size == (40, 24) and out.mode == "RGB"
    reference = load_translator(cycle_run, "AtoB", runtime=model.runtime)
    x = torch.from_numpy(np.asarray(img).transpose(2, 0, 1).copy()).float() / 127.5 - 1
    expected = ((reference(x[None])[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy().transpose(1, 2, 0)
    assert np.array_equal(np.asarray(out), expected)
    arr = model(np.asarray(img), direction="AtoB")
    assert arr.dtype == np.uint8 and np.array_equal(arr, expected)
    t = model(torch.from_numpy(np.asarray(img).transpose(2, 0, 1).copy()).float() / 255, direction="AtoB")
    assert t.shape == (3, 24, 40) and np.abs((t * 255).round().numpy().transpose(1, 2, 0) - expected).max() <= 1
    batch = model([img, img.transpose(Image.FLIP_LEFT_RIGHT)], direction="BtoA")
    assert [b.size for b in batch] == [(40, 24), (40, 24)]
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 3, 16, 16)


def test_grayscale_alpha_and_errors(cycle_run):
    model = i2i.load(cycle_run, precision="fp32", threads=1)
    rgba = random_image(16, 16, "RGBA", seed=1)
    assert model(rgba).mode == "RGBA"
    gray = np.asarray(random_image(16, 16, "L"))
    assert model(gray).shape == (16, 16, 3)
    deep_gray = Image.fromarray((np.arange(256, dtype=np.uint16) * 257).reshape(16, 16))
    deep = model(deep_gray)  # a 3-channel generator: all three channels kept, as 8-bit RGB (no 16-bit RGB in PIL)
    assert deep.mode == "RGB" and deep.size == (16, 16)
    as_array = model(np.asarray(deep_gray))  # a uint16 array keeps 16 bits in all three channels
    assert as_array.dtype == np.uint16 and as_array.shape == (16, 16, 3)
    assert np.abs(np.asarray(deep).astype(int) - np.round(as_array / 257).astype(int)).max() <= 1
    with pytest.raises(ImageError, match="nothing to translate"):
        model(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(UsageError, match="direction"):
        model(rgba, direction="sideways")
    with pytest.raises(UsageError, match="cannot translate a str"):
        model("photo.jpg")
