"""CycleGAN (Zhu et al. 2017): unpaired translation with cycle consistency.

Besides fooling the discriminators, each generator must undo the other (cycle loss
``lambda_cycle * |G_B(G_A(a)) - a|``, and the same for b) and, with ``lambda_identity > 0``, leave
images of its target domain unchanged. Discriminators see fakes through an image history pool. The
generators are updated before the discriminators, with one Adam for both G and one for both D, as
in the reference. Defaults are the reference's.
"""

from __future__ import annotations

import torch.nn.functional as F

from ..image_pool import ImagePool
from ..losses import AdversarialLoss
from ..errors import UsageError
from .base import adam
from .two_way import TwoWayMode


class CycleGAN(TwoWayMode):
    name, title = "cycle", "CycleGAN, unpaired"
    reads = TwoWayMode.reads | {"lambda_identity", "pool_size"}
    # the reference's CycleGAN options
    defaults = dict(net_g="resnet_9blocks", norm="instance", dropout=False, gan_loss="lsgan", pool_size=50)
    d_first = False

    @classmethod
    def check(cls, cfg):
        super().check(cfg)
        if cfg.lambda_identity > 0 and cfg.input_nc != cfg.output_nc:
            raise UsageError(f"the identity loss needs as many input as output channels ({cfg.input_nc} vs "
                             f"{cfg.output_nc}); add --lambda-identity 0")

    def __init__(self, cfg, device="cpu", *, runtime=None, world=None):
        super().__init__(cfg, device, runtime=runtime, world=world)
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {"G": adam(self.generator_parameters(), cfg.lr, betas),
                           "D": adam(self.discriminator_parameters(), cfg.lr, betas)}
        self.adversarial = AdversarialLoss(cfg.gan_loss)
        self.pools = {"fake_A": ImagePool(cfg.pool_size), "fake_B": ImagePool(cfg.pool_size)}

    def g_loss(self, batch, out):
        lc, li = self.cfg.lambda_cycle, self.cfg.lambda_identity
        parts = {
            "G_A": self.adversarial.g(self.D_A, out["fake_B"]),
            "G_B": self.adversarial.g(self.D_B, out["fake_A"]),
            "cycle_A": F.l1_loss(out["rec_A"], batch["A"]) * lc,
            "cycle_B": F.l1_loss(out["rec_B"], batch["B"]) * lc,
        }
        if li > 0:  # G_A should leave a B image as it is, and G_B an A image
            parts["idt_A"] = F.l1_loss(self.G_A(batch["B"]), batch["B"]) * lc * li
            parts["idt_B"] = F.l1_loss(self.G_B(batch["A"]), batch["A"]) * lc * li
        return sum(parts.values()), {k: v.detach() for k, v in parts.items()}

    def d_loss(self, batch, out):
        loss_a, _ = self.adversarial.d(self.D_A, batch["B"], self.pools["fake_B"].query(out["fake_B"]))
        loss_b, _ = self.adversarial.d(self.D_B, batch["A"], self.pools["fake_A"].query(out["fake_A"]))
        return loss_a + loss_b, {"D_A": loss_a.detach(), "D_B": loss_b.detach()}

    def extra_state(self):
        return {"pools": {k: p.state_dict() for k, p in self.pools.items()}}

    def load_extra_state(self, state):
        for k, p in state.get("pools", {}).items():
            self.pools[k].load_state_dict(p)
