"""What the unpaired recipes (CycleGAN, DualGAN) share: two generators and two discriminators, the
round trip through both generators, two folders of data, and the sample rows.

G_A maps domain A to B and G_B maps B to A; D_A judges domain B and D_B domain A (the reference's
naming). ``--direction BtoA`` swaps the folders; directions in the run's config are always named
after the user's ``--a`` and ``--b`` folders.
"""

from __future__ import annotations

import itertools

from ..data.unpaired import UnpairedDataset
from .base import (TRANSLATION_OPTIONS, VALIDATION_OPTIONS, AdversarialMode, augment, build_discriminator,
                   build_generator, generator_spec)

# what the unpaired recipes read: two folders, in order or not, and two validation folders
UNPAIRED_OPTIONS = TRANSLATION_OPTIONS | {"b", "serial_batches"}


def unpaired_dataset(cfg) -> UnpairedDataset:
    """The two folders of an unpaired recipe, ``--a`` as domain A unless ``--direction BtoA``."""
    a, b = (cfg.a, cfg.b) if cfg.direction == "AtoB" else (cfg.b, cfg.a)
    return UnpairedDataset(a, b, cfg.input_nc, cfg.output_nc, augment(cfg), serial=cfg.serial_batches,
                           strict=cfg.strict)


class TwoWayMode(AdversarialMode):
    task = "unpaired"
    reads = UNPAIRED_OPTIONS | VALIDATION_OPTIONS | {"val_b", "lambda_cycle"}
    notes = {"a": "the domain A folder", "b": "the domain B folder"}
    default_metric = "cycle_L1"
    validation_metrics = ("cycle_L1", "cycle_L1_A", "cycle_L1_B", "identity_L1_A", "identity_L1_B")
    sample_columns = ("real", "translated", "round trip")

    def __init__(self, cfg, device="cpu", *, runtime=None, world=None):
        super().__init__(cfg, device, runtime=runtime, world=world)
        self.specs = {"G_A": generator_spec(cfg, cfg.input_nc, cfg.output_nc),
                      "G_B": generator_spec(cfg, cfg.output_nc, cfg.input_nc)}
        self.G_A = build_generator(cfg, self.specs["G_A"], self.device)
        self.G_B = build_generator(cfg, self.specs["G_B"], self.device)
        self.D_A = build_discriminator(cfg, cfg.output_nc, self.device)  # judges domain B
        self.D_B = build_discriminator(cfg, cfg.input_nc, self.device)  # judges domain A
        self.nets = {"G_A": self.G_A, "G_B": self.G_B, "D_A": self.D_A, "D_B": self.D_B}
        self.discriminators = [self.D_A, self.D_B]
        self.translators = {"AtoB": "G_A", "BtoA": "G_B"} if cfg.direction == "AtoB" else {"BtoA": "G_A", "AtoB": "G_B"}

    def generator_parameters(self):
        return itertools.chain(self.G_A.parameters(), self.G_B.parameters())

    def discriminator_parameters(self):
        return itertools.chain(self.D_A.parameters(), self.D_B.parameters())

    @staticmethod
    def make_dataset(cfg) -> UnpairedDataset:
        return unpaired_dataset(cfg)

    def forward(self, batch):
        fake_B = self.G_A(batch["A"])
        fake_A = self.G_B(batch["B"])
        return {"fake_B": fake_B, "rec_A": self.G_B(fake_B), "fake_A": fake_A, "rec_B": self.G_A(fake_A)}

    def sample_rows(self, batch, out):
        """real_A | fake_B | rec_A and real_B | fake_A | rec_B for each example."""
        rows = []
        for i in range(len(batch["A"])):
            rows.append([batch["A"][i], out["fake_B"][i], out["rec_A"][i]])
            rows.append([batch["B"][i], out["fake_A"][i], out["rec_B"][i]])
        return rows
