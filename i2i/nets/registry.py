"""The network registry: names -> builders, filled by ``@register`` in each architecture's module
(imported by :mod:`i2i.nets`, which re-exports these functions)."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ..errors import UsageError

_REGISTRY: dict[str, tuple[str, Callable[..., nn.Module]]] = {}


def register(name: str, kind: str):
    """Register a builder under ``name``. ``kind``: "generator" (image to image), "discriminator"
    (PatchGAN-style, for the translation modes), "latent_generator" (noise to image), "image_critic"
    (one score per image), "vae" (encoder and decoder) or "feature_head" (CUT's patch projection)."""

    def wrap(fn):
        if name in _REGISTRY:
            raise ValueError(f"network {name!r} registered twice")
        _REGISTRY[name] = (kind, fn)
        return fn

    return wrap


def names(kind: str | None = None) -> list[str]:
    """Registered network names, optionally only one kind."""
    return sorted(n for n, (k, _) in _REGISTRY.items() if kind is None or k == kind)


class UnknownNetworkError(UsageError, KeyError):
    """A network name that is not registered (a usage error, and a KeyError for older callers)."""

    __str__ = Exception.__str__  # KeyError's would quote the message


def create(name: str, init: str | None = "normal", init_gain: float = 0.02, **kwargs) -> nn.Module:
    """Build a registered network and initialise its weights (``init=None`` keeps PyTorch's).

    Built on the current default device: inside ``with torch.device("meta"):`` no memory is
    allocated, which is how weight files are checked before the real network is built (see
    :func:`i2i.runs.check_fit`). Raises :class:`UnknownNetworkError` for a name that is not
    registered, TypeError or ValueError for arguments the builder refuses.
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise UnknownNetworkError(f"unknown network {shown}; choose from {', '.join(names())}")
    net = _REGISTRY[name][1](**kwargs)
    if init is not None:
        from .layers import init_weights

        init_weights(net, init, init_gain)
    return net
