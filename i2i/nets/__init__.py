"""Networks, built by name from a registry (timm-style).

    from i2i.nets import create
    G = create("unet_256", in_channels=3, out_channels=3, ngf=64, norm="batch", dropout=True)

Every architecture lives in its own module and registers small builder functions with
``@register("name")``. Importing this package imports those modules, which fills the registry.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

_REGISTRY: dict[str, tuple[str, Callable[..., nn.Module]]] = {}


def register(name: str, kind: str):
    """Register a builder under ``name``. ``kind``: "generator" (image to image), "discriminator"
    (PatchGAN-style, for the translation modes), "latent_generator" (noise to image), "image_critic"
    (one score per image) or "vae" (encoder and decoder)."""

    def wrap(fn):
        if name in _REGISTRY:
            raise ValueError(f"network {name!r} registered twice")
        _REGISTRY[name] = (kind, fn)
        return fn

    return wrap


def names(kind: str | None = None) -> list[str]:
    """Registered network names, optionally only one kind."""
    return sorted(n for n, (k, _) in _REGISTRY.items() if kind is None or k == kind)


def create(name: str, init: str | None = "normal", init_gain: float = 0.02, **kwargs) -> nn.Module:
    """Build a registered network and initialise its weights (``init=None`` keeps PyTorch's)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown network {name!r}; choose from {', '.join(names())}")
    net = _REGISTRY[name][1](**kwargs)
    if init is not None:
        from .layers import init_weights

        init_weights(net, init, init_gain)
    return net


from . import dcgan, patchgan, resnet, unet, vae  # noqa: E402,F401  (fill the registry)
