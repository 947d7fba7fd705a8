"""Metrics against hand-computed values and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from i2i import metrics
from i2i.errors import I2IError, UsageError


def test_l1_and_psnr_by_hand():
    x = torch.zeros(3, 8, 8)
    y = torch.full((3, 8, 8), 0.1)
    assert metrics.l1(x, y) == pytest.approx(0.1)
    assert metrics.psnr(x, y) == pytest.approx(20.0)  # MSE 0.01 -> 10 log10(100)
    y[0, 0, 0] = 0.5  # one pixel off by 0.5 more: MSE = (191 * 0.01 + 0.25) / 192
    assert metrics.psnr(x, y) == pytest.approx(10 * math.log10(192 / (191 * 0.01 + 0.25)))
    assert metrics.psnr(x, x) == math.inf


def test_ssim_closed_forms():
    a, b = 0.2, 0.5
    x, y = torch.full((1, 16, 16), a), torch.full((1, 16, 16), b)
    c1 = 0.01**2
    assert metrics.ssim(x, y) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1))  # no variance: luminance only
    r = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0))
    assert metrics.ssim(r, r) == pytest.approx(1.0)
    assert metrics.ssim(r, 1 - r) < 0  # anti-correlated structure
    noisy = (r + 0.1 * torch.randn(r.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert 0 < metrics.ssim(r, noisy) < 1
    assert metrics.ssim(r, noisy) == pytest.approx(metrics.ssim(noisy, r))


def test_ssim_matches_a_direct_computation():
    """One window position computed with explicit sums equals the filtered version."""
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(1, 11, 11, generator=g), torch.rand(1, 11, 11, generator=g)
    w = metrics._gaussian_window(11).numpy()
    xn, yn = x[0].double().numpy(), y[0].double().numpy()
    mx, my = (w * xn).sum(), (w * yn).sum()
    vx, vy = (w * xn * xn).sum() - mx**2, (w * yn * yn).sum() - my**2
    cxy = (w * xn * yn).sum() - mx * my
    c1, c2 = 0.01**2, 0.03**2
    expected = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert metrics.ssim(x, y) == pytest.approx(expected)


def test_palette_scores_on_a_synthetic_label_map(tmp_path):
    palette_file = tmp_path / "palette.txt"
    palette_file.write_text("# facades-like\n255 0 0\n0,0,255\n#00ff00\n")
    palette = metrics.read_palette(palette_file)
    assert palette.tolist() == [[255, 0, 0], [0, 0, 255], [0, 255, 0]]
    target = np.zeros((4, 4), dtype=np.int64)
    target[:, 2:] = 1  # 8 pixels of class 0, 8 of class 1, none of class 2
    image = palette[target].astype(np.int32)
    image[0, 0] = [10, 10, 240]  # a class-0 pixel drawn nearly blue: predicted 1
    image[1, 3] = [200, 30, 20]  # a class-1 pixel drawn nearly red: predicted 0
    predicted = metrics.to_labels(image.astype(np.uint8), palette)
    assert predicted[0, 0] == 1 and predicted[1, 3] == 0
    scores = metrics.LabelScores(3)
    scores.add(predicted, target)
    s = scores.scores()
    assert s["pixel_accuracy"] == pytest.approx(14 / 16)
    assert s["class_accuracy"] == pytest.approx((7 / 8 + 7 / 8) / 2)  # class 2 is absent: not averaged
    assert s["mean_iou"] == pytest.approx((7 / 9 + 7 / 9) / 2)  # each class: 7 right, 1 missed, 1 wrongly claimed


def test_bad_palette_is_a_usage_error(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("255 0\n")
    with pytest.raises(UsageError, match="line 1"):
        metrics.read_palette(path)


def test_fid_of_two_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    d = 4
    mu1, mu2 = np.zeros(d), np.array([1.0, 0.0, -0.5, 2.0])
    s1, s2 = np.array([1.0, 2.0, 0.5, 1.0]), np.array([0.5, 2.0, 2.0, 4.0])
    closed = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert metrics.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(closed)
    f1 = rng.normal(mu1, np.sqrt(s1), size=(50_000, d))
    f2 = rng.normal(mu2, np.sqrt(s2), size=(50_000, d))
    assert metrics.fid_from_features(f1, f2) == pytest.approx(closed, rel=0.02)
    assert metrics.fid_from_features(f1, rng.normal(mu1, np.sqrt(s1), size=(50_000, d))) < 0.01


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    same = metrics.kid_from_features(a, b, subsets=5, subset_size=200)
    apart = metrics.kid_from_features(a, b + 1.0, subsets=5, subset_size=200)
    assert apart > 1.0 and abs(same) < 0.05 * apart


def test_inception_loader_reads_a_file_in_pytorch_fid_format(tmp_path):
    pytest.importorskip("pytorch_fid", reason="pytorch-fid is an optional dependency of FID/KID")
    from i2i.inception import fid_inception_architecture, load_inception

    torch.manual_seed(0)
    path = tmp_path / "pt_inception-random.pth"
    torch.save(fid_inception_architecture().state_dict(), path)  # the real file's format, random weights
    features = load_inception(path)(torch.rand(2, 3, 64, 48))
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    with pytest.raises(UsageError, match="no such file.*--inception-weights"):
        load_inception(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(I2IError, match="not pytorch-fid Inception weights"):
        load_inception(bad)


def test_inception_loader_refuses_pickled_code_in_its_own_words(tmp_path):
    """A weights file that holds an object, not only tensors: refused, and torch's advice to retry
    with weights_only=False never reaches the user."""
    from i2i.inception import load_inception

    path = tmp_path / "evil.pth"
    torch.save({"x": Pickled()}, path)
    with pytest.raises(I2IError) as e:
        load_inception(path)
    assert "pickled objects" in str(e.value) and "weights_only" not in str(e.value)


class Pickled:
    """An object that only a full unpickler would rebuild (weights_only refuses its class)."""
