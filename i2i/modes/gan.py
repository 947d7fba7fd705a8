"""GAN (Goodfellow et al. 2014) with DCGAN networks (Radford et al. 2016), optionally conditional
(cGAN, Mirza and Osindero 2014): learn to make images like those in one folder from noise.

The same adversarial step and losses as the translation modes: D on real vs. generated images, then
G with D frozen. ``--gan-loss`` picks the objective: vanilla (non-saturating G, the default),
minimax (the original saturating G), lsgan, wgangp (with its own optimiser settings and 5 critic
steps), hinge. ``--diff-augment`` augments what D sees, for small folders (see
i2i/diff_augment.py). ``i2i sample`` and ``i2i interpolate`` use the trained generator.
"""

from __future__ import annotations

import torch

from ..data.folder import ImageFolder, class_folder
from ..diff_augment import diff_augment
from ..losses import AdversarialLoss
from .base import COMMON_OPTIONS, AdversarialMode, adam, build_generator, build_image_critic

# what the recipes that learn one folder read (gan, vae, vaegan)
FOLDER_OPTIONS = COMMON_OPTIONS | {"z_dim", "image_size", "conditional"}


def generator_spec(cfg) -> dict:
    return {"name": cfg.net_g, "z_dim": cfg.z_dim, "out_channels": cfg.output_nc, "image_size": cfg.image_size,
            "ngf": cfg.ngf, "n_classes": len(cfg.classes or []), "norm": cfg.norm}


class GAN(AdversarialMode):
    name, title, task = "gan", "DCGAN, one folder", "folder"
    reads = FOLDER_OPTIONS | {"net_d", "ndf", "norm_d", "gan_loss", "n_critic", "clip", "diff_augment"}
    notes = {"a": "a folder of images (with --conditional, one subfolder per class)"}
    net_kinds = ("latent_generator", "image_critic")
    sample_columns = ("real", "generated")
    # DCGAN (Radford et al. 2016): its batch size of 128 halved for CPUs, 25 epochs at a constant rate
    defaults = dict(net_g="dcgan_generator", net_d="dcgan_discriminator", norm="batch", dropout=False,
                    batch_size=64, epochs=25, epochs_decay=0)
    # WGAN-GP's own settings for image GANs, with a critic free of batch norm
    loss_presets = {"wgangp": dict(lr=1e-4, beta1=0.0, beta2=0.9, n_critic=5, norm_d="none")}

    def __init__(self, cfg, device="cpu", *, runtime=None, world=None):
        super().__init__(cfg, device, runtime=runtime, world=world)
        self.specs = {"G": generator_spec(cfg)}
        self.G = build_generator(cfg, self.specs["G"], self.device)
        self.D = build_image_critic(cfg, self.device)
        self.nets = {"G": self.G, "D": self.D}
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {"G": adam(self.G.parameters(), cfg.lr, betas), "D": adam(self.D.parameters(), cfg.lr, betas)}
        self.discriminators = [self.D]
        self.translators = {}  # makes images from noise: nothing to translate
        self.adversarial = AdversarialLoss(cfg.gan_loss)

    @staticmethod
    def make_dataset(cfg) -> ImageFolder:
        return class_folder(cfg, cfg.flip)

    def _critic(self, labels):
        if self.cfg.diff_augment:
            return lambda x: self.D(diff_augment(x), labels)
        return lambda x: self.D(x, labels)

    def forward(self, batch):
        z = torch.randn(len(batch["A"]), self.cfg.z_dim, device=self.device)
        return {"fake": self.G(z, batch["label"])}

    def d_loss(self, batch, out):
        return self.adversarial.d(self._critic(batch["label"]), batch["A"], out["fake"])

    def g_loss(self, batch, out):
        loss = self.adversarial.g(self._critic(batch["label"]), out["fake"])
        return loss, {}

    def sample_rows(self, batch, out):
        return [[batch["A"][i], out["fake"][i]] for i in range(len(batch["A"]))]
