"""U-Net generator (Ronneberger et al. 2015) as used by pix2pix.

Built recursively from the innermost block outwards, exactly like the reference's
``UnetGenerator``, so state-dict keys nest the same way (``model.model.1.model.1.weight`` ...).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register
from .layers import conv_bias, norm_layer


class UnetBlock(nn.Module):
    """One level: downsample, the inner levels, upsample; the input is concatenated to the output
    (the skip connection), except at the outermost level, which returns the image."""

    def __init__(self, outer: int, inner: int, in_channels: int | None = None, submodule=None,
                 outermost=False, innermost=False, norm="batch", dropout=False):
        super().__init__()
        self.outermost = outermost
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        in_channels = outer if in_channels is None else in_channels
        down = nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=bias)
        if outermost:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1)
            layers = [down, submodule, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, make_norm(outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, make_norm(inner), submodule,
                      nn.ReLU(True), up, make_norm(outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with ``num_downs`` halvings: a 2**num_downs image reaches 1x1 at the bottom.

    Height and width must be multiples of 2**num_downs (``size_multiple``, also the smallest size it
    takes). Dropout, when on, sits in the
    ``num_downs - 5`` innermost non-bottom levels, as in the reference.
    """

    def __init__(self, in_channels=3, out_channels=3, num_downs=8, ngf=64, norm="batch", dropout=False):
        super().__init__()
        if num_downs < 5:
            raise ValueError("a U-Net needs num_downs >= 5")
        self.size_multiple = 2**num_downs
        block = UnetBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout)
        block = UnetBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetBlock(out_channels, ngf, in_channels=in_channels, submodule=block,
                               outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _unet_builder(size: int):
    num_downs = size.bit_length() - 1

    def build(**kw) -> UnetGenerator:
        return UnetGenerator(num_downs=num_downs, **kw)

    build.__doc__ = f"U-Net for {size}x{size} crops ({num_downs} downsamplings)."
    return build


for _size in (32, 64, 128, 256, 512):
    register(f"unet_{_size}", "generator")(_unet_builder(_size))


@register("unet", "generator")
def unet(num_downs: int = 8, **kw) -> UnetGenerator:
    """U-Net of any depth: ``create("unet", num_downs=6)``."""
    return UnetGenerator(num_downs=num_downs, **kw)
