"""Training recipes, one file each. ``create(cfg, device)`` builds the mode a config names."""

from __future__ import annotations

import importlib

from ..errors import UsageError

# mode name -> "module:Class"; a new recipe is one new file plus one line here
IMPLEMENTED = {
    "pix2pix": "pix2pix:Pix2Pix",
    "cycle": "cycle:CycleGAN",
    "dual": "dual:DualGAN",
    "gan": "gan:GAN",
    "vae": "vae:VAE",
    "vaegan": "vaegan:VAEGAN",
}


def mode_class(name: str):
    if name not in IMPLEMENTED:
        raise UsageError(f"--mode {name} is not implemented yet; available: {', '.join(IMPLEMENTED)}")
    module, cls = IMPLEMENTED[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def create(cfg, device):
    return mode_class(cfg.mode)(cfg, device)
