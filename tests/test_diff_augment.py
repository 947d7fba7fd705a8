"""DiffAugment: each transform does what it says, gradients pass through, and --mode gan uses it."""

import pytest
import torch

from i2i.modes import make_config
from i2i.diff_augment import color, cutout, diff_augment, translation
from i2i.errors import UsageError
from i2i.modes import create


def test_translation_shifts_each_image_and_fills_with_zeros():
    torch.manual_seed(0)
    x = torch.arange(1, 8 * 8 + 1, dtype=torch.float32).view(1, 1, 8, 8).repeat(16, 1, 1, 1)
    y = translation(x, ratio=0.25)  # shifts of -2..2 pixels each way
    padded = torch.nn.functional.pad(x[0, 0], [2, 2, 2, 2])
    shifts = set()
    for img in y[:, 0]:
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(img, padded[2 + dy:10 + dy, 2 + dx:10 + dx])]
        assert len(found) == 1, img
        shifts.add(found[0])
    assert len(shifts) > 1  # each image draws its own shift


def test_cutout_zeroes_one_square_per_image():
    torch.manual_seed(0)
    y = cutout(torch.ones(32, 2, 16, 16), ratio=0.5)
    assert torch.equal(y[:, 0], y[:, 1])  # the same hole in every channel
    for img in y[:, 0]:
        rows, cols = torch.nonzero(img == 0, as_tuple=True)
        # an 8x8 square, clipped where it crosses the border: a full rectangle of zeros
        assert 0 < len(rows) <= 64
        assert len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)


def test_color_keeps_shape_and_changes_values_per_image():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    y = color(x)
    assert y.shape == x.shape
    assert not torch.allclose(y[0] - x[0], y[1] - x[1])


def test_gradients_reach_the_input():
    x = (torch.rand(4, 3, 32, 32) * 2 - 1).requires_grad_(True)
    diff_augment(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_gan_mode_augments_what_the_discriminator_sees(tmp_path):
    cfg = make_config("gan", a=str(tmp_path), name="g", image_size=32, ngf=4, ndf=4, z_dim=8, batch_size=2,
                      diff_augment=True)
    m = create(cfg, "cpu")
    seen = []
    m.D.register_forward_hook(lambda mod, args, out: seen.append(args[0].detach()))
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    m.train_step({"A": real, "label": torch.zeros(2, dtype=torch.long)})
    assert len(seen) == 3  # D on real and fake, then G's pass through D
    assert not any(torch.equal(x, real) for x in seen)  # D never saw the raw real batch
    assert all((x == 0).flatten(1).any(1).all() for x in seen)  # every image it saw has a cutout hole
    with pytest.raises(UsageError, match="--diff-augment is for --mode gan"):
        make_config("vae", a=".", name="v", diff_augment=True)
