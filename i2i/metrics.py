"""Image metrics: pixel distances (L1, PSNR, SSIM), label-map scores, and distribution distances (FID, KID).

Images are float tensors in [0, 1], shaped CxHxW or BxCxHxW. Label maps are scored as the pix2pix
and CycleGAN papers score photo -> label: each pixel takes the class of the nearest palette colour,
then per-pixel accuracy, per-class accuracy and mean IoU over the classes present.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def l1(x: torch.Tensor, y: torch.Tensor) -> float:
    return (x.double() - y.double()).abs().mean().item()


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for [0, 1] images (inf when identical)."""
    mse = (x.double() - y.double()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    """Structural similarity (Wang et al. 2004) for [0, 1] images: 11x11 Gaussian window (sigma 1.5),
    K1 = 0.01, K2 = 0.03, averaged over the valid (unpadded) positions and the channels, as
    skimage's ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``."""
    x, y = x.double(), y.double()
    if x.dim() == 3:
        x, y = x[None], y[None]
    c = x.shape[1]
    size = min(11, x.shape[-1], x.shape[-2])
    size -= 1 - size % 2  # odd
    w = _gaussian_window(size).to(x)[None, None].expand(c, 1, -1, -1)

    def filt(t):
        return F.conv2d(t, w, groups=c)

    mu_x, mu_y = filt(x), filt(y)
    var_x = filt(x * x) - mu_x**2
    var_y = filt(y * y) - mu_y**2
    cov = filt(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean().item()


# --- label maps --------------------------------------------------------------------------------

def read_palette(path) -> np.ndarray:
    """A palette file: one class colour per line as ``R G B`` (or ``R,G,B``, or ``#rrggbb``), 0-255;
    blank lines and ``#`` comments are skipped. Returns a Kx3 uint8 array."""
    from .errors import UsageError

    colours = []
    for n, line in enumerate(open(path, encoding="utf-8").read().splitlines(), 1):
        line = line.strip()
        if not line or (line.startswith("#") and len(line) != 7):
            continue
        try:
            rgb = ([int(line[i:i + 2], 16) for i in (1, 3, 5)] if line.startswith("#")
                   else [int(v) for v in line.replace(",", " ").split()])
        except ValueError:
            rgb = []
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise UsageError(f"{path}, line {n}: expected a colour as 'R G B' (0-255) or '#rrggbb', got {line!r}")
        colours.append(rgb)
    if len(colours) < 2:
        raise UsageError(f"{path}: a palette needs at least two colours, one per line")
    return np.array(colours, dtype=np.uint8)


def to_labels(image: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> HxW class indices by nearest palette colour (squared RGB distance)."""
    d = ((image[:, :, None, :].astype(np.int32) - palette[None, None].astype(np.int32)) ** 2).sum(-1)
    return d.argmin(-1)


class LabelScores:
    """Accumulates a confusion matrix over many images; reads out the three scores."""

    def __init__(self, n_classes: int):
        self.confusion = np.zeros((n_classes, n_classes), dtype=np.int64)  # [target, predicted]

    def add(self, predicted: np.ndarray, target: np.ndarray) -> None:
        k = self.confusion.shape[0]
        self.confusion += np.bincount(target.ravel() * k + predicted.ravel(), minlength=k * k).reshape(k, k)

    def scores(self) -> dict[str, float]:
        cm = self.confusion.astype(np.float64)
        present = cm.sum(1) > 0
        correct = np.diag(cm)
        union = cm.sum(0) + cm.sum(1) - correct
        return {"pixel_accuracy": correct.sum() / max(cm.sum(), 1),
                "class_accuracy": float(np.mean(correct[present] / cm.sum(1)[present])) if present.any() else 0.0,
                "mean_iou": float(np.mean(correct[present] / union[present])) if present.any() else 0.0}


# --- distribution distances --------------------------------------------------------------------

def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)): the Frechet distance of two Gaussians (FID
    when they are fitted to Inception features)."""
    from scipy import linalg

    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():  # near-singular product: nudge the diagonals, as pytorch-fid does
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
    """FID between two NxD feature sets (each needs at least 2 rows)."""
    return frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))


def kid_from_features(f1: np.ndarray, f2: np.ndarray, subsets: int = 10, subset_size: int = 1000,
                      seed: int = 0) -> float:
    """Kernel Inception Distance (Binkowski et al. 2018): the unbiased MMD^2 with the polynomial kernel
    (x.y / d + 1)^3, averaged over random subsets."""
    rng = np.random.default_rng(seed)
    d = f1.shape[1]
    m = min(len(f1), len(f2), subset_size)
    if m < 2:
        raise ValueError("KID needs at least two images on each side")
    values = []
    for _ in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                      - 2 * kxy.mean())
    return float(np.mean(values))
