"""VAE-GAN (Larsen et al. 2016): a VAE whose decoder is also a GAN generator, and whose
reconstruction error is measured in a discriminator layer's features instead of in pixels.

Per step, with x a batch, x_rec its reconstruction and x_p the decoding of prior samples z ~ N(0, I):
- D learns to tell x from both x_rec and x_p (``--gan-loss``, vanilla by default);
- the encoder minimises beta * KL + L_feat, where L_feat = 0.5 * |D_l(x) - D_l(x_rec)|^2 (summed over
  the features of D's last hidden layer) is a Gaussian negative log-likelihood in that layer;
- the decoder minimises ``gamma`` * L_feat + the GAN generator loss on x_rec and x_p.
As in the paper the encoder gets no GAN gradient, and D's features are not trained by L_feat. The
default ``gamma`` (0.01) is ours, not the paper's: it balances L_feat, a sum over 8192 features at
64 px, against a GAN loss of order 1.
"""

from __future__ import annotations

import torch

from ..losses import AdversarialLoss, kl_to_standard_normal
from ..nets.vae import reparameterise
from .base import Mode, adam, build_generator, build_image_critic, clip_weights, set_requires_grad
from .vae import VAE, check_channels, split_folder, vae_spec


class VAEGAN(Mode):
    name, title, task = "vaegan", "VAE-GAN, one folder", "folder"
    reads = (VAE.reads - {"likelihood", "sigma", "learn_sigma"}) | {"net_d", "ndf", "norm_d", "gan_loss", "clip",
                                                                     "gamma"}
    notes = VAE.notes
    net_kinds = ("vae", "image_critic")
    sample_columns = ("input", "reconstruction", "generated")

    @classmethod
    def check(cls, cfg):
        super().check(cfg)
        check_channels(cfg)
    # the VAE's networks and DCGAN's discriminator and optimiser settings
    defaults = dict(net_g="conv_vae", net_d="dcgan_discriminator", norm="batch", dropout=False, z_dim=128, ngf=32,
                    batch_size=64, epochs=25, epochs_decay=0, lr=2e-4, beta1=0.5, beta2=0.999)

    def __init__(self, cfg, device="cpu", *, runtime=None, world=None):
        super().__init__(cfg, device, runtime=runtime, world=world)
        self.specs = {"G": vae_spec(cfg)}
        self.G = build_generator(cfg, self.specs["G"], self.device)
        self.D = build_image_critic(cfg, self.device)
        self.nets = {"G": self.G, "D": self.D}
        betas = (cfg.beta1, cfg.beta2)
        self.encoder_params = list(self.G.encoder.parameters())
        self.decoder_params = list(self.G.project.parameters()) + list(self.G.decoder.parameters())
        self.optimizers = {"E": adam(self.encoder_params, cfg.lr, betas), "G": adam(self.decoder_params, cfg.lr, betas),
                           "D": adam(self.D.parameters(), cfg.lr, betas)}
        self.translators = {}
        self.adversarial = AdversarialLoss(cfg.gan_loss)

    @staticmethod
    def make_dataset(cfg):
        return split_folder(cfg, flip=cfg.flip)[0]

    def train_step(self, batch):
        batch = self.to_device(batch)
        x = batch["A"]
        labels = batch["label"] if self.G.n_classes else None
        critic = lambda images: self.D(images, labels)  # noqa: E731
        with self.autocast():
            mu, logvar = self.G.encode(x, labels)
            x_rec = torch.sigmoid(self.G.decode(reparameterise(mu, logvar), labels)) * 2 - 1  # as i2i sample reads it
            x_p = torch.sigmoid(self.G.decode(torch.randn_like(mu), labels)) * 2 - 1

        set_requires_grad([self.D], True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        with self.autocast():
            loss_d, parts_d = self.adversarial.d(lambda images: self.D(images, labels.repeat(2) if labels is not None else None),
                                                 torch.cat([x, x]), torch.cat([x_rec, x_p]))
        loss_d.backward()
        self.optimizer_step("D")
        if self.cfg.gan_loss == "wgan":  # the critic's Lipschitz constraint
            clip_weights([self.D], self.cfg.clip)

        set_requires_grad([self.D], False)
        with self.autocast():
            kl = kl_to_standard_normal(mu.float(), logvar.float()).mean()
            feat = 0.5 * (self.D.features(x, labels) - self.D.features(x_rec, labels)).float().pow(2).flatten(1).sum(1).mean()
            gan = self.adversarial.g(critic, x_rec) + self.adversarial.g(critic, x_p)
        enc_grads = torch.autograd.grad(self.cfg.beta * kl + feat, self.encoder_params, retain_graph=True)
        dec_grads = torch.autograd.grad(self.cfg.gamma * feat + gan, self.decoder_params)
        for params, grads, name in ((self.encoder_params, enc_grads, "E"), (self.decoder_params, dec_grads, "G")):
            for p, g in zip(params, grads):
                p.grad = g
            self.optimizer_step(name)
        set_requires_grad([self.D], True)
        losses = {"D": loss_d.detach(), **parts_d, "KL": kl.detach(), "feature": feat.detach(), "G_GAN": gan.detach()}
        return losses, {"recon": x_rec.detach(), "prior": x_p.detach()}

    def sample_rows(self, batch, out):
        return [[batch["A"][i], out["recon"][i], out["prior"][i]] for i in range(len(batch["A"]))]
