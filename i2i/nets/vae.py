"""Convolutional VAE (Kingma and Welling 2014), optionally class-conditional (CVAE, Sohn et al. 2015;
Kingma et al. 2014).

The encoder mirrors the DCGAN discriminator (strided convolutions down to 4x4) and ends in the mean
and log-variance of q(z|x); the decoder mirrors the DCGAN generator and outputs the parameters of
p(x|z) for pixel values in [0, 1]: logits (read as Gaussian means through a sigmoid, or as Bernoulli
logits). A Gaussian decoder may learn one log standard deviation per channel.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register
from .dcgan import _depth, down_stack
from .layers import norm_layer


class ConvVAE(nn.Module):
    def __init__(self, in_channels=3, image_size=64, z_dim=128, nf=32, n_classes=0, norm="batch",
                 learn_sigma=False):
        super().__init__()
        self.z_dim, self.n_classes, self.image_size = z_dim, n_classes, image_size
        make_norm, n = norm_layer(norm), _depth(image_size)
        enc, c = down_stack(in_channels + n_classes, nf, image_size, norm)
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(c * 16, 2 * z_dim))
        self.top = c
        self.project = nn.Linear(z_dim + n_classes, c * 16)
        dec: list[nn.Module] = []
        for _ in range(n - 1):
            dec += [make_norm(c), nn.ReLU(True), nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=norm == "none")]
            c //= 2
        dec += [make_norm(c), nn.ReLU(True), nn.ConvTranspose2d(c, in_channels, 4, 2, 1)]
        self.decoder = nn.Sequential(*dec)
        self.log_sigma = nn.Parameter(torch.full((in_channels,), -2.0)) if learn_sigma else None

    def _with_labels(self, x, labels):
        if not self.n_classes:
            return x
        one_hot = F.one_hot(labels, self.n_classes).to(x.dtype)
        if x.dim() == 2:
            return torch.cat([x, one_hot], 1)
        return torch.cat([x, one_hot[:, :, None, None].expand(-1, -1, *x.shape[-2:])], 1)

    def encode(self, x: torch.Tensor, labels=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x) for images in [-1, 1]."""
        mu, logvar = self.encoder(self._with_labels(x, labels)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        """Logits of p(x|z): sigmoid(logits) is the mean pixel value in [0, 1]."""
        h = self.project(self._with_labels(z, labels)).view(len(z), self.top, 4, 4)
        return self.decoder(h)

    def forward(self, x, labels=None):
        mu, logvar = self.encode(x, labels)
        return self.decode(reparameterise(mu, logvar), labels), mu, logvar


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I): a sample of q(z|x) that gradients flow through."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


@register("conv_vae", "vae")
def conv_vae(**kw) -> ConvVAE:
    return ConvVAE(**kw)
