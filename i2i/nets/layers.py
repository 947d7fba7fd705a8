"""Pieces shared by the architectures: the norm factory and weight initialisation.

Both follow pytorch-CycleGAN-and-pix2pix exactly, so parameter counts and state-dict keys match
its published files.
"""

from __future__ import annotations

import functools

import torch.nn as nn

NORMS = ("batch", "instance", "none")
INITS = ("normal", "xavier", "kaiming", "orthogonal")


def norm_layer(norm: str):
    """Return a constructor ``f(channels) -> nn.Module`` for ``norm``.

    instance norm has no affine parameters and no running statistics, as in the reference.
    """
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; choose from {', '.join(NORMS)}")


def conv_bias(norm: str) -> bool:
    """Whether convolutions before a norm layer carry a bias.

    The reference gives them a bias only with instance norm (batch norm has its own shift). With
    ``norm="none"`` it also leaves the bias out, an accident of how it tests the norm type; we keep
    that so its files load, at the cost of bias-free convolutions in that rare configuration.
    """
    return norm == "instance"


def init_weights(net: nn.Module, init: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialise conv/linear weights with ``init`` and batch-norm scales with N(1, gain)."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose from {', '.join(INITS)}")

    def apply(m: nn.Module):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    net.apply(apply)
    return net
