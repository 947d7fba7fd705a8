"""Differentiable augmentation of the discriminator's inputs (DiffAugment, Zhao et al. 2020).

With a few thousand images or fewer, a GAN's discriminator memorises the training set within a few
hundred steps, wins outright, and the generator collapses to a texture that fools it. Augmenting
every image the discriminator sees, real and generated alike, in both the D and the G step, keeps
it from memorising without teaching the generator to make augmented images: the augmentations are
differentiable, so G's gradients pass through them. The three transforms are the paper's
"color,translation,cutout" policy, written for images in [-1, 1]; each image gets its own draw.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def color(x: torch.Tensor) -> torch.Tensor:
    """Random brightness (+-0.5), saturation (x0..2) and contrast (x0.5..1.5), per image."""
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(n, 1, 1, 1, dtype=x.dtype, device=x.device) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size in each direction, filling with zeros."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    b, y, xx = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                              torch.arange(w, device=x.device), indexing="ij")
    y = (y + dy + 1).clamp(0, h + 1)  # indices into the image padded by one zero pixel
    xx = (xx + dx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[b, y, xx].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio`` times the image's size per image, centred anywhere in it."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    b, y, xx = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(ch, device=x.device),
                              torch.arange(cw, device=x.device), indexing="ij")
    y = (y + cy - ch // 2).clamp(0, h - 1)
    xx = (xx + cx - cw // 2).clamp(0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[b, y, xx] = 0
    return x * mask.unsqueeze(1)


def diff_augment(x: torch.Tensor) -> torch.Tensor:
    """Colour, translation and cutout, in that order (the paper's policy for small datasets)."""
    return cutout(translation(color(x)))
