"""Fuzzing the loader and the A|B splitter with hypothesis: random bytes, random image sizes and
truncations never raise anything but the documented ImageError (or UsageError for an odd width)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from i2i.data.images import check_image, open_image
from i2i.errors import ImageError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _encoded(width: int, height: int, fmt: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".jpg", ".png", ".tif", ".bmp", ".webp"]))
def test_random_bytes_give_an_image_error_or_an_image(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    for read in (check_image, open_image):
        try:
            read(path)
        except ImageError as e:
            assert str(e).startswith(str(path))


@FUZZ
@given(width=st.integers(1, 64), height=st.integers(1, 64), fmt=st.sampled_from(["JPEG", "PNG", "BMP"]),
       cut=st.floats(0.0, 1.0), flip=st.integers(0, 255), seed=st.integers(0, 10))
def test_damaged_images_give_an_image_error_or_an_image(tmp_path, width, height, fmt, cut, flip, seed):
    data = bytearray(_encoded(width, height, fmt, seed))
    data = data[: max(1, int(len(data) * cut))] if cut < 1 else data
    data[len(data) // 2] ^= flip  # and one damaged byte
    path = tmp_path / f"damaged.{fmt.lower()}"
    path.write_bytes(bytes(data))
    try:
        img = open_image(path)
    except ImageError as e:
        assert str(e).startswith(str(path))
    else:
        assert img.size == (width, height)


@FUZZ
@given(width=st.integers(1, 48), height=st.integers(1, 24), seed=st.integers(0, 5))
def test_ab_splitter_halves_any_even_width_and_refuses_odd(tmp_path, width, height, seed):
    from i2i.data.codecs import input_half

    path = tmp_path / "ab.png"
    img = Image.open(io.BytesIO(_encoded(width, height, "PNG", seed)))
    if width % 2:
        with pytest.raises(ImageError, match="odd"):
            input_half(img, "AtoB", path)
        return
    a, b = input_half(img, "AtoB", path), input_half(img, "BtoA", path)
    assert a.size == b.size == (width // 2, height)
    whole = np.asarray(img)
    assert np.array_equal(np.concatenate([np.asarray(a), np.asarray(b)], axis=1), whole)
