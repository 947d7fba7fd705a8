"""DualGAN (Yi et al. 2017): unpaired translation with Wasserstein critics.

Two U-Net generators (dropout is their noise source) translate A to B and back; two PatchGAN
critics, with no sigmoid, score realism; each image must come back after a round trip
(``lambda_cycle * |G_B(G_A(a)) - a|``, the paper's lambda of 100 to 1000; 500 by default). The critics
take ``n_critic`` steps per generator step on the same batch.

Two recipes, picked by ``--gan-loss`` (``DualGAN.loss_presets``):
- ``wgangp`` (default): gradient penalty, Adam 1e-4 with betas (0.5, 0.9), 5 critic steps.
- ``wgan``: the paper's weight clipping to +-0.01 and RMSProp 5e-5, 4 critic steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import AdversarialLoss
from .base import adam
from .two_way import TwoWayMode


class DualGAN(TwoWayMode):
    name, title = "dual", "DualGAN, unpaired"
    reads = TwoWayMode.reads | {"optimizer"}
    # U-Nets whose dropout is the noise source, Wasserstein critics
    defaults = dict(net_g="unet_256", norm="batch", dropout=True, gan_loss="wgangp", lambda_cycle=500.0)
    loss_presets = {
        # the paper's: weight clipping, RMSProp
        "wgan": dict(optimizer="rmsprop", lr=5e-5, n_critic=4, clip=0.01),
        # the gradient penalty instead (Gulrajani et al. 2017), with its Adam settings; batch norm in a
        # critic would couple the samples whose gradients the penalty constrains, so the critics use
        # instance norm
        "wgangp": dict(optimizer="adam", lr=1e-4, beta1=0.5, beta2=0.9, n_critic=5, norm_d="instance"),
    }

    def __init__(self, cfg, device="cpu", *, runtime=None, world=None):
        super().__init__(cfg, device, runtime=runtime, world=world)
        generators, critics = self.generator_parameters(), self.discriminator_parameters()
        if cfg.optimizer == "rmsprop":
            self.optimizers = {"G": torch.optim.RMSprop(generators, lr=cfg.lr),
                               "D": torch.optim.RMSprop(critics, lr=cfg.lr)}
        else:
            betas = (cfg.beta1, cfg.beta2)
            self.optimizers = {"G": adam(generators, cfg.lr, betas), "D": adam(critics, cfg.lr, betas)}
        self.adversarial = AdversarialLoss(cfg.gan_loss)

    def d_loss(self, batch, out):
        loss_a, _ = self.adversarial.d(self.D_A, batch["B"], out["fake_B"])
        loss_b, _ = self.adversarial.d(self.D_B, batch["A"], out["fake_A"])
        return loss_a + loss_b, {"D_A": loss_a.detach(), "D_B": loss_b.detach()}

    def g_loss(self, batch, out):
        lc = self.cfg.lambda_cycle
        parts = {
            "G_A": self.adversarial.g(self.D_A, out["fake_B"]),
            "G_B": self.adversarial.g(self.D_B, out["fake_A"]),
            "rec_A": F.l1_loss(out["rec_A"], batch["A"]) * lc,
            "rec_B": F.l1_loss(out["rec_B"], batch["B"]) * lc,
        }
        return sum(parts.values()), {k: v.detach() for k, v in parts.items()}
