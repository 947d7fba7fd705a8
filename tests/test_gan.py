"""--mode gan (DCGAN, cGAN), its data, and the sample / interpolate commands."""

import json

import numpy as np

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from i2i.cli import app
from i2i.modes import make_config
from i2i.data.folder import ImageFolder
from i2i.errors import UsageError
from i2i.modes import create
from i2i.train import train

from conftest import random_image

runner = CliRunner()


@pytest.fixture
def class_dir(tmp_path):
    """cats/ (3 images) and dogs/ (2 images), different sizes."""
    root = tmp_path / "pets"
    for cls, n in (("cats", 3), ("dogs", 2)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            random_image(48 + 8 * i, 40, seed=i + 10 * n).save(root / cls / f"{i}.png")
    return root


def gan_config(data, tmp_path, **kw):
    options = dict(a=str(data), name="g", checkpoints_dir=str(tmp_path / "ck"), image_size=32, ngf=4, ndf=4,
                   z_dim=8, batch_size=2, workers=0, seed=0, epochs=1, sample_every=1000)
    options.update(kw)
    return make_config("gan", **options)


def test_image_folder_classes_and_squares(class_dir):
    from i2i.data.transforms import SquareAugment

    ds = ImageFolder(class_dir, transform=SquareAugment(32, flip=False), conditional=True)
    assert ds.classes == ["cats", "dogs"] and sorted(ds.labels) == [0, 0, 0, 1, 1]
    item = ds[(4, 0)]
    assert item["A"].shape == (3, 32, 32) and item["label"] == 1
    random_image(8, 8).save(class_dir / "loose.png")
    with pytest.raises(UsageError, match="loose.png: with --conditional every image must sit in a class subfolder"):
        ImageFolder(class_dir, conditional=True)
    assert len(ImageFolder(class_dir)) == 6  # unconditional: everything, recursively


def test_dcgan_step_moves_both_nets(class_dir, tmp_path):
    cfg = gan_config(class_dir, tmp_path, conditional=True)
    cfg.classes = ["cats", "dogs"]
    m = create(cfg, "cpu")
    before = {k: [p.clone() for p in v.parameters()] for k, v in m.nets.items()}
    batch = {"A": torch.rand(2, 3, 32, 32) * 2 - 1, "label": torch.tensor([0, 1])}
    losses, out = m.train_step(batch)
    assert out["fake"].shape == (2, 3, 32, 32)
    for name, net in m.nets.items():
        assert any(not torch.equal(p, q) for p, q in zip(before[name], net.parameters())), name


def test_gan_defaults_and_wgangp_preset(tmp_path):
    cfg = make_config("gan", a=".", name="g")
    assert (cfg.net_g, cfg.gan_loss, cfg.z_dim, cfg.image_size, cfg.batch_size, cfg.lr, cfg.beta1) == \
        ("dcgan_generator", "vanilla", 100, 64, 64, 2e-4, 0.5)
    gp = make_config("gan", a=".", name="g", gan_loss="wgangp")
    assert (gp.n_critic, gp.lr, gp.beta1, gp.beta2, gp.norm_d) == (5, 1e-4, 0.0, 0.9, "none")
    with pytest.raises(UsageError, match="--image-size must be one of"):
        make_config("gan", a=".", name="g", image_size=48)
    with pytest.raises(UsageError, match="does not suit --mode gan"):
        make_config("gan", a=".", name="g", net_g="unet_256")


def test_conditional_run_sample_interpolate_and_translate_refusal(class_dir, tmp_path):
    run = train(gan_config(class_dir, tmp_path, conditional=True, max_steps=2))
    assert json.loads((run / "config.json").read_text())["classes"] == ["cats", "dogs"]
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["sample", str(run), "--n", "5", "--out", str(out), "--label", "dogs"])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (3 * 34 + 2, 2 * 34 + 2)  # 5 images in a 3-wide grid, 2 px padding
    result = runner.invoke(app, ["sample", str(run), "--out", str(out)])
    assert result.exit_code == 2 and "exists" in result.output
    result = runner.invoke(app, ["sample", str(run), "--out", str(tmp_path / "x.png"), "--label", "birds"])
    assert result.exit_code == 2 and "'birds' is not a class" in result.output and "cats, dogs" in result.output
    row = tmp_path / "row.png"
    result = runner.invoke(app, ["interpolate", str(run), "--steps", "6", "--out", str(row), "--label", "cats"])
    assert result.exit_code == 0, result.output
    assert Image.open(row).size == (6 * 34 + 2, 34 + 2)
    photos = tmp_path / "photos"
    photos.mkdir()
    random_image(32, 32).save(photos / "p.png")
    result = runner.invoke(app, ["translate", str(photos), "--model", str(run)])
    assert result.exit_code == 2 and "i2i sample" in result.output


def test_samples_repeat_for_a_seed(class_dir, tmp_path):
    from i2i.generate import interpolate, sample

    run = train(gan_config(class_dir, tmp_path, max_steps=1))
    assert sample(run, 4, seed=3).tobytes() == sample(run, 4, seed=3).tobytes()
    assert sample(run, 4, seed=3).tobytes() != sample(run, 4, seed=4).tobytes()
    with pytest.raises(UsageError, match="not conditional"):
        sample(run, 4, label="cats")
    row = interpolate(run, steps=3, seeds=(3, 5))
    first = sample(run, 1, seed=3)  # the row starts at seed 3's image (a grid of one has no padding)
    diff = np.abs(np.asarray(row.crop((2, 2, 34, 34)), int) - np.asarray(first, int))
    assert first.size == (32, 32) and diff.max() <= 1  # batch size may flip a rounding


def test_sample_refuses_a_translation_run(aligned_dir, tmp_path):
    from i2i.generate import sample

    from conftest import tiny_config

    run = train(tiny_config(aligned_dir, tmp_path, max_steps=1))
    with pytest.raises(UsageError, match="pix2pix run, which translates images"):
        sample(run)


def test_slerp_keeps_the_norm_of_gaussian_noise_where_the_line_does_not():
    from i2i.generate import slerp

    a, b = (torch.randn(1, 100, generator=torch.Generator().manual_seed(s)) for s in (3, 7))
    t = torch.linspace(0, 1, 5)[:, None]
    z = slerp(a, b, t)
    assert torch.allclose(z[0], a[0], atol=1e-5) and torch.allclose(z[-1], b[0], atol=1e-5)
    norms = z.norm(dim=1)
    assert norms.min() > 0.9 * min(a.norm(), b.norm())  # stays on the shell where N(0, I) samples lie
    assert ((a + b) / 2).norm() < 0.8 * norms[2]  # the straight line's midpoint is far shorter
    assert torch.allclose(slerp(a, a, t), a.expand(5, -1), atol=1e-5)


@pytest.mark.parametrize("mode", ["gan", "vae", "vaegan"])
def test_a_second_folder_is_refused_by_the_one_folder_modes(mode):
    """--b would be silently ignored: the modes that learn one folder refuse it."""
    with pytest.raises(UsageError, match="--b is for the translation modes"):
        make_config(mode, a=".", b=".", name="g")
