"""Training options that cannot work are refused before any work (i2i/preflight.py), and A|B folders
that cannot all be used are trained on what can be (i2i/data/paired.py).

The property: any combination of training options on tiny data either trains one step or is refused
by make_config or train with a UsageError before the run folder exists; a refusal that advises
options leads, when followed, to a run that trains.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from i2i.config import TrainConfig
from i2i.modes import make_config
from i2i.errors import UsageError
from i2i.train import train

from conftest import ab_folder, random_image

SMALL = dict(workers=0, seed=1, max_steps=1, report=False, sample_every=1000, save_every=1000, threads=1,
             precision="fp32", epochs=1, epochs_decay=0)


def write_images(folder: Path, sizes: list[tuple[int, int]], seed: int = 0, suffix: str = ".png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(sizes):
        random_image(w, h, seed=seed + i).save(folder / f"{i}{suffix}")
    return folder


def advice(message: str) -> list[dict]:
    """The option changes a refusal advises ("...; use --n-layers-d 2 or --net-d pixel"), as options."""
    match = re.search(r"; use (--.*)$", message)
    if not match:
        return []
    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    changes = []
    for alternative in match.group(1).split(" or "):
        tokens = alternative.split()
        change = {}
        for flag, value in zip(tokens[::2], tokens[1::2]):
            key = flag[2:].replace("-", "_")
            change[key] = int(value) if "int" in str(types[key]) else value
        changes.append(change)
    return changes


def trains_one_step(mode: str, options: dict) -> Path:
    cfg = make_config(mode, **options)
    run = train(cfg)
    assert (run / "log.jsonl").read_text().count('"step": 1') >= 1
    return run


def refused_before_work(mode: str, options: dict) -> str | None:
    """Train; None when it trained one step, else the refusal (a UsageError before any work)."""
    run_dir = Path(options["checkpoints_dir"]) / options["name"]
    try:
        trains_one_step(mode, options)
        return None
    except UsageError as e:
        assert not run_dir.exists(), f"refused after the run folder was written: {e}"
        assert "unexpected" not in str(e)
        return str(e)


# --- the property over training options ------------------------------------------------------------

sizes = st.lists(st.tuples(st.integers(8, 64), st.integers(8, 64)), min_size=1, max_size=3)
translation = st.fixed_dictionaries({
    "mode": st.sampled_from(["pix2pix", "pix2pix", "cycle", "dual"]),
    "layout": st.sampled_from(["ab", "folders"]),
    "odd_width": st.booleans(),  # ab layout: one more A|B image of odd width, skipped
    "sizes_a": sizes, "sizes_b": sizes,
    "net_g": st.sampled_from(["unet_32", "resnet_6blocks", "resnet_9blocks", "unet_64"]),
    "net_d": st.sampled_from(["basic", "n_layers", "pixel"]),
    "n_layers_d": st.integers(1, 5),
    "norm": st.sampled_from(["batch", "instance", "none"]),
    "batch_size": st.integers(1, 3),
    "input_nc": st.sampled_from([1, 3]), "output_nc": st.sampled_from([1, 3]),
    "preprocess": st.sampled_from(["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"]),
    "crop_size": st.sampled_from([8, 16, 32, 48, 64]), "load_size": st.sampled_from([8, 16, 36, 64, 72]),
    "gan_loss": st.sampled_from(["vanilla", "lsgan", "wgangp", "hinge"]),
    "direction": st.sampled_from(["AtoB", "BtoA"]),
    "ngf": st.integers(2, 4), "ndf": st.integers(2, 4),
})
generative = st.fixed_dictionaries({
    "mode": st.sampled_from(["gan", "vae", "vaegan"]),
    "sizes_a": sizes,
    "image_size": st.sampled_from([32, 64]),
    "norm": st.sampled_from(["batch", "instance", "none"]),
    "batch_size": st.integers(1, 3),
    "output_nc": st.sampled_from([1, 3]),
    "gan_loss": st.sampled_from(["vanilla", "lsgan", "wgangp", "hinge"]),
    "ngf": st.integers(2, 4), "ndf": st.integers(2, 4),
})
EXAMPLES = int(os.environ.get("I2I_PREFLIGHT_EXAMPLES", 40))  # more for a longer hunt


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.one_of(translation, generative))
def test_every_option_combination_trains_or_is_refused_before_any_work(case):
    case = dict(case)
    mode = case.pop("mode")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sizes_a, sizes_b = case.pop("sizes_a"), case.pop("sizes_b", None)
        layout, odd_width = case.pop("layout", None), case.pop("odd_width", False)
        if mode == "pix2pix" and layout == "ab":
            ab_folder(tmp, sizes_a)
            if odd_width:
                random_image(2 * sizes_a[0][0] + 1, sizes_a[0][1]).save(tmp / "odd.png")
            case["a"] = str(tmp)
        elif mode == "pix2pix":
            write_images(tmp / "data" / "A", sizes_a)
            write_images(tmp / "data" / "B", sizes_b[:len(sizes_a)] + sizes_a[len(sizes_b):], seed=50)
            case["a"] = str(tmp / "data")
        elif mode in ("cycle", "dual"):
            case["a"] = str(write_images(tmp / "A", sizes_a))
            case["b"] = str(write_images(tmp / "B", sizes_b, seed=50))
        else:
            case["a"] = str(write_images(tmp / "A", sizes_a))
            case["z_dim"] = 4
        if case.get("net_d") != "n_layers":
            case.pop("n_layers_d", None)  # read only with --net-d n_layers (refused otherwise)
        options = {**SMALL, **case, "name": "run", "checkpoints_dir": str(tmp / "ck")}
        try:
            make_config(mode, **options)
        except UsageError:
            event("refused by make_config")
            return  # refused by the option checks: nothing was read or written
        refusal = refused_before_work(mode, options)
        event("trained one step" if refusal is None else "refused by train, with advice" if advice(refusal)
              else "refused by train")
        if refusal is None:
            return
        if "a training step fails" in refusal or "stacks images of one size" in refusal:
            assert advice(refusal), refusal  # a refusal of the options names options that work
        for change in advice(refusal)[:1]:  # following the advice trains
            followed = {**options, **change, "checkpoints_dir": str(tmp / "ck2")}
            assert refused_before_work(mode, followed) is None, (refusal, change)


# --- the cases of the issue, with their messages -----------------------------------------------------

def tiny(tmp_path, a, **overrides) -> dict:
    return {**SMALL, "a": str(a), "name": "run", "checkpoints_dir": str(tmp_path / "ck"), "net_g": "unet_32",
            "ngf": 4, "ndf": 4, "load_size": 36, "crop_size": 32, **overrides}


@pytest.mark.parametrize("preprocess", ["none", "scale_width"])
def test_batch_of_mixed_sizes_is_refused_with_the_fix(tmp_path, preprocess):
    data = ab_folder(tmp_path / "ab", [(32, 32), (48, 32), (32, 64)])
    options = tiny(tmp_path, data, preprocess=preprocess, batch_size=2, load_size=32)
    refusal = refused_before_work("pix2pix", options)
    assert refusal is not None and "--batch-size 2 stacks images of one size" in refusal
    assert f"--preprocess {preprocess}" in refusal and "use --batch-size 1 or --preprocess resize_and_crop" in refusal
    for i, change in enumerate(advice(refusal)):
        refused = refused_before_work("pix2pix", {**options, **change, "checkpoints_dir": str(tmp_path / f"ck{i}")})
        assert refused is None


def test_too_deep_discriminator_names_the_option_and_its_advice_works(tmp_path):
    data = ab_folder(tmp_path / "ab", [(32, 32)] * 2)
    options = tiny(tmp_path, data, net_d="n_layers", n_layers_d=5)
    refusal = refused_before_work("pix2pix", options)
    assert "discriminator D (--net-d n_layers --n-layers-d 5) on 32x32 images from --crop-size 32" in refusal
    assert refusal.endswith("use --n-layers-d 3 or --n-layers-d 2")
    for i, change in enumerate(advice(refusal)):
        assert refused_before_work("pix2pix", {**options, **change, "checkpoints_dir": str(tmp_path / f"ck{i}")}) is None


def test_full_and_last_partial_batch_are_both_run():
    from i2i.preflight import _batch_sizes

    def cfg(batch_size):
        return dataclasses.replace(TrainConfig(), batch_size=batch_size)

    assert _batch_sizes(cfg(2), 3) == [2, 1]  # 3 images in batches of 2: the epoch ends with a batch of 1
    assert _batch_sizes(cfg(2), 4) == [2]
    assert _batch_sizes(cfg(1), 5) == [1]
    assert _batch_sizes(cfg(4), 10) == [4, 2]


def test_unpaired_sizes_that_a_loss_compares_are_refused(tmp_path):
    a = write_images(tmp_path / "A", [(32, 32)] * 2)
    b = write_images(tmp_path / "B", [(64, 32)] * 2, seed=9)
    options = tiny(tmp_path, a, b=str(b), preprocess="none", net_g="unet_32")
    refusal = refused_before_work("dual", options)
    assert "a training step fails in the losses on 32x32 (A) and 64x32 (B) images from --preprocess none" in refusal
    change = advice(refusal)[0]
    assert change == {"preprocess": "resize_and_crop"}
    assert refused_before_work("dual", {**options, **change, "checkpoints_dir": str(tmp_path / "ck2")}) is None


def test_unpaired_different_sizes_train_without_a_cropping_preprocess(tmp_path):
    """A and B of different sizes under --preprocess none train, sample grid included."""
    a = write_images(tmp_path / "A", [(32, 32)] * 2)
    b = write_images(tmp_path / "B", [(48, 32)] * 2, seed=9)
    options = tiny(tmp_path, a, b=str(b), preprocess="none", net_g="resnet_6blocks")
    assert refused_before_work("cycle", options) is None


def test_the_check_leaves_the_random_streams_alone(tmp_path):
    from i2i import modes
    from i2i.preflight import check_training

    data = ab_folder(tmp_path / "ab", [(32, 32)] * 2)
    cfg = make_config("cycle", **tiny(tmp_path, data, b=str(data), net_g="resnet_6blocks", pool_size=2))
    dataset = modes.mode_class("cycle").make_dataset(cfg)
    torch.manual_seed(3)
    random.seed(3)
    before = torch.rand(4), random.random()
    torch.manual_seed(3)
    random.seed(3)
    check_training(cfg, dataset)
    assert torch.equal(torch.rand(4), before[0]) and random.random() == before[1]


@settings(max_examples=60, deadline=None)
@given(a=st.lists(st.tuples(st.integers(1, 9), st.integers(1, 9)), min_size=1, max_size=6),
       b=st.one_of(st.none(), st.lists(st.tuples(st.integers(1, 9), st.integers(1, 9)), min_size=1, max_size=6)))
def test_the_sizes_run_stand_for_every_size_and_pair(a, b):
    """Every size is at least as large as a size that is run, and a pair of differing sizes is run
    whenever the data holds one."""
    from i2i.preflight import _steps

    steps = _steps(a, b)
    run_a, run_b = {s for s, _ in steps}, {s for _, s in steps}
    for size in a:
        assert any(r[0] <= size[0] and r[1] <= size[1] for r in run_a)
    for size in b or []:
        assert any(r[0] <= size[0] and r[1] <= size[1] for r in run_b)
    if b is not None and set(a) | set(b) != {a[0]}:
        assert any(x != y for x, y in steps)
    assert set(run_a) <= set(a) and set(run_b) <= set(b or a)


# --- A|B folders --------------------------------------------------------------------------------------

def test_odd_width_ab_image_is_skipped_and_reported_or_refused_with_strict(tmp_path, caplog):
    from i2i.data.paired import PairedDataset

    data = ab_folder(tmp_path / "ab", [(16, 16)] * 3)
    for i, width in enumerate((33, 17)):
        random_image(width, 16, seed=i).save(data / f"odd{i}.png")
    with caplog.at_level(logging.WARNING, logger="i2i"):
        ds = PairedDataset(data)
    assert len(ds) == 3 and list(ds.sizes.values()) == [(16, 16)] * 3
    assert "odd0.png: width 33 is odd" in caplog.text and "odd1.png: width 17 is odd" in caplog.text
    assert "skipped 2 A|B image(s) of odd width of 5" in caplog.text
    with pytest.raises(UsageError, match=r"odd0.png: width 33 is odd.*\(2 such file\(s\) in .*drop --strict"):
        PairedDataset(data, strict=True)
    assert refused_before_work("pix2pix", tiny(tmp_path, data)) is None  # training goes on without them


def test_only_odd_widths_is_one_line_naming_the_fix(tmp_path):
    from i2i.data.paired import PairedDataset

    random_image(33, 16).save(tmp_path / "odd.png")
    with pytest.raises(UsageError, match="none of the 1 images can be used; A|B images need an even width"):
        PairedDataset(tmp_path)


def test_exif_rotated_ab_image_is_judged_upright(tmp_path):
    from i2i.data.paired import PairedDataset, upright_size

    img = random_image(16, 32)  # stored 16x32, shown 32x16 (rotated by EXIF): an A|B pair of 16x16 halves
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "rotated.jpg", exif=exif)
    assert upright_size(tmp_path / "rotated.jpg") == (32, 16)
    assert PairedDataset(tmp_path).sizes == {tmp_path / "rotated.jpg": (16, 16)}


@pytest.mark.parametrize("halves, warned", [([(32, 24)] * 3, True), ([(32, 32)] * 2 + [(20, 30)], False),
                                            ([(16, 16), (30, 30), (40, 38)], False)])
def test_ordinary_photos_in_an_ab_folder_are_warned_about(tmp_path, caplog, halves, warned):
    from i2i.data.paired import PairedDataset

    data = ab_folder(tmp_path / "ab", halves)
    with caplog.at_level(logging.WARNING, logger="i2i"):
        PairedDataset(data)
    assert ("not about twice as wide as tall" in caplog.text) == warned
    if warned:
        assert "--mode cycle --a FOLDER_A --b FOLDER_B" in caplog.text and "i2i prepare combine" in caplog.text


# --- numbers out of range --------------------------------------------------------------------------------

BAD_NUMBERS = {"batch_size": st.integers(-3, 0), "load_size": st.integers(-3, 0), "crop_size": st.integers(-3, 0),
               "ngf": st.integers(-3, 0), "ndf": st.integers(-3, 0), "n_layers_d": st.integers(-3, 0),
               "workers": st.integers(-3, -1), "n_critic": st.integers(-3, 0), "pool_size": st.integers(-3, -1),
               "max_steps": st.integers(-3, 0), "save_every": st.integers(-3, 0), "log_every": st.integers(-3, 0),
               "sample_every": st.integers(-3, 0), "val_every": st.integers(-3, 0),
               "lr": st.floats(-1, 0), "beta1": st.one_of(st.floats(-1, -0.01), st.floats(1, 5)),
               "clip": st.floats(-1, 0), "holdout": st.one_of(st.floats(-1, -0.01), st.floats(1, 5)),
               "val_fraction": st.one_of(st.floats(-1, -0.01), st.floats(1, 5))}


@settings(max_examples=60, deadline=None)
@given(data=st.data(), mode=st.sampled_from(["pix2pix", "cycle", "dual", "gan", "vae", "vaegan"]),
       option=st.sampled_from(sorted(BAD_NUMBERS)))
def test_numbers_out_of_range_are_refused_naming_the_option(data, mode, option):
    value = data.draw(BAD_NUMBERS[option])
    with pytest.raises(UsageError) as refused:
        b = "data_b" if mode in ("pix2pix", "cycle", "dual") else None  # one-folder modes refuse --b
        make_config(mode, a="data", b=b, name="run", **{option: value})
    assert f"--{option.replace('_', '-')}" in str(refused.value)


def test_only_the_images_left_for_training_count(tmp_path):
    """--val-fraction moves items out of the dataset after the scan: their sizes no longer count."""
    from i2i import modes
    from i2i.preflight import check_training

    data = ab_folder(tmp_path / "ab", [(32, 32), (32, 32), (64, 32)])
    cfg = make_config("pix2pix", **tiny(tmp_path, data, preprocess="none", batch_size=2))
    dataset = modes.mode_class("pix2pix").make_dataset(cfg)
    with pytest.raises(UsageError, match="leaves 2 sizes"):
        check_training(cfg, dataset)
    dataset.items = [item for item in dataset.items if item[0].name != "2.png"]
    check_training(cfg, dataset)


@settings(max_examples=80, deadline=None)
@given(preprocess=st.sampled_from(["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"]),
       load=st.integers(1, 80), crop=st.integers(1, 80), multiple=st.sampled_from([1, 4, 32]),
       h=st.integers(1, 70), w=st.integers(1, 70), channels=st.sampled_from([1, 3]), seed=st.integers(0, 99))
def test_output_size_is_the_size_augment_makes(preprocess, load, crop, multiple, h, w, channels, seed):
    """The sizes the check runs through the networks are the sizes training makes."""
    from i2i.data.transforms import Augment

    augment = Augment(preprocess, load, crop, True, multiple)
    image = np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    a, b = augment(image, image[::-1].copy(), seed)
    assert tuple(a.shape) == tuple(b.shape) == (channels, *augment.output_size(h, w))


@pytest.mark.parametrize("options, option", [(dict(load_size=30000), "--load-size 30000"),
                                             (dict(preprocess="crop", crop_size=10240), "--crop-size 10240")])
def test_resize_and_crop_sizes_over_the_pixel_limit_are_refused(options, option):
    with pytest.raises(UsageError, match=f"{option} makes .* over the limit of 89,478,485 .*; choose a smaller"):
        make_config("pix2pix", a="data", name="run", **options)
    make_config("pix2pix", a="data", name="run", max_pixels=10**9, **options)  # the advice: a larger limit
    make_config("pix2pix", a="data", name="run", **{**options, "preprocess": "none"})  # no resize, no crop
