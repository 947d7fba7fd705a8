"""ResNet generator (Johnson et al. 2016) as used by CycleGAN.

Layout is index-for-index the reference's ``ResnetGenerator``: ``model.1.weight`` is the first 7x7
convolution and ``model.26`` the last, so its ``latest_net_G.pth`` files load with ``strict=True``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register
from .layers import conv_bias, norm_layer

PADDINGS = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d}


class ResnetBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection."""

    def __init__(self, dim: int, norm: str, dropout: bool, padding: str = "reflect"):
        super().__init__()
        make_norm, bias = norm_layer(norm), conv_bias(norm)

        def conv():
            if padding == "zero":
                return [nn.Conv2d(dim, dim, 3, padding=1, bias=bias)]
            return [PADDINGS[padding](1), nn.Conv2d(dim, dim, 3, padding=0, bias=bias)]

        layers = conv() + [make_norm(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += conv() + [make_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """7x7 conv, two stride-2 downsamplings, ``n_blocks`` residual blocks, two upsamplings, 7x7 conv.

    Height and width must be multiples of 4 and at least 8: the blocks' reflection padding of 1
    needs 2 pixels at a quarter of the input size (:class:`~i2i.translator.Translator` pads smaller
    images up to that).
    """

    size_multiple = 4
    min_size = 8

    def __init__(self, in_channels=3, out_channels=3, ngf=64, norm="instance", dropout=False,
                 n_blocks=9, padding="reflect"):
        super().__init__()
        if padding not in (*PADDINGS, "zero"):
            raise ValueError(f"unknown padding {padding!r}")
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, padding=0, bias=bias),
            make_norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):  # downsample
            c = ngf * 2**i
            layers += [nn.Conv2d(c, c * 2, 3, stride=2, padding=1, bias=bias), make_norm(c * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, dropout, padding) for _ in range(n_blocks)]
        for i in range(2):  # upsample
            c = ngf * 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                make_norm(c // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@register("resnet_9blocks", "generator")
def resnet_9blocks(**kw) -> ResnetGenerator:
    return ResnetGenerator(n_blocks=9, **kw)


@register("resnet_6blocks", "generator")
def resnet_6blocks(**kw) -> ResnetGenerator:
    return ResnetGenerator(n_blocks=6, **kw)


@register("resnet", "generator")
def resnet(n_blocks: int = 9, **kw) -> ResnetGenerator:
    """ResNet generator with any number of blocks: ``create("resnet", n_blocks=4)``."""
    return ResnetGenerator(n_blocks=n_blocks, **kw)
