"""PatchGAN discriminators (Isola et al. 2017): they classify overlapping patches, not whole images.

``basic`` is the 70x70 PatchGAN (3 layers); ``n_layers`` sets the depth; ``pixel`` is the 1x1
PixelGAN. Layouts match the reference's ``NLayerDiscriminator`` and ``PixelDiscriminator``.
The output is a map of logits (no sigmoid): the loss decides how to read them.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register
from .layers import conv_bias, norm_layer


class NLayerDiscriminator(nn.Module):
    def __init__(self, in_channels=3, ndf=64, n_layers=3, norm="batch"):
        super().__init__()
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                make_norm(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    def __init__(self, in_channels=3, ndf=64, norm="batch"):
        super().__init__()
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
            make_norm(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register("basic", "discriminator")
def basic(n_layers: int = 3, **kw) -> NLayerDiscriminator:
    """The 70x70 PatchGAN."""
    return NLayerDiscriminator(n_layers=3, **kw)


@register("n_layers", "discriminator")
def n_layers(n_layers: int = 3, **kw) -> NLayerDiscriminator:
    return NLayerDiscriminator(n_layers=n_layers, **kw)


@register("pixel", "discriminator")
def pixel(n_layers: int = 3, **kw) -> PixelDiscriminator:
    """1x1 PixelGAN; ``n_layers`` is accepted and ignored so every D takes the same options."""
    return PixelDiscriminator(**kw)
