"""The run folder: everything a training run writes, and the one way to read it back.

    checkpoints/<name>/
      config.json        the full training config, plus which generator translates which way
      G.safetensors      generator weights (safetensors; the rebuild arguments in its metadata)
      state.pt           everything needed to resume: all nets, optimizers, epoch/step, RNG states
      log.jsonl          one JSON object per logged step
      samples/           periodic sample grids (input | output | target)

Every file is written atomically. ``state.pt`` holds only tensors and plain Python values, so it is
read with ``torch.load(weights_only=True)``: no code is ever unpickled.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from .errors import I2IError, UsageError
from .io import atomic_write, write_json

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"
CONFIG_FILE = "config.json"
LOG_FILE = "log.jsonl"
CONFIG_FORMAT = 1  # bump when config.json changes in a way older readers would misread


def save_weights(path: Path, module: torch.nn.Module, spec: dict) -> Path:
    """Write a module's state dict as safetensors with its ``nets.create`` arguments as metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    metadata = {"i2i_spec": json.dumps(spec, sort_keys=True)}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Read a safetensors file: (state dict, spec from its metadata or None)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        return load_file(str(path)), json.loads(meta["i2i_spec"]) if "i2i_spec" in meta else None
    except Exception as e:  # noqa: BLE001  (a damaged or foreign file)
        raise I2IError(f"{path}: cannot read weights ({e}); is it a complete .safetensors file?") from None


class Run:
    """A run folder on disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config_path = property(lambda self: self.path / CONFIG_FILE)
    state_path = property(lambda self: self.path / STATE_FILE)
    log_path = property(lambda self: self.path / LOG_FILE)
    samples_dir = property(lambda self: self.path / "samples")

    def exists(self) -> bool:
        return self.config_path.is_file()

    def read_config(self) -> dict:
        """The run's config.json; refuses files from a newer i2i or of an unknown format."""
        try:
            doc = json.loads(self.config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"{self.path}: not an i2i run folder (no {CONFIG_FILE})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise I2IError(f"{self.config_path}: damaged ({e})") from None
        if not isinstance(doc, dict):
            raise I2IError(f"{self.config_path}: not an i2i config (expected a JSON object)")
        fmt = doc.get("format", 1)  # files from before the field existed are format 1
        if not isinstance(fmt, int) or fmt < 1:
            raise I2IError(f"{self.config_path}: unknown config format {fmt!r}; it was not written by i2i")
        if fmt > CONFIG_FORMAT:
            made_by = doc.get("i2i_version", "a newer i2i")
            raise I2IError(f"{self.config_path}: written by i2i {made_by} in config format {fmt}, newer than this "
                           f"i2i reads ({CONFIG_FORMAT}); upgrade i2i to use this run")
        return doc

    def write_config(self, cfg, translators: dict[str, str], specs: dict[str, dict]) -> None:
        """``translators``: direction -> generator name; ``specs``: generator name -> create() args."""
        from . import __version__

        doc = json.loads(cfg.to_json())
        doc["format"], doc["i2i_version"] = CONFIG_FORMAT, __version__
        doc["generators"] = {
            name: {"file": f"{name}.safetensors", "spec": specs[name],
                   "directions": [d for d, n in translators.items() if n == name]}
            for name in specs
        }
        write_json(self.config_path, doc)

    def save_generators(self, mode) -> None:
        for name, spec in mode.specs.items():
            save_weights(self.path / f"{name}.safetensors", mode.nets[name], spec)

    def save_best(self, mode, info: dict) -> None:
        """Write the generators to ``best/``, a run folder of its own (config, weights, best.json)."""
        best = Run(self.path / "best")
        best.path.mkdir(exist_ok=True)
        for name, spec in mode.specs.items():
            save_weights(best.path / f"{name}.safetensors", mode.nets[name], spec)
        write_json(best.config_path, {**self.read_config(), "best": info})

    def save_state(self, state: dict) -> None:
        atomic_write(self.state_path, lambda tmp: torch.save(state, tmp))

    def load_state(self) -> dict:
        try:
            return torch.load(self.state_path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            if "Weights only load failed" in str(e):
                raise I2IError(f"{self.state_path}: holds pickled objects, not only tensors; refused, since loading "
                               "it could run code (i2i's own checkpoints never need that)") from None
            raise I2IError(f"{self.state_path}: cannot be read ({str(e).splitlines()[0]}); "
                           "delete it to restart the run from its weights") from None

    def append_log(self, record: dict) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def read_log(self) -> list[dict]:
        if not self.log_path.is_file():
            return []
        records = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
        return records

    def truncate_log(self, step: int) -> None:
        """Drop log lines past ``step``: after a resume they would be repeated."""
        kept = [r for r in self.read_log() if r.get("step", 0) <= step]
        atomic_write(self.log_path, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in kept)))


def newest_run(checkpoints_dir: str | Path = "checkpoints") -> Path | None:
    """The most recently updated run folder under ``checkpoints_dir`` that has generator weights."""
    root = Path(checkpoints_dir)
    if not root.is_dir():
        return None
    runs = [p for p in root.iterdir() if (p / CONFIG_FILE).is_file() and any(p.glob("*.safetensors"))]
    return max(runs, key=lambda p: max(f.stat().st_mtime for f in p.glob("*.safetensors")), default=None)
