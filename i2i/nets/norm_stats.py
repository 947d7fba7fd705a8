"""Whole-image normalisation for tiled inference: record the statistics that a generator's
self-normalising layers compute on one image, and make those layers use them on another.

Instance norm (and batch norm in training mode, as the reference's test script runs it without
``--eval``) normalises each channel by the mean and variance of *its own input*: on a tile that is
the tile's statistics, not the image's, so tiles translated one by one change colour from tile to
tile and leave seams. Tiled translation (:mod:`i2i.tiling`) therefore first runs the generator once
on a thumbnail of the whole image, recording each such layer's per-channel mean and variance
(:func:`record_norm_stats`), then translates every tile with those statistics held fixed
(:func:`fixed_norm_stats`). This is the "thumbnail instance normalization" of URST (Chen et al.,
"Towards Ultra-Resolution Neural Style Transfer via Thumbnail Instance Normalization", AAAI 2022).
``tools/bench_tiles.py`` measures it against the exact whole-image output. Batch norm in eval mode
uses its running statistics, which do not depend on the input, and is left alone.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn as nn

NormStats = dict[str, tuple[torch.Tensor, torch.Tensor]]  # layer name -> (mean, var), each (C,) float32


def self_normalising(net: nn.Module) -> dict[str, nn.Module]:
    """The layers of ``net`` that normalise by their own input's statistics, by name: instance norms
    without running statistics, and batch norms in training mode (or without running statistics)."""
    found = {}
    for name, m in net.named_modules():
        if isinstance(m, nn.InstanceNorm2d) and not (m.track_running_stats and not m.training):
            found[name] = m
        elif isinstance(m, nn.BatchNorm2d) and (m.training or not m.track_running_stats):
            found[name] = m
    return found


def channel_sums(x: torch.Tensor) -> torch.Tensor:
    """3 x C float64 on the CPU: the count of values per channel of an N x C x H x W tensor (over N,
    H, W), their sum and the sum of their squares, a few channels at a time so the float64 copy stays
    small. Sums of regions add up to the sums of their union (:func:`moments`)."""
    out = torch.zeros(3, x.shape[1], dtype=torch.float64)
    out[0] = x.shape[0] * x.shape[2] * x.shape[3]
    for c0, chunk in zip(range(0, x.shape[1], 16), x.split(16, dim=1)):
        chunk = chunk.double()
        out[1, c0: c0 + chunk.shape[1]] = chunk.sum(dim=(0, 2, 3)).cpu()
        out[2, c0: c0 + chunk.shape[1]] = (chunk * chunk).sum(dim=(0, 2, 3)).cpu()
    return out


def moments(sums: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance (float32) from :func:`channel_sums`."""
    mean = sums[1] / sums[0]
    return mean.float(), (sums[2] / sums[0] - mean * mean).clamp_min(0).float()


@contextlib.contextmanager
def record_norm_stats(net: nn.Module) -> Iterator[NormStats]:
    """Within the block, every forward pass of ``net`` records the per-channel mean and variance of
    each :func:`self_normalising` layer's input into the dict yielded (float32, on the CPU; the
    last pass wins). For instance norm the first image of a batch counts."""
    stats: NormStats = {}
    handles = []
    for name, m in self_normalising(net).items():
        def hook(module, inputs, name=name):
            x = inputs[0] if isinstance(module, nn.BatchNorm2d) else inputs[0][:1]  # instance norm: the first image's
            stats[name] = moments(channel_sums(x))
        handles.append(m.register_forward_pre_hook(hook))
    try:
        yield stats
    finally:
        for h in handles:
            h.remove()


def _fixed_forward(m: nn.Module, scale: torch.Tensor, shift: torch.Tensor):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(shift.to(x.dtype), x, scale.to(x.dtype))
    return forward


@contextlib.contextmanager
def fixed_norm_stats(net: nn.Module, stats: NormStats) -> Iterator[None]:
    """Within the block, each :func:`self_normalising` layer of ``net`` normalises with the mean and
    variance in ``stats`` (from :func:`record_norm_stats`) instead of its input's:
    ``(x - mean) / sqrt(var + eps) * weight + bias``, per channel, in the input's dtype. The layers
    are restored on exit. Raises ``KeyError`` naming a layer that ``stats`` lacks."""
    layers = self_normalising(net)
    missing = sorted(set(layers) - set(stats))
    if missing:
        raise KeyError(f"no statistics for the layer(s) {', '.join(missing)}")
    patched = []
    try:
        for name, m in layers.items():
            mean, var = stats[name]
            scale = torch.rsqrt(var.double() + m.eps)
            shift = -mean.double() * scale
            if m.affine:
                scale, shift = scale * m.weight.double().cpu(), shift * m.weight.double().cpu() + m.bias.double().cpu()
            device = next((p.device for p in m.parameters()), None) or next(
                (p.device for p in net.parameters()), torch.device("cpu"))
            scale, shift = (t.float().to(device).view(1, -1, 1, 1) for t in (scale, shift))
            m.forward = _fixed_forward(m, scale, shift)
            patched.append(m)
        yield
    finally:
        for m in patched:
            del m.forward


