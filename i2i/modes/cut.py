"""CUT and FastCUT (Park et al., ECCV 2020, "Contrastive Learning for Unpaired Image-to-Image
Translation"): unpaired translation with one generator and no inverse network.

Instead of a round trip, each patch of the output must be recognisable as coming from the same
place of the input: the generator's encoder features of the input and of the output are sampled at
``--num-patches`` positions in each of ``--nce-layers``, projected by a small MLP head F
(PatchSampleF), and the PatchNCE loss (:func:`i2i.losses.patch_nce`, temperature ``--nce-t``) asks
each output patch to pick its own input patch among the other patches of the image. An LSGAN
discriminator (no image pool) judges realism. The authors' order: D is updated first, then G and F
together (one Adam over both: per-parameter updates, so the same as the authors' two).

- ``cut``: lambda_NCE 1, and the identity PatchNCE loss on domain B images (G(b) should keep b's
  patches), averaged with the main one; 200 + 200 epochs.
- ``fastcut``: lambda_NCE 10, no identity loss, flip-equivariance (half the steps flip the input
  and the output's features back); 150 + 50 epochs.

Defaults are the authors' code's: the antialiased ResNet generator (blurred down- and upsampling,
``resnet_9blocks_antialias``; the reference's plain ``resnet_9blocks`` works too), instance norm in G
and D, Xavier init, no dropout, Adam 2e-4 with betas (0.5, 0.999).
"""

from __future__ import annotations

import dataclasses
import functools
import re

import torch

from .. import nets
from ..errors import UsageError
from ..losses import AdversarialLoss, patch_nce
from .base import AdversarialMode, adam, augment, build_discriminator, build_generator, generator_spec
from .two_way import UNPAIRED_OPTIONS, unpaired_dataset

CUT_OPTIONS = UNPAIRED_OPTIONS | {"lambda_nce", "nce_idt", "nce_layers", "num_patches", "nce_t",
                                  "flip_equivariance"}


def nce_layers(text: str) -> list[int]:
    """``"0,4,8,12,16"`` -> [0, 4, 8, 12, 16]; :class:`UsageError` naming ``--nce-layers`` otherwise."""
    layers = [int(part) for part in text.split(",")] if re.fullmatch(r"[0-9]+(,[0-9]+)*", str(text)) else []
    if not layers or len(set(layers)) != len(layers):
        raise UsageError(f"--nce-layers {text!r}: give distinct layer numbers (0 or more) separated by commas, "
                         "such as 0,4,8,12,16")
    return layers


@functools.lru_cache(maxsize=None)
def _has_taps(name: str) -> bool:
    """Whether registered generator ``name`` gives its intermediate features (see nets/taps.py);
    asked for every generator at each check, the preflight's candidate fixes included."""
    with torch.device("meta"):
        return hasattr(nets.create(name, init=None, ngf=1), "features")


class CUT(AdversarialMode):
    name, title, task = "cut", "contrastive unpaired translation", "unpaired"
    reads = CUT_OPTIONS
    notes = {"a": "the domain A folder", "b": "the domain B folder"}
    sample_columns = ("real A", "translated", "real B")
    defaults = dict(net_g="resnet_9blocks_antialias", norm="instance", dropout=False, gan_loss="lsgan",
                    init="xavier", lambda_nce=1.0, nce_idt=True, flip_equivariance=False, epochs=200,
                    epochs_decay=200)

    @classmethod
    def check(cls, cfg):
        tapped = [n for n in nets.names("generator") if _has_taps(n)]
        if cfg.net_g not in tapped:  # before the base's checks, which would advise on an unusable generator
            why = "has no feature taps" if cfg.net_g in nets.names("generator") else "is not a registered generator"
            raise UsageError(f"--net-g {cfg.net_g} {why}, and the PatchNCE loss of --mode {cls.name} reads a "
                             f"generator's features; choose one of {', '.join(tapped)}")
        if cfg.input_nc != cfg.output_nc:
            raise UsageError(f"--input-nc {cfg.input_nc} and --output-nc {cfg.output_nc}: the PatchNCE loss runs the "
                             f"generator on its own output, so --mode {cls.name} needs them equal")
        super().check(cfg)
        layers = nce_layers(cfg.nce_layers)
        with torch.device("meta"):  # the generator's layout, without memory
            g = nets.create(**generator_spec(cfg, cfg.input_nc, cfg.output_nc), init=None)
        n = len(g.model)
        if max(layers) >= n:
            raise UsageError(f"--nce-layers {cfg.nce_layers}: --net-g {cfg.net_g} has layers 0 to {n - 1}")

    def __init__(self, cfg, device="cpu", *, runtime=None, world=None):
        super().__init__(cfg, device, runtime=runtime, world=world)
        self.specs = {"G": generator_spec(cfg, cfg.input_nc, cfg.output_nc)}
        self.G = build_generator(cfg, self.specs["G"], self.device)
        self.D = build_discriminator(cfg, cfg.output_nc, self.device)
        self.layers = nce_layers(cfg.nce_layers)
        self.F = nets.create("mlp_sample", in_channels=self.G.feature_channels(self.layers), init=cfg.init,
                             init_gain=cfg.init_gain).to(self.device)
        self.nets = {"G": self.G, "D": self.D, "F": self.F}
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {"G": adam([*self.G.parameters(), *self.F.parameters()], cfg.lr, betas),
                           "D": adam(self.D.parameters(), cfg.lr, betas)}
        self.discriminators = [self.D]
        self.translators = {cfg.direction: "G"}
        self.adversarial = AdversarialLoss(cfg.gan_loss)
        self.flipped = False

    @staticmethod
    def make_dataset(cfg):
        return unpaired_dataset(cfg)

    @staticmethod
    def set_epoch(cfg, dataset, decaying: bool) -> None:
        """In the decay epochs (after ``--epochs``) images are resized straight to ``--crop-size``, so
        each is seen whole (and maybe flipped), not cropped: the authors' code
        (data/unaligned_dataset.py: ``is_finetuning = ... self.current_epoch > self.opt.n_epochs``,
        then ``load_size=self.opt.crop_size``), for CUT and FastCUT alike."""
        dataset.transform = augment(dataclasses.replace(cfg, load_size=cfg.crop_size) if decaying else cfg)

    def forward(self, batch):
        real_a, real_b = batch["A"], batch["B"]
        # FastCUT: half the steps see the input flipped (drawn from torch's stream, so a seed repeats it)
        self.flipped = self.cfg.flip_equivariance and bool(torch.rand(()) < 0.5)
        flip = (lambda x: torch.flip(x, [3])) if self.flipped else (lambda x: x)
        if self.cfg.nce_idt and real_a.shape[1:] == real_b.shape[1:]:  # one pass over both, as the authors
            fake = self.G(flip(torch.cat([real_a, real_b])))
            out = {"fake_B": fake[: len(real_a)], "idt_B": fake[len(real_a):]}
        else:
            out = {"fake_B": self.G(flip(real_a))}
            if self.cfg.nce_idt:
                out["idt_B"] = self.G(flip(real_b))
        return out

    def nce_loss(self, source: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """PatchNCE between G's features of ``source`` (keys) and of its translation ``output``
        (queries), averaged over the layers."""
        feat_q = self.G.features(output, self.layers)
        if self.flipped:  # the output was made from the flipped input: flip its features back
            feat_q = [torch.flip(f, [3]) for f in feat_q]
        feat_k = self.G.features(source, self.layers)
        pool_k, ids = self.F(feat_k, self.cfg.num_patches)
        pool_q, _ = self.F(feat_q, self.cfg.num_patches, ids)
        total = sum(patch_nce(q.float(), k.float(), len(source), self.cfg.nce_t).mean() * self.cfg.lambda_nce
                    for q, k in zip(pool_q, pool_k))  # logits / 0.07 in fp32, also under bf16 autocast
        return total / len(self.layers)

    def d_loss(self, batch, out):
        loss, _ = self.adversarial.d(self.D, batch["B"], out["fake_B"])
        return loss, {}

    def g_loss(self, batch, out):
        parts = {"G_GAN": self.adversarial.g(self.D, out["fake_B"])}
        nce = self.nce_loss(batch["A"], out["fake_B"])
        parts["NCE"] = nce
        if "idt_B" in out and self.cfg.lambda_nce > 0:
            parts["NCE_Y"] = self.nce_loss(batch["B"], out["idt_B"])
            nce = (nce + parts["NCE_Y"]) * 0.5
        return parts["G_GAN"] + nce, {k: v.detach() for k, v in parts.items()}

    def sample_rows(self, batch, out):
        return [[batch["A"][i], out["fake_B"][i], batch["B"][i]] for i in range(len(batch["A"]))]


class FastCUT(CUT):
    name, title = "fastcut", "contrastive unpaired translation, faster"
    defaults = {**CUT.defaults, "lambda_nce": 10.0, "nce_idt": False, "flip_equivariance": True, "epochs": 150,
                "epochs_decay": 50}
