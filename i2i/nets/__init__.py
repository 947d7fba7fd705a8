"""Networks, built by name from a registry (timm-style).

    from i2i.nets import create
    G = create("unet_256", in_channels=3, out_channels=3, ngf=64, norm="batch", dropout=True)

Every architecture lives in its own module and registers small builder functions with
``@register("name")``. Importing this package imports those modules, which fills the registry.
"""

from __future__ import annotations

from .registry import UnknownNetworkError, create, names, register  # noqa: F401  (the package's API)
from . import dcgan, patch_sample, patchgan, resnet, unet, vae  # noqa: F401  (fill the registry)
