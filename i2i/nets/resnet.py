"""ResNet generator (Johnson et al. 2016) as used by CycleGAN.

Layout is index-for-index the reference's ``ResnetGenerator``: ``model.1.weight`` is the first 7x7
convolution and ``model.26`` the last, so its ``latest_net_G.pth`` files load with ``strict=True``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .antialias import Downsample, Upsample
from .layers import conv_bias, norm_layer
from .registry import register
from .taps import FeatureTaps

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


class ResnetGenerator(FeatureTaps, nn.Module):
    """7x7 conv, two stride-2 downsamplings, ``n_blocks`` residual blocks, two upsamplings, 7x7 conv.

    Height and width must be multiples of 4 and at least 8: the blocks' reflection padding of 1
    needs 2 pixels at a quarter of the input size (:class:`~i2i.translator.Translator` pads smaller
    images up to that).

    ``antialias`` and ``antialias_up`` give CUT's generator (Park et al., ECCV 2020; the authors'
    ``--no_antialias``/``--no_antialias_up`` off): each downsampling becomes a stride-1 3x3 conv, norm,
    ReLU and a blurred :class:`~i2i.nets.antialias.Downsample`, each upsampling an
    :class:`~i2i.nets.antialias.Upsample`, stride-1 3x3 conv, norm and ReLU, index for index as in the
    authors' ``ResnetGenerator``. That adds one layer per resampling (``model`` has 32 layers instead
    of 28 for 9 blocks with both) and fixed ``filt`` buffers, but no parameters. With both off the network is the
    reference's. :meth:`features` (from :class:`~i2i.nets.taps.FeatureTaps`) gives intermediate
    layers' outputs, e.g. CUT's ``[0, 4, 8, 12, 16]``.
    """

    size_multiple = 4
    min_size = 8

    def __init__(self, in_channels=3, out_channels=3, ngf=64, norm="instance", dropout=False,
                 n_blocks=9, padding="reflect", antialias: bool = False, antialias_up: bool = False):
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
            if antialias:
                layers += [nn.Conv2d(c, c * 2, 3, stride=1, padding=1, bias=bias), make_norm(c * 2), nn.ReLU(True),
                           Downsample(c * 2)]
            else:
                layers += [nn.Conv2d(c, c * 2, 3, stride=2, padding=1, bias=bias), make_norm(c * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, dropout, padding) for _ in range(n_blocks)]
        for i in range(2):  # upsample
            c = ngf * 2 ** (2 - i)
            if antialias_up:
                layers += [Upsample(c), nn.Conv2d(c, c // 2, 3, stride=1, padding=1, bias=bias), make_norm(c // 2),
                           nn.ReLU(True)]
                continue
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


@register("resnet_9blocks_antialias", "generator")
def resnet_9blocks_antialias(**kw) -> ResnetGenerator:
    """CUT's default generator: 9 blocks, blurred down- and upsampling."""
    return ResnetGenerator(n_blocks=9, antialias=True, antialias_up=True, **kw)


@register("resnet", "generator")
def resnet(n_blocks: int = 9, antialias: bool = False, antialias_up: bool = False, **kw) -> ResnetGenerator:
    """ResNet generator with any number of blocks: ``create("resnet", n_blocks=4)``; ``antialias`` and
    ``antialias_up`` as in CUT (``create("resnet", antialias=True, antialias_up=True)``)."""
    return ResnetGenerator(n_blocks=n_blocks, antialias=antialias, antialias_up=antialias_up, **kw)
