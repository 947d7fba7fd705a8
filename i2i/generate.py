"""Images from a generative run: sample grids, latent interpolations, and VAE reconstructions.

A run's config.json names its generator (the DCGAN generator, or the VAE whose decoder generates)
and, for conditional runs, the class names in label order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import I2IError, UsageError
from .data.codecs import image_grid
from .runs import Run


@dataclass
class LatentGenerator:
    """A GAN generator or a VAE, ready for inference. Latent vectors and images are handed to it in the
    dtype of its own weights (:func:`i2i.runtime.input_dtype`) and come back as float32 on the CPU."""

    net: torch.nn.Module
    z_dim: int
    classes: list[str]
    source: str
    device: torch.device = torch.device("cpu")

    def _in(self, t: torch.Tensor) -> torch.Tensor:
        from .runtime import input_dtype

        return t.to(self.device, input_dtype(self.net))

    def _labels(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        return None if labels is None else labels.to(self.device)

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

    @property
    def is_vae(self) -> bool:
        return hasattr(self.net, "encode")

    @torch.inference_mode()
    def __call__(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """N x C x S x S images in [-1, 1] (float32, CPU) for N x z_dim latent vectors (a VAE shows its
        decoder's mean)."""
        z, labels = self._in(z), self._labels(labels)
        if self.is_vae:
            return (torch.sigmoid(self.net.decode(z, labels)) * 2 - 1).float().cpu()
        return self.net(z, labels).float().cpu()

    @torch.inference_mode()
    def encode(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The mean of q(z|x) (VAE runs only)."""
        if not self.is_vae:
            raise UsageError(f"{self.source} is a GAN run, which has no encoder; images can be encoded by vae runs")
        return self.net.encode(self._in(x), self._labels(labels))[0].float().cpu()


def load_latent_generator(run_dir: str | Path, runtime=None) -> LatentGenerator:
    """The generator of a gan, vae or vaegan run, prepared for ``runtime`` (default: fp32 on the CPU,
    so the same seed gives the same images on every machine)."""
    from .runtime import Runtime

    runtime = runtime or Runtime(torch.device("cpu"))

    run = Run(run_dir)
    doc = run.read_config()
    from . import modes

    if modes.run_task(doc) != "folder":
        raise UsageError(f"{run.path} is a {doc.get('mode')} run, which translates images; use i2i translate")
    g = run.generator(doc=doc)
    if g.name != "G" or "z_dim" not in g.spec:
        raise I2IError(f"{run.config_path}: field 'generators.G' does not describe a GAN generator or a VAE; "
                       "the file is damaged: put back a copy from a backup")
    classes = doc.get("classes") or []
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise I2IError(f"{run.config_path}: field 'classes' is {classes!r}, not a list of class names; the file is "
                       "damaged: put back a copy from a backup")
    net = runtime.prepare(g.build(runtime.device), training=False)
    return LatentGenerator(net, g.spec["z_dim"], classes, str(run.path), runtime.device)


def load_square(gen: LatentGenerator, path) -> torch.Tensor:
    """An image file as the 1xCxSxS tensor the run was trained on (shorter side resized, centre crop)."""
    from .data.images import read_array
    from .data.transforms import SquareAugment

    channels = gen.net.encoder[0].in_channels - gen.net.n_classes
    return SquareAugment(gen.net.image_size, flip=False)(read_array(path, channels))[None]


def sample(run_dir, n: int = 64, seed: int = 0, label: str | None = None, runtime=None):
    """A grid of ``n`` generated images (PIL), the same for the same seed and precision."""
    if n < 1:
        raise UsageError("--n must be at least 1")
    gen = load_latent_generator(run_dir, runtime)
    z = torch.randn(n, gen.z_dim, generator=torch.Generator().manual_seed(seed))
    return image_grid(gen(z, gen.label_ids(n, label)).split(math.ceil(math.sqrt(n))))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points along the great circle from ``a`` to ``b`` (1xD each) at fractions ``t`` (Nx1).

    For Gaussian latents (White 2016): samples of N(0, I) in D dimensions all have a norm near
    sqrt(D), but the straight line's midpoint between two of them is only about 0.7 as long, a
    point the generator rarely saw, which decodes to washed-out images.
    """
    cos = (a * b).sum() / (a.norm() * b.norm())
    omega = torch.acos(cos.clamp(-1, 1))
    if omega.abs() < 1e-4:  # (nearly) the same direction: the line is the arc
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def interpolate(run_dir, steps: int = 8, seeds: tuple[int, int] = (0, 1), label: str | None = None,
                images: tuple | None = None, runtime=None):
    """A row of ``steps`` images between two latent vectors: along the great circle between the
    noise of two seeds (see :func:`slerp`), or along the straight line between the encodings of two
    ``images`` (VAE runs)."""
    if steps < 2:
        raise UsageError("--steps must be at least 2")
    gen = load_latent_generator(run_dir, runtime)
    if images:
        ends = [gen.encode(load_square(gen, p), gen.label_ids(1, label)) for p in images]
    else:
        ends = [torch.randn(1, gen.z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds]
    t = torch.linspace(0, 1, steps)[:, None]
    z = (1 - t) * ends[0] + t * ends[1] if images else slerp(ends[0], ends[1], t)
    return image_grid([gen(z, gen.label_ids(steps, label))])


def reconstruct(run_dir, inputs: list[str], out: str | Path, label: str | None = None,
                overwrite: bool = False, runtime=None) -> tuple[int, list[str]]:
    """Write input | reconstruction pairs (VAE runs) into ``out``, one PNG per input.

    Returns (how many were written, one line per input that could not be read or written). A bad
    file is reported and skipped; it never stops the others.
    """
    from .data.images import save_image
    from .errors import I2IError
    from .translate import collect_inputs

    gen = load_latent_generator(run_dir, runtime)
    if not gen.is_vae:
        raise UsageError(f"{gen.source} is a GAN run, which has no encoder; i2i reconstruct takes vae runs")
    pairs, _ = collect_inputs(inputs)
    out = Path(out)
    written, failed = 0, []
    labels = gen.label_ids(1, label)
    for src, rel in pairs:
        dst = (out / rel).with_suffix(".png")
        if dst.exists() and not overwrite:
            continue
        try:
            x = load_square(gen, src)
            recon = gen(gen.encode(x, labels), labels)
            save_image(image_grid([torch.cat([x, recon])]), dst)
        except I2IError as e:
            failed.append(str(e))
            continue
        except OSError as e:
            from .errors import FATAL_WRITE_ERRNOS, os_error_message

            if e.errno in FATAL_WRITE_ERRNOS:
                raise
            failed.append(f"{dst}: {os_error_message(e)}")
            continue
        written += 1
    return written, failed
