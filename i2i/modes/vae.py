"""VAE (Kingma and Welling 2014), beta-VAE (Higgins et al. 2017) and conditional VAE.

Maximises the ELBO, E_q[log p(x|z)] - KL(q(z|x) || N(0, I)), with the KL weighted by ``--beta``
(1: the VAE). Pixels are modelled in [0, 1]:
- ``gaussian``: 8-bit values dequantised with uniform noise, x = (k + u) / 256, under a Gaussian of
  standard deviation ``--sigma`` (or a learned one per channel). The negative ELBO then bounds the
  discrete data's code length: bits/dim = (nats/dim + ln 256) / ln 2.
- ``bernoulli``: for binary images; pixels are read as 0/1 (above/below one half).

A fixed held-out split of the images (``--holdout``, chosen by the seed) is scored in bits per
dimension at the start, after each epoch and at the end.
"""

from __future__ import annotations

import math

import torch

from ..data.folder import class_folder
from ..errors import UsageError
from ..losses import bernoulli_nll, gaussian_nll, kl_to_standard_normal
from ..nets.vae import reparameterise
from .base import Mode, adam, build_generator
from .gan import FOLDER_OPTIONS


class KeyedSubset(torch.utils.data.Dataset):
    """Part of a dataset indexed by the loop's (index, seed) keys."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, 0)
        return self.dataset[(self.indices[index], seed)]


def split_folder(cfg, flip: bool):
    """(training part, held-out part) of the run's folder, the same split for the same seed."""
    data = class_folder(cfg, flip)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed or 0)).tolist()
    n_held = int(round(len(data) * cfg.holdout))
    if len(data) - n_held < 1:
        raise UsageError(f"{cfg.a}: too few images to hold {cfg.holdout:.0%} out")
    return KeyedSubset(data, sorted(order[n_held:])), KeyedSubset(data, sorted(order[:n_held]))


def check_channels(cfg) -> None:
    if cfg.input_nc != cfg.output_nc:
        raise UsageError(f"--input-nc {cfg.input_nc} and --output-nc {cfg.output_nc}: a VAE reconstructs its input, "
                         "so they must be equal")


def vae_spec(cfg) -> dict:
    return {"name": cfg.net_g, "in_channels": cfg.output_nc, "image_size": cfg.image_size, "z_dim": cfg.z_dim,
            "nf": cfg.ngf, "n_classes": len(cfg.classes or []), "norm": cfg.norm, "learn_sigma": cfg.learn_sigma}


class VAE(Mode):
    name, title, task = "vae", "VAE, beta-VAE, one folder", "folder"
    reads = FOLDER_OPTIONS | {"input_nc", "beta", "likelihood", "sigma", "learn_sigma", "holdout"}
    notes = {"a": "a folder of images (with --conditional, one subfolder per class)"}
    net_kinds = ("vae", None)
    sample_columns = ("input", "reconstruction")
    # a convolutional VAE at DCGAN's sizes; Adam 1e-3, the usual rate for VAEs
    defaults = dict(net_g="conv_vae", norm="batch", dropout=False, z_dim=128, ngf=32, batch_size=64, epochs=25,
                    epochs_decay=0, lr=1e-3, beta1=0.9, beta2=0.999)

    @classmethod
    def check(cls, cfg):
        super().check(cfg)
        check_channels(cfg)

    def __init__(self, cfg, device="cpu", *, runtime=None, world=None):
        super().__init__(cfg, device, runtime=runtime, world=world)
        self.specs = {"G": vae_spec(cfg)}
        self.G = build_generator(cfg, self.specs["G"], self.device)
        self.nets = {"G": self.G}
        self.optimizers = {"G": adam(self.G.parameters(), cfg.lr, (cfg.beta1, cfg.beta2))}
        self.translators = {}
        self.heldout = split_folder(cfg, flip=False)[1]

    @staticmethod
    def make_dataset(cfg):
        return split_folder(cfg, flip=cfg.flip)[0]

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from 8-bit data -> the values the likelihood models (see the module doc)."""
        k = ((x + 1) * 127.5).round()
        if self.cfg.likelihood == "bernoulli":
            return (k >= 128).to(x.dtype)
        return (k + torch.rand_like(k)) / 256

    def elbo_terms(self, batch) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Per-example reconstruction NLL and KL (nats), and the outputs."""
        x, labels = batch["A"], batch.get("label")
        labels = labels if self.G.n_classes else None
        mu, logvar = (t.float() for t in self.G.encode(x, labels))  # fp32 sums, also under bf16 autocast
        logits = self.G.decode(reparameterise(mu, logvar), labels).float()
        target = self.targets(x)
        if self.cfg.likelihood == "bernoulli":
            nll = bernoulli_nll(target, logits)
        else:
            log_sigma = self.G.log_sigma.view(1, -1, 1, 1) if self.G.log_sigma is not None else math.log(self.cfg.sigma)
            nll = gaussian_nll(target, torch.sigmoid(logits), log_sigma)
        return nll, kl_to_standard_normal(mu, logvar), {"recon": torch.sigmoid(logits) * 2 - 1}

    def bits_per_dim(self, nats_per_example: torch.Tensor, dims: int) -> torch.Tensor:
        bits = nats_per_example / dims / math.log(2)
        return bits + 8 if self.cfg.likelihood == "gaussian" else bits  # + log2(256) for the dequantisation

    def train_step(self, batch):
        batch = self.to_device(batch)
        with self.autocast():
            nll, kl, out = self.elbo_terms(batch)
            loss = (nll + self.cfg.beta * kl).mean()
        self.optimizers["G"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer_step("G")
        dims = batch["A"][0].numel()
        elbo = -(nll + kl).detach()
        return {"loss": loss.detach(), "ELBO": elbo.mean(), "recon_nll": nll.detach().mean(), "KL": kl.detach().mean(),
                "bits_per_dim": self.bits_per_dim(-elbo, dims).mean()}, {k: v.detach() for k, v in out.items()}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Negative ELBO of the held-out images in bits per dimension (beta = 1, one z sample each)."""
        if len(self.heldout) == 0:
            return {}
        self.G.eval()
        rng_state = torch.get_rng_state()
        torch.manual_seed(0)  # the same noise every time: scores comparable across epochs
        total, count = 0.0, 0
        loader = torch.utils.data.DataLoader(self.heldout, batch_size=64, sampler=[(i, 0) for i in range(len(self.heldout))])
        for batch in loader:
            batch = self.to_device(batch)
            nll, kl, _ = self.elbo_terms(batch)
            total += self.bits_per_dim(nll + kl, batch["A"][0].numel()).sum().item()
            count += len(nll)
        torch.set_rng_state(rng_state)
        self.G.train()
        return {"val_bits_per_dim": total / count}

    def sample_rows(self, batch, out):
        return [[batch["A"][i], out["recon"][i]] for i in range(len(batch["A"]))]
