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
        try:
            return json.loads(self.config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"{self.path}: not an i2i run folder (no {CONFIG_FILE})") from None
        except json.JSONDecodeError as e:
            raise I2IError(f"{self.config_path}: damaged ({e})") from None

    def write_config(self, cfg, translators: dict[str, str], specs: dict[str, dict]) -> None:
        """``translators``: direction -> generator name; ``specs``: generator name -> create() args."""
        doc = json.loads(cfg.to_json())
        doc["generators"] = {
            name: {"file": f"{name}.safetensors", "spec": specs[name],
                   "directions": [d for d, n in translators.items() if n == name]}
            for name in specs
        }
        write_json(self.config_path, doc)

    def save_generators(self, mode) -> None:
        for name, spec in mode.specs.items():
            save_weights(self.path / f"{name}.safetensors", mode.nets[name], spec)

    def save_state(self, state: dict) -> None:
        atomic_write(self.state_path, lambda tmp: torch.save(state, tmp))

    def load_state(self) -> dict:
        try:
            return torch.load(self.state_path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise I2IError(f"{self.state_path}: cannot be read ({e})") from None

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
