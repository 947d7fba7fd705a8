import pytest
import torch
from PIL import Image

from i2i import nets
from i2i.errors import UsageError
from i2i.runs import save_weights
from i2i.translate import translate_files
from i2i.translator import load_translator

from conftest import random_image


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small U-Net generator saved the way runs save it."""
    spec = {"name": "unet_32", "in_channels": 3, "out_channels": 3, "ngf": 4, "norm": "batch", "dropout": True}
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "G.safetensors"
    save_weights(path, nets.create(**spec), spec)
    return path


def test_keeps_size_name_and_format(model_file, tmp_path):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    random_image(301, 207).save(src / "odd.jpg")
    random_image(33, 17, "L").save(src / "sub" / "gray.png")
    random_image(40, 20, "RGBA").save(src / "alpha.png")
    summary = translate_files(load_translator(model_file), [str(src)], tmp_path / "out")
    assert summary.written == 3 and not summary.failed
    odd = Image.open(tmp_path / "out" / "odd.jpg")
    assert (odd.format, odd.size) == ("JPEG", (301, 207))
    gray = Image.open(tmp_path / "out" / "sub" / "gray.png")
    assert (gray.format, gray.size, gray.mode) == ("PNG", (33, 17), "RGB")
    alpha = Image.open(tmp_path / "out" / "alpha.png")
    assert alpha.mode == "RGBA" and alpha.getchannel("A") == Image.open(src / "alpha.png").getchannel("A")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_padding_does_not_change_the_centre(model_file, precision):
    """A padded image translates like the padded tensor would: the crop is the right window."""
    from i2i.runtime import input_dtype, resolve

    t = load_translator(model_file, runtime=resolve("cpu", precision, threads=1))
    assert input_dtype(t.net) == (torch.bfloat16 if precision == "bf16" else torch.float32)
    x = torch.rand(1, 3, 30, 28) * 2 - 1
    y = t(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    padded = torch.nn.functional.pad(x, (2, 2, 1, 1), mode="reflect").to(input_dtype(t.net))
    with torch.no_grad():
        expected = t.net(padded)[..., 1:31, 2:30].float()
    assert torch.allclose(expected, y, atol=1e-5)


def test_default_output_is_beside_the_input_and_reruns_keep_outputs(model_file, tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    random_image(32, 32).save(src / "a.png")
    s1 = translate_files(load_translator(model_file), [str(src)], run_name="G")
    assert s1.out == tmp_path / "photos_G" and (s1.out / "a.png").is_file()
    s2 = translate_files(load_translator(model_file), [str(src)], run_name="G")
    assert (s2.written, s2.existing) == (0, 1)
    s3 = translate_files(load_translator(model_file), [str(src)], run_name="G", overwrite=True)
    assert s3.written == 1


def test_refuses_output_inside_input(model_file, tmp_path):
    random_image(32, 32).save(tmp_path / "a.png")
    with pytest.raises(UsageError, match="inside the input folder"):
        translate_files(load_translator(model_file), [str(tmp_path)], tmp_path / "out")
    with pytest.raises(UsageError, match="would overwrite the input"):
        translate_files(load_translator(model_file), [str(tmp_path / "a.png")], tmp_path)


def test_globs_files_and_unreadable_inputs(model_file, tmp_path):
    for name in ("a.png", "b.png"):
        random_image(32, 32).save(tmp_path / name)
    (tmp_path / "c.png").write_bytes(b"broken")
    summary = translate_files(load_translator(model_file), [str(tmp_path / "*.png")], tmp_path.parent / "o1")
    assert summary.written == 2 and [p.name for p, _ in summary.failed] == ["c.png"]
    with pytest.raises(UsageError, match="matches no files"):
        translate_files(load_translator(model_file), [str(tmp_path / "*.gif")], tmp_path.parent / "o2")
    with pytest.raises(UsageError, match="no such file"):
        translate_files(load_translator(model_file), [str(tmp_path / "nope.png")], tmp_path.parent / "o3")


def test_size_option_and_batching(model_file, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        random_image(40, 50, seed=i).save(src / f"{i}.png")
    t = load_translator(model_file)
    s = translate_files(t, [str(src)], tmp_path / "out", size=64, batch_size=2)
    assert s.written == 5 and Image.open(tmp_path / "out" / "3.png").size == (64, 64)
    with pytest.raises(UsageError, match="multiple of 32"):
        translate_files(t, [str(src)], tmp_path / "out2", size=50)


def test_batched_equals_one_by_one(model_file, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        random_image(32, 32, seed=i).save(src / f"{i}.png")
    t = load_translator(model_file)
    translate_files(t, [str(src)], tmp_path / "b1", batch_size=1)
    translate_files(t, [str(src)], tmp_path / "b3", batch_size=3)
    for i in range(3):
        assert Image.open(tmp_path / "b1" / f"{i}.png").tobytes() == Image.open(tmp_path / "b3" / f"{i}.png").tobytes()


def test_eval_mode_is_deterministic_and_no_eval_is_not(model_file):
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    t = load_translator(model_file)
    assert torch.equal(t(x), t(x))
    stochastic = load_translator(model_file, eval_mode=False)
    assert stochastic.net.training  # batch statistics instead of running ones
    assert not torch.allclose(stochastic(x), t(x), atol=1e-3)


def test_direction_and_model_errors(model_file, tmp_path, aligned_dir):
    from i2i.train import train

    from conftest import tiny_config

    run = train(tiny_config(aligned_dir, tmp_path, max_steps=1, direction="BtoA"))
    assert load_translator(run).direction == "BtoA"
    with pytest.raises(UsageError, match="translates BtoA only"):
        load_translator(run, direction="AtoB")
    assert load_translator(None, checkpoints_dir=tmp_path / "ck").source == str(run)
    with pytest.raises(UsageError, match="no trained runs"):
        load_translator(None, checkpoints_dir=tmp_path / "empty")
    with pytest.raises(UsageError, match="no such run folder"):
        load_translator(tmp_path / "missing")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    from i2i.errors import I2IError

    with pytest.raises(I2IError, match="cannot read weights"):
        load_translator(tmp_path / "junk.safetensors")


def test_ab_pairs_translate_the_input_half(model_file, tmp_path):
    import numpy as np

    src = tmp_path / "pairs"
    src.mkdir()
    left, right = random_image(32, 32, seed=1), random_image(32, 32, seed=2)
    pair = Image.new("RGB", (64, 32))
    pair.paste(left, (0, 0))
    pair.paste(right, (32, 0))
    pair.save(src / "p.png")
    left.save(tmp_path / "left.png")
    right.save(tmp_path / "right.png")
    t = load_translator(model_file)
    for direction, half in (("AtoB", "left"), ("BtoA", "right")):
        t.direction = direction
        translate_files(t, [str(src)], tmp_path / direction, ab=True)
        translate_files(t, [str(tmp_path / f"{half}.png")], tmp_path / f"{direction}_plain")
        out = np.asarray(Image.open(tmp_path / direction / "p.png"))
        assert out.shape == (32, 32, 3)
        assert np.array_equal(out, np.asarray(Image.open(tmp_path / f"{direction}_plain" / f"{half}.png")))
    random_image(33, 32).save(src / "odd.png")
    summary = translate_files(t, [str(src)], tmp_path / "odd", ab=True)
    assert "width 33 is odd" in summary.failed[0][1]


def test_temp_files_of_a_killed_run_are_removed(model_file, tmp_path):
    """A ``kill -9`` mid-write leaves ``.NAME.XXXX.tmp`` beside the outputs: the next run removes it
    (here one old enough that no live writer can own it) and leaves other files alone."""
    import os
    import time

    from i2i.io import STALE_AGE_S

    src = tmp_path / "in"
    src.mkdir()
    random_image(16, 16).save(src / "a.png")
    out = tmp_path / "out" / "sub"
    out.mkdir(parents=True)
    stale, mine = out / ".a.png.k2j3h4ab.tmp", out / "notes.txt"
    stale.write_bytes(b"half an image")
    mine.write_text("keep me")
    old = time.time() - STALE_AGE_S - 60
    os.utime(stale, (old, old))
    translate_files(load_translator(model_file), [str(src)], tmp_path / "out")
    assert not stale.exists() and mine.read_text() == "keep me"
    assert (tmp_path / "out" / "a.png").is_file()
