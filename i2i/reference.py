"""Load generator files written by the reference pytorch-CycleGAN-and-pix2pix code.

Those ``.pth`` files are bare state dicts. We read them with ``weights_only=True`` (no code is ever
unpickled), drop the InstanceNorm ``running_mean``/``running_var`` entries that 2017-era files carry
(the reference's instance norm tracks no statistics), and let files without ``num_batches_tracked``
(pre-0.4.1) load. The architecture is read off the keys and shapes, so a user only passes the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .errors import I2IError, UsageError


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a reference ``.pth`` state dict safely and clean it for ``strict=True`` loading.

    Raises ValueError with a reason of i2i's own (never torch's advice to load with
    ``weights_only=False``): pickled objects refused, not a PyTorch file, not a state dict of tensors.
    """
    from .runs import torch_load

    try:
        sd = torch_load(path)
    except OSError as e:
        raise ValueError(f"cannot be read: {e.strerror or e}") from None
    if not isinstance(sd, dict) or not all(isinstance(k, str) for k in sd) \
            or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError("not a state dict of tensors")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}  # saved from DataParallel
    return clean_state_dict(sd)


def clean_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop norm statistics that have no affine weight beside them (InstanceNorm leftovers)."""
    out = {}
    for key, value in sd.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf in ("running_mean", "running_var", "num_batches_tracked") and f"{prefix}.weight" not in sd:
            continue
        out[key] = value
    return out


def infer_generator_spec(sd: dict[str, torch.Tensor]) -> dict:
    """Work out ``create()`` arguments for a reference generator from its state dict.

    Also reads CUT's generators (taesungp/contrastive-unpaired-translation, whose ResNet files carry
    ``model.N.filt`` blur buffers): their spec adds ``antialias``/``antialias_up`` (only when set).
    """
    norm = "batch" if any(k.endswith("running_mean") for k in sd) else None
    if "model.1.weight" in sd and sd["model.1.weight"].shape[-1] == 7:  # ResNet: 7x7 stem at index 1
        w = sd["model.1.weight"]
        blocks = {int(m.group(1)) for k in sd if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
        last = max(int(k.split(".")[1]) for k in sd if re.match(r"model\.\d+\.weight$", k))
        # with dropout the second conv of a block moves from index 5 to 6 (index 6 is otherwise a norm)
        dropout = any(re.match(r"model\.\d+\.conv_block\.6\.weight$", k) and v.dim() == 4 for k, v in sd.items())
        if norm is None:
            norm = "instance" if "model.1.bias" in sd else "none"
        spec = {
            "name": "resnet",
            "n_blocks": len(blocks),
            "in_channels": w.shape[1],
            "out_channels": sd[f"model.{last}.weight"].shape[0],
            "ngf": w.shape[0],
            "norm": norm,
            "dropout": dropout,
        }
        # CUT's antialiased generators (taesungp/contrastive-unpaired-translation) hold the fixed blur
        # filters as "model.N.filt" buffers: 3x3 for each Downsample, 4x4 for each Upsample
        filts = [v for k, v in sd.items() if re.match(r"model\.\d+\.filt$", k)]
        if any(f.dim() == 4 and f.shape[-1] == 3 for f in filts):
            spec["antialias"] = True
        if any(f.dim() == 4 and f.shape[-1] == 4 for f in filts):
            spec["antialias_up"] = True
        return spec
    if "model.model.0.weight" in sd:  # U-Net: count nesting depth
        depth, prefix = 1, "model.model.1."
        while f"{prefix}model.1.weight" in sd:
            depth, prefix = depth + 1, prefix + "model.3."
        w = sd["model.model.0.weight"]
        if norm is None:
            norm = "instance" if "model.model.1.model.1.bias" in sd else "none"
        # U-Net dropout layers hold no parameters, so the file cannot say; it only matters in training
        return {
            "name": "unet",
            "num_downs": depth,
            "in_channels": w.shape[1],
            "out_channels": sd["model.model.3.weight"].shape[1],
            "ngf": w.shape[0],
            "norm": norm,
            "dropout": False,
        }
    raise ValueError("not a ResNet or U-Net generator from pytorch-CycleGAN-and-pix2pix")


def read_generator(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, ``nets.create`` arguments) of a reference generator file, or a one-line
    :class:`I2IError` naming the file. The arguments are checked against the file's tensor shapes
    on the meta device (:func:`i2i.runs.check_fit`) before anything is built."""
    from .runs import check_fit

    try:
        state_dict = load_state_dict(path)
        spec = infer_generator_spec(state_dict)
    except ValueError as e:  # our own reasons (load_state_dict turns torch's errors into these)
        raise I2IError(f"{path}: not a generator file of pytorch-CycleGAN-and-pix2pix ({e})") from None
    except Exception as e:  # noqa: BLE001  (a state dict whose keys or shapes infer_generator_spec cannot read)
        raise I2IError(f"{path}: not a generator file of pytorch-CycleGAN-and-pix2pix (its tensors do not "
                       f"form a ResNet or U-Net generator: {type(e).__name__})") from None
    check_fit(spec, {k: tuple(v.shape) for k, v in state_dict.items()}, path)
    return state_dict, spec


def import_generator(path: str | Path, run_dir: str | Path, direction: str = "AtoB") -> Path:
    """Make an i2i run folder from a reference generator file: ``config.json`` plus ``G.safetensors``.

    The new run translates ``direction`` with that generator, like a trained run, and records where
    the weights came from.
    """
    from .runs import Run, generator_from_weights

    path, run_dir = Path(path), Path(run_dir)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    from .io import remove_stale_temps

    remove_stale_temps(run_dir)  # those of an import that was killed
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UsageError(f"{run_dir} already exists; choose another --name")
    state_dict, spec = read_generator(path)
    net = generator_from_weights(spec, state_dict, source=path)
    Run(run_dir).write_imported(net, spec, direction, path.resolve())
    return run_dir
