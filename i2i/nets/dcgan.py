"""DCGAN generator and discriminator (Radford et al. 2016), optionally class-conditional.

Strided (transposed) convolutions instead of pooling, batch norm, ReLU in G and LeakyReLU(0.2) in D,
tanh output. Both work at 32, 64 or 128 pixels: G grows a 4x4 map from the latent vector by
doubling, D shrinks the image to 4x4 and scores it with one 4x4 convolution (a logit, no sigmoid).

With ``n_classes > 0`` both nets receive the label (cGAN, Mirza and Osindero 2014): G as a one-hot
vector appended to z, D as one-hot planes appended to the image's channels.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register
from .layers import norm_layer

IMAGE_SIZES = (32, 64, 128)


def _depth(image_size: int) -> int:
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image size {image_size} is not one of {IMAGE_SIZES}")
    return image_size.bit_length() - 3  # stride-2 steps between 4x4 and the image


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim=100, out_channels=3, image_size=64, ngf=64, n_classes=0, norm="batch"):
        super().__init__()
        self.z_dim, self.n_classes, self.image_size = z_dim, n_classes, image_size
        make_norm, n = norm_layer(norm), _depth(image_size)
        c = ngf * 2 ** (n - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim + n_classes, c, 4, 1, 0, bias=False), make_norm(c), nn.ReLU(True)]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), make_norm(c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ConvTranspose2d(c, out_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes:
            z = torch.cat([z, F.one_hot(labels, self.n_classes).to(z.dtype)], 1)
        return self.model(z.view(z.shape[0], -1, 1, 1))


def down_stack(in_channels: int, nf: int, image_size: int, norm: str) -> tuple[list[nn.Module], int]:
    """Strided 4x4 convolutions from the image down to 4x4 maps (no norm on the first), and the
    number of channels they end with: DCGAN's discriminator body, and the VAE's encoder."""
    make_norm = norm_layer(norm)
    layers: list[nn.Module] = [nn.Conv2d(in_channels, nf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    c = nf
    for _ in range(_depth(image_size) - 1):
        layers += [nn.Conv2d(c, c * 2, 4, 2, 1, bias=norm == "none"), make_norm(c * 2), nn.LeakyReLU(0.2, True)]
        c *= 2
    return layers, c


class DCGANDiscriminator(nn.Module):
    def __init__(self, in_channels=3, image_size=64, ndf=64, n_classes=0, norm="batch"):
        super().__init__()
        self.n_classes = n_classes
        layers, c = down_stack(in_channels + n_classes, ndf, image_size, norm)
        self.model = nn.Sequential(*layers, nn.Conv2d(c, 1, 4, 1, 0))

    def features(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The last hidden layer's activations (4x4 maps): where VAE-GAN measures reconstructions."""
        if self.n_classes:
            planes = F.one_hot(labels, self.n_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, planes.expand(-1, -1, *x.shape[-2:])], 1)
        return self.model[:-1](x)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.model[-1](self.features(x, labels)).flatten(1)


@register("dcgan_generator", "latent_generator")
def dcgan_generator(**kw) -> DCGANGenerator:
    return DCGANGenerator(**kw)


@register("dcgan_discriminator", "image_critic")
def dcgan_discriminator(**kw) -> DCGANDiscriminator:
    return DCGANDiscriminator(**kw)
