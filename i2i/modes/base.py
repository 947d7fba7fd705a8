"""What every recipe shares: the adversarial training step, written once, and small builders.

A step runs the generators once, then updates the discriminators on real vs. (detached) fake
``n_critic`` times and the generators once with the discriminators frozen. pix2pix updates D first,
CycleGAN G first (as the reference does); a recipe says which with ``d_first``.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from .. import nets
from ..config import generator_multiple
from ..data.transforms import Augment
from ..distributed import World


def adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fused kernel: the same update as the reference's Adam, about 10x faster on CPU
    (0.03 s against 0.28 s per step for unet_256's 54M parameters on this project's machines)."""
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):  # a device or dtype without a fused kernel
        return torch.optim.Adam(params, lr=lr, betas=betas)


def set_requires_grad(nets, flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def generator_spec(cfg, in_channels: int, out_channels: int) -> dict:
    """``nets.create`` arguments for a generator of this config (also stored with its weights)."""
    return {"name": cfg.net_g, "in_channels": in_channels, "out_channels": out_channels,
            "ngf": cfg.ngf, "norm": cfg.norm, "dropout": cfg.dropout}


def build_generator(cfg, spec: dict, device) -> nn.Module:
    return nets.create(**spec, init=cfg.init, init_gain=cfg.init_gain).to(device)


def build_discriminator(cfg, in_channels: int, device) -> nn.Module:
    return nets.create(cfg.net_d, in_channels=in_channels, ndf=cfg.ndf, n_layers=cfg.n_layers_d,
                       norm=cfg.norm_d or cfg.norm, init=cfg.init, init_gain=cfg.init_gain).to(device)


def build_image_critic(cfg, device) -> nn.Module:
    """The one-score-per-image discriminator of the GAN and VAE-GAN modes (label-conditional when the
    data has classes)."""
    return nets.create(cfg.net_d, in_channels=cfg.output_nc, image_size=cfg.image_size, ndf=cfg.ndf,
                       n_classes=len(cfg.classes or []), norm=cfg.norm_d or cfg.norm, init=cfg.init,
                       init_gain=cfg.init_gain).to(device)


def augment(cfg) -> Augment:
    return Augment(cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip, generator_multiple(cfg.net_g))


class Mode:
    """What the training loop needs of any recipe.

    Subclasses set ``nets`` (name -> module, all saved in checkpoints), ``optimizers``, ``translators``
    (direction -> generator name, what ``i2i translate`` may use) and ``specs`` (name of each net that
    commands load -> ``nets.create`` arguments), and implement ``make_dataset``, ``train_step`` and
    ``sample_rows``.
    """

    nets: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    translators: dict[str, str]
    specs: dict[str, dict]

    def __init__(self, cfg, device):
        self.cfg, self.device = cfg, torch.device(device)
        # context for forward passes and losses (backward runs outside it); the training loop sets it
        # to bf16 autocast on the fast path (see i2i/runtime.py)
        self.autocast = contextlib.nullcontext
        # the processes training this model together (see i2i/distributed.py); the training loop sets it
        self.world = World()

    @staticmethod
    def make_dataset(cfg) -> torch.utils.data.Dataset:
        raise NotImplementedError

    def train_step(self, batch: dict) -> tuple[dict, dict]:
        """One optimisation step; returns (losses as detached tensors, outputs for sample_rows)."""
        raise NotImplementedError

    def sample_rows(self, batch: dict, out: dict) -> list[list[torch.Tensor]]:
        """Images for the periodic sample grid: one row per example, e.g. input | output | target."""
        raise NotImplementedError

    def optimizer_step(self, name: str) -> None:
        """Update with optimiser ``name``: its gradients are first averaged over the ranks of a
        distributed run, so every rank applies the same update."""
        opt = self.optimizers[name]
        self.world.average_gradients(p for group in opt.param_groups for p in group["params"])
        opt.step()

    def evaluate(self) -> dict[str, float]:
        """Metrics on held-out data, logged at the start, after every epoch and at the end ({}: none)."""
        return {}

    def extra_state(self) -> dict:
        """Training state beyond nets and optimizers (image pools), saved for resume."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def train(self, flag: bool = True) -> None:
        for net in self.nets.values():
            net.train(flag)


class AdversarialMode(Mode):
    """Base class of GAN recipes: ``train_step`` is the shared adversarial step.

    Besides what :class:`Mode` asks, subclasses set ``optimizers`` "G" and "D" and ``discriminators``
    (the modules frozen during the G step), and implement ``forward``, ``d_loss`` and ``g_loss``.
    """

    d_first = True  # update D before G (pix2pix) or after (CycleGAN)
    n_critic = 1  # D updates per G update
    discriminators: list[nn.Module]

    def forward(self, batch: dict) -> dict:
        """Generator outputs for a batch (kept for both updates)."""
        raise NotImplementedError

    def d_loss(self, batch: dict, out: dict) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def g_loss(self, batch: dict, out: dict) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def after_d_step(self) -> None:
        """Called after every discriminator update (DualGAN clips the critics' weights here)."""

    def _update_d(self, batch, out) -> dict:
        set_requires_grad(self.discriminators, True)
        for _ in range(self.n_critic):
            self.optimizers["D"].zero_grad(set_to_none=True)
            with self.autocast():
                loss, parts = self.d_loss(batch, out)
            loss.backward()
            self.optimizer_step("D")
            self.after_d_step()
        return {"D": loss.detach(), **parts}

    def _update_g(self, batch, out) -> dict:
        set_requires_grad(self.discriminators, False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        with self.autocast():
            loss, parts = self.g_loss(batch, out)
        loss.backward()
        self.optimizer_step("G")
        set_requires_grad(self.discriminators, True)
        return {"G": loss.detach(), **parts}

    def train_step(self, batch: dict) -> tuple[dict, dict]:
        """One training step; returns (losses as detached tensors, generator outputs)."""
        batch = self.to_device(batch)
        with self.autocast():
            out = self.forward(batch)
        if self.d_first:
            losses = {**self._update_d(batch, out), **self._update_g(batch, out)}
        else:
            losses = {**self._update_g(batch, out), **self._update_d(batch, out)}
        return losses, {k: v.detach() for k, v in out.items()}
