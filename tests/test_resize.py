"""Training resizes images as the reference does: PIL's antialiased bicubic filter, the filter of
its ``transforms.Resize(size, Image.BICUBIC)`` on PIL images (data/base_dataset.py), for every
preprocess option, every channel count and both pixel types."""

from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms as T
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from i2i.data.transforms import Augment, resize

sizes = st.integers(1, 40)


def image(seed: int, h: int, w: int, c: int, dtype) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    return arr if dtype == np.uint8 else (arr / 255).astype(np.float32)


def reference_resize(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    """The reference's call: torchvision's Resize with BICUBIC on a PIL image (RGB or L)."""
    pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    out = np.asarray(T.Resize((h, w), interpolation=T.InterpolationMode.BICUBIC)(pil))
    return out[:, :, None] if out.ndim == 2 else out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), h=sizes, w=sizes, to_h=sizes, to_w=sizes, c=st.sampled_from([1, 3]))
def test_rgb_and_grey_match_the_reference_exactly(seed, h, w, to_h, to_w, c):
    arr = image(seed, h, w, c, np.uint8)
    assert np.array_equal(resize(arr, to_h, to_w), reference_resize(arr, to_h, to_w))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), h=sizes, w=sizes, to_h=sizes, to_w=sizes, c=st.integers(1, 6),
       dtype=st.sampled_from([np.uint8, np.float32]))
def test_any_channel_count_and_dtype(seed, h, w, to_h, to_w, c, dtype):
    """Each channel resized as PIL resizes a grey image; floats stay in [0, 1] and track uint8."""
    arr = image(seed, h, w, c, dtype)
    out = resize(arr, to_h, to_w)
    assert out.shape == (to_h, to_w, c) and out.dtype == arr.dtype
    as_uint8 = image(seed, h, w, c, np.uint8)
    per_channel = np.stack([reference_resize(as_uint8[:, :, i:i + 1], to_h, to_w)[:, :, 0] for i in range(c)], axis=2)
    if dtype == np.uint8:
        assert np.array_equal(out, per_channel)
    else:
        assert out.min() >= 0 and out.max() <= 1
        # PIL's 8-bit filter rounds and clips after each of its two passes (bicubic overshoots at
        # edges), the float path only at the end: equal on average to well under one grey level
        assert np.abs(out * 255 - per_channel).mean() <= 1.0


def test_shrinking_is_antialiased():
    """A one-pixel checkerboard shrunk 4x becomes flat grey, not a moire of leftover samples."""
    board = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)[:, :, None].repeat(3, 2)
    out = resize(board, 16, 16).astype(float)
    assert abs(out.mean() - 127.5) < 2 and out.std() < 2


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), h=st.integers(8, 60), w=st.integers(8, 60), load=st.integers(16, 40),
       preprocess=st.sampled_from(["resize_and_crop", "scale_width", "scale_width_and_crop", "none"]))
def test_every_preprocess_resizes_with_the_reference_filter(seed, h, w, load, preprocess):
    """Without flip and with the crop as large as the resized image, the training sample is exactly
    the reference-filtered image (A and B alike)."""
    arr = image(seed, h, w, 3, np.uint8)
    augment = Augment(preprocess, load, 8, flip=False, multiple=4)
    rh, rw = augment.resize_size(h, w)
    if "crop" in preprocess:  # crop the whole resized image: the crop then takes nothing away
        augment = Augment(preprocess, load, min(rh, rw), flip=False, multiple=4)
        rh, rw = augment.resize_size(h, w)
        if rh != rw:
            return
    a, b = augment(arr, arr, seed)
    expected = torch.from_numpy(reference_resize(arr, rh, rw).copy()).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(a, expected, atol=1e-6) and torch.equal(a, b)
