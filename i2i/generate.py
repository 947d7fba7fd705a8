"""Images from a generative run: sample grids and latent interpolations (GAN runs, for now).

A run's config.json names its generator and, for conditional runs, the class names in label order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import UsageError
from .runs import Run, load_weights


@dataclass
class LatentGenerator:
    net: torch.nn.Module
    z_dim: int
    classes: list[str]
    source: str

    def label_ids(self, n: int, label: str | None) -> torch.Tensor | None:
        """Labels for n images: all ``label``, or the classes in turn; None for unconditional runs."""
        if not self.classes:
            if label is not None:
                raise UsageError(f"{self.source} is not conditional; drop --label")
            return None
        if label is None:
            return torch.arange(n) % len(self.classes)
        if label not in self.classes:
            raise UsageError(f"--label {label!r} is not a class of {self.source}; choose from {', '.join(self.classes)}")
        return torch.full((n,), self.classes.index(label))

    @torch.inference_mode()
    def __call__(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.net(z, labels)


def load_latent_generator(run_dir: str | Path) -> LatentGenerator:
    from . import nets

    run = Run(run_dir)
    doc = run.read_config()
    if doc.get("mode") != "gan":
        raise UsageError(f"{run.path} is a {doc.get('mode')} run, which translates images; use i2i translate")
    g = doc["generators"]["G"]
    state_dict, _ = load_weights(run.path / g["file"])
    net = nets.create(**g["spec"], init=None)
    net.load_state_dict(state_dict, strict=True)
    return LatentGenerator(net.eval(), g["spec"]["z_dim"], doc.get("classes") or [], str(run.path))


def grid(images: torch.Tensor, nrow: int):
    from torchvision.utils import make_grid

    from .translate import tensor_to_image

    return tensor_to_image(make_grid(images.float(), nrow=nrow, padding=2, pad_value=1.0))


def sample(run_dir, n: int = 64, seed: int = 0, label: str | None = None):
    """A grid of ``n`` generated images (PIL), the same for the same seed."""
    if n < 1:
        raise UsageError("--n must be at least 1")
    gen = load_latent_generator(run_dir)
    z = torch.randn(n, gen.z_dim, generator=torch.Generator().manual_seed(seed))
    return grid(gen(z, gen.label_ids(n, label)), nrow=math.ceil(math.sqrt(n)))


def interpolate(run_dir, steps: int = 8, seeds: tuple[int, int] = (0, 1), label: str | None = None):
    """A row of ``steps`` images along the straight line between the latent vectors of two seeds."""
    if steps < 2:
        raise UsageError("--steps must be at least 2")
    gen = load_latent_generator(run_dir)
    ends = [torch.randn(1, gen.z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds]
    t = torch.linspace(0, 1, steps)[:, None]
    z = (1 - t) * ends[0] + t * ends[1]
    return grid(gen(z, gen.label_ids(steps, label)), nrow=steps)
