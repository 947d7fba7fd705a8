"""pix2pix (Isola et al. 2017): a conditional GAN for paired data.

G maps the input A to B; the PatchGAN D judges (A, B) pairs, so it checks that the output fits its
input, and an L1 term pulls G towards the target. Defaults are the paper's and the reference's:
unet_256 with batch norm and dropout, 70x70 PatchGAN, vanilla GAN loss, lambda_L1 = 100, Adam 2e-4
with betas (0.5, 0.999).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.paired import PairedDataset
from ..losses import AdversarialLoss
from .base import (TRANSLATION_OPTIONS, VALIDATION_OPTIONS, AdversarialMode, adam, augment, build_discriminator,
                   build_generator, generator_spec)


class Pix2Pix(AdversarialMode):
    name, title, task = "pix2pix", "paired", "paired"
    reads = TRANSLATION_OPTIONS | VALIDATION_OPTIONS | {"b", "lambda_l1"}
    notes = {"a": "a folder of A|B images, or of A/ and B/ folders", "b": "the B folder when A and B are separate"}
    default_metric = "L1"
    validation_metrics = ("L1", "PSNR", "SSIM")  # i2i.evaluate.evaluate_paired's, without a palette
    sample_columns = ("input", "output", "target")

    def __init__(self, cfg, device="cpu", *, runtime=None, world=None):
        super().__init__(cfg, device, runtime=runtime, world=world)
        g_spec = generator_spec(cfg, cfg.input_nc, cfg.output_nc)
        self.G = build_generator(cfg, g_spec, self.device)
        self.D = build_discriminator(cfg, cfg.input_nc + cfg.output_nc, self.device)
        self.nets = {"G": self.G, "D": self.D}
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {
            "G": adam(self.G.parameters(), cfg.lr, betas),
            "D": adam(self.D.parameters(), cfg.lr, betas),
        }
        self.discriminators = [self.D]
        self.translators = {cfg.direction: "G"}
        self.specs = {"G": g_spec}
        self.adversarial = AdversarialLoss(cfg.gan_loss)

    @staticmethod
    def make_dataset(cfg) -> PairedDataset:
        return PairedDataset(cfg.a, cfg.b, cfg.direction, cfg.input_nc, cfg.output_nc, augment(cfg), cfg.strict)

    def forward(self, batch):
        return {"fake_B": self.G(batch["A"])}

    def d_loss(self, batch, out):
        real = torch.cat([batch["A"], batch["B"]], 1)
        fake = torch.cat([batch["A"], out["fake_B"]], 1)
        return self.adversarial.d(self.D, real, fake)

    def g_loss(self, batch, out):
        gan = self.adversarial.g(self.D, torch.cat([batch["A"], out["fake_B"]], 1))
        l1 = F.l1_loss(out["fake_B"], batch["B"]) * self.cfg.lambda_l1
        return gan + l1, {"G_GAN": gan.detach(), "G_L1": l1.detach()}

    def sample_rows(self, batch, out):
        return [[batch["A"][i], out["fake_B"][i], batch["B"][i]] for i in range(len(batch["A"]))]
