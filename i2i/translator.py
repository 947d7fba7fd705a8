"""A generator ready for inference: load it from a run folder, a weights file or a reference .pth,
and translate batches of any size.

Images are translated at their own resolution: each is reflect-padded up to the multiple its
generator needs, translated, and cropped back, so a 301x207 photo comes back 301x207. The file
pipeline (folders in, folders out) is :mod:`i2i.translate`; the Python API is :mod:`i2i.api`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import ImageError, UsageError
from .runs import Run, generator_from_weights, load_weights, newest_run
from .runtime import Runtime, input_dtype, resolve


@dataclass
class Translator:
    """A generator ready for inference, and what it needs from its input."""

    net: torch.nn.Module
    spec: dict
    direction: str | None
    source: str
    runtime: Runtime = field(default_factory=lambda: Runtime(torch.device("cpu")))

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def in_channels(self) -> int:
        return self.spec.get("in_channels", 3)

    @property
    def multiple(self) -> int:
        return self.net.size_multiple

    @property
    def min_size(self) -> int:
        """The smallest height and width the generator takes (smaller images are padded up to it)."""
        return getattr(self.net, "min_size", self.multiple)

    def padded_side(self, n: int) -> int:
        """The side an image side of ``n`` pixels is reflect-padded to: the generator's multiple, at
        least :attr:`min_size`."""
        return padded_side(self.net, n)

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Translate a B x C x H x W batch in [-1, 1] of any size (H, W >= 1); returns B x C' x H x W
        float32 in [-1, 1] on the CPU.

        The batch is reflect-padded up to the generator's size multiple (and at least its
        :attr:`min_size`), translated, and cropped back. It is fed in the dtype of the network's own
        weights (:func:`i2i.runtime.input_dtype`), so a training network (fp32 weights under bf16
        autocast) and a bf16 inference network both get what they accept.
        """
        h, w = batch.shape[-2:]
        if h < 1 or w < 1:
            raise ImageError(f"an image of {w}x{h} pixels has nothing to translate")
        th, tw = self.padded_side(h), self.padded_side(w)
        top, left = (th - h) // 2, (tw - w) // 2
        x = pad_reflect(batch.to(self.device), left, tw - w - left, top, th - h - top)
        x = x.to(input_dtype(self.net))
        if self.runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.net(x)
        return y[..., top: top + h, left: left + w].float().cpu()


def pad_reflect(x: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    """Reflect-pad the last two dimensions by any amount, as numpy's ``reflect`` mode: the image is
    mirrored about its edge pixels, periodically, so pads wider than the side work too (``F.pad``
    needs them smaller); a side of one pixel, which has nothing to mirror, is repeated."""
    for dim, before, after in ((-1, left, right), (-2, top, bottom)):
        if before or after:
            n = x.shape[dim]
            i = torch.arange(-before, n + after, device=x.device)
            if n == 1:
                i = torch.zeros_like(i)
            else:
                i = i.remainder(2 * n - 2)
                i = torch.where(i < n, i, 2 * n - 2 - i)
            x = x.index_select(dim, i)
    return x


def padded_side(net: torch.nn.Module, n: int) -> int:
    """The side an image side of ``n`` pixels is reflect-padded to for generator ``net``: a multiple
    of its ``size_multiple``, at least its ``min_size`` (default: one multiple)."""
    multiple = net.size_multiple
    return -(-max(n, getattr(net, "min_size", multiple)) // multiple) * multiple


def load_translator(model: str | Path | None = None, direction: str | None = None,
                    checkpoints_dir: str | Path = "checkpoints", runtime: Runtime | None = None,
                    eval_mode: bool = True) -> Translator:
    """Load the generator for ``direction`` from a run folder, a .safetensors file or a reference .pth.

    ``model=None`` takes the newest run under ``checkpoints_dir``. ``runtime`` says where and in what
    precision to run (default: :func:`i2i.runtime.resolve`'s auto choice, at torch's current thread
    count). ``eval_mode=False`` keeps dropout and batch statistics on, as the reference's test script
    does without ``--eval``.
    """
    if runtime is None:
        runtime = resolve(threads=torch.get_num_threads())
    if model is None:
        found = newest_run(checkpoints_dir)
        if found is None:
            raise UsageError(f"no trained runs in {checkpoints_dir}/; train one or pass --model RUN_OR_FILE")
        model = found
    path = Path(model)
    source = path
    if not path.exists():
        raise UsageError(f"--model {path}: no such run folder or file")
    if path.is_dir():
        run = Run(path)
        doc = run.read_config()
        if not run.directions(doc):
            raise UsageError(f"{path} is a {doc.get('mode')} run, which generates images rather than "
                             "translating them; use i2i sample, i2i interpolate (or i2i reconstruct for a vae run)")
        stored = run.generator(direction, doc)
        state_dict, spec, source, direction = stored.state_dict, stored.spec, stored.source, stored.direction
    elif path.suffix == ".safetensors":
        state_dict, spec = load_weights(path)
        if spec is None:
            raise UsageError(f"{path}: no i2i metadata; pass the run folder instead of the file")
    elif path.suffix in (".pth", ".pt"):
        from .reference import read_generator

        state_dict, spec = read_generator(path)
        direction = direction or "AtoB"
    else:
        raise UsageError(f"--model {path}: expected a run folder, .safetensors or a reference .pth file")
    net = generator_from_weights(spec, state_dict, runtime.device, eval_mode, source=source)
    if runtime.auto:  # bf16 or fp32, whichever measured faster for this network (at 256x256)
        from .autoprecision import settle

        side = padded_side(net, 256)
        runtime = settle(runtime, {spec["name"]: net}, (1, spec.get("in_channels", 3), side, side), training=False)
    return Translator(runtime.prepare(net, training=False), spec, direction, str(path), runtime)
