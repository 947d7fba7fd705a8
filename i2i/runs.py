"""The run folder: everything a training run writes, and the one way to read it back.

    checkpoints/<name>/
      config.json        the full training config, plus which generator translates which way
      G.safetensors      generator weights (safetensors; the rebuild arguments in its metadata)
      state.pt           everything needed to resume: all nets, optimizers, epoch/step, RNG states
      state.prev.pt      the checkpoint before it, kept so that a damaged state.pt loses no progress
      log.jsonl          one JSON object per logged step
      samples/           periodic sample grids (input | output | target)

Every file is written atomically. ``state.pt`` holds only tensors and plain Python values, so it is
read with ``torch.load(weights_only=True)``: no code is ever unpickled. Before a new ``state.pt`` takes
its place, the old one becomes ``state.prev.pt``; a resume reads ``state.pt``, or ``state.prev.pt``
(with a warning) when ``state.pt`` is missing or damaged.

Weight files are checked before any network is built: :func:`check_fit` compares the tensor shapes
a file holds with those of the network its spec describes, built on the meta device (no memory).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import I2IError, UsageError, first_line
from .io import atomic_write, write_json

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"
PREV_STATE_FILE = "state.prev.pt"
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
    """Read a safetensors file: (state dict, spec from its metadata or None).

    When the file has a spec, it is checked against the file's tensor shapes (read from the header)
    with :func:`check_fit` before any tensor is read or network built. Raises :class:`I2IError`
    naming the file when it is damaged, foreign, or its spec does not fit its tensors.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            spec = None
            if "i2i_spec" in meta:
                try:
                    spec = json.loads(meta["i2i_spec"])
                except ValueError:
                    raise I2IError(f"{path}: its i2i_spec metadata is not JSON; the file is damaged") from None
                check_fit(spec, shapes, path)
            state_dict = {k: f.get_tensor(k) for k in f.keys()}
        return state_dict, spec
    except I2IError:
        raise
    except Exception as e:  # noqa: BLE001  (a damaged or foreign file)
        raise I2IError(f"{path}: cannot read weights ({_first_line(e)}); is it a complete .safetensors file?") from None


# spec arguments that set a network's depth: each level holds at least one tensor, so a file with
# N tensors cannot describe more than N levels (checked before building, so a spec cannot make the
# meta build itself slow)
DEPTH_ARGS = ("n_blocks", "num_downs", "n_layers")
GENERATOR_KINDS = ("generator", "latent_generator", "vae")


def check_fit(spec, shapes: dict[str, tuple[int, ...]], source: str | Path) -> None:
    """Check that ``spec`` (``nets.create`` arguments) describes a generator whose state dict has
    exactly the tensor ``shapes`` (name -> shape) that ``source`` holds, without allocating anything:
    the network is built on the meta device. ``num_batches_tracked`` entries may be missing
    (pre-0.4.1 PyTorch files). Raises :class:`I2IError` naming ``source``: unknown or non-generator
    names, arguments of the wrong type or range, missing, extra or wrongly shaped tensors.
    """
    from . import nets

    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise I2IError(f"{source}: its spec is not an i2i network description (a JSON object with a \"name\")")
    name = spec["name"]
    kinds = {n for kind in GENERATOR_KINDS for n in nets.names(kind)}
    if name not in kinds:
        raise I2IError(f"{source}: names the network {name[:80]!r}, which is not a generator this i2i knows "
                       f"({', '.join(sorted(kinds))}); was it written by another program or a newer i2i?")
    for key, value in spec.items():
        if key in ("init", "init_gain"):
            raise I2IError(f"{source}: its spec sets {key!r}, which a weights file never needs")
        if key in DEPTH_ARGS and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 0 <= value <= len(shapes)):
            raise I2IError(f"{source}: its spec says {key}={value!r}, which does not fit the {len(shapes)} tensors "
                           "the file holds")
    try:
        with torch.device("meta"), warnings.catch_warnings():  # no memory; torch's notes on odd sizes hidden
            warnings.simplefilter("ignore")
            net = nets.create(**{k: v for k, v in spec.items() if k != "name"}, name=name, init=None)
        expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    except I2IError:
        raise
    except Exception as e:  # noqa: BLE001  (any argument that the builder refuses)
        raise I2IError(f"{source}: its spec does not describe a {name} network ({_first_line(e)})") from None
    empty = [k for k, p in net.named_parameters() if p.numel() == 0]
    if empty:
        raise I2IError(f"{source}: its spec describes a {name} network with empty layers (e.g. {empty[0]}); "
                       "a width or channel count is 0")
    missing = [k for k in expected if k not in shapes and not k.endswith("num_batches_tracked")]
    extra = [k for k in shapes if k not in expected]
    wrong = [k for k in expected if k in shapes and tuple(shapes[k]) != expected[k]]
    if missing or extra or wrong:
        problems = []
        if wrong:
            k = wrong[0]
            problems.append(f"{len(wrong)} tensor(s) of the wrong shape, e.g. {k} is {tuple(shapes[k])}, "
                            f"not {expected[k]}")
        if missing:
            problems.append(f"{len(missing)} missing, e.g. {missing[0]}")
        if extra:
            problems.append(f"{len(extra)} that the network lacks, e.g. {extra[0][:80]}")
        raise I2IError(f"{source}: its weights do not fit the {name} network its spec describes "
                       f"({'; '.join(problems)})")


def _first_line(e: BaseException) -> str:
    """An exception's first line, without torch's advice to load with ``weights_only=False``
    (following it could run code from the file)."""
    text = first_line(e)
    if "weights_only" in text or "Weights only" in text or "WeightsUnpickler" in text:
        return "it holds objects other than tensors"
    return text[:200]


def generator_from_weights(spec: dict, state_dict: dict, device="cpu", eval_mode: bool = True,
                           source: str | Path = "the weights") -> torch.nn.Module:
    """A generator from ``nets.create`` arguments and weights that must fit it exactly.

    ``spec`` is checked against the tensors' shapes on the meta device (:func:`check_fit`) before
    the real network is built, so a spec that does not fit costs no memory or time. Raises
    :class:`I2IError` naming ``source`` (the file the weights came from) when it does not fit.
    """
    from . import nets

    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise I2IError(f"{source}: not a state dict of tensors")
    check_fit(spec, {k: tuple(v.shape) for k, v in state_dict.items()}, source)
    net = nets.create(**spec, init=None)
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise I2IError(f"{source}: weights do not fit a {spec['name']} generator: {first_line(e)}") from None
    return net.to(device).train(not eval_mode)


@dataclass
class StoredGenerator:
    """One generator of a run folder, as :meth:`Run.generator` reads it: its name in config.json,
    its ``nets.create`` arguments, its weights, the directions it translates (none for the latent
    generators of gan, vae and vaegan runs), the one it was chosen for (None for those), and
    ``source``, which names the weights file and the config.json field its network comes from (for
    messages)."""

    name: str
    spec: dict
    state_dict: dict[str, torch.Tensor]
    directions: list[str]
    direction: str | None
    source: str

    def build(self, device="cpu", eval_mode: bool = True) -> torch.nn.Module:
        """The network, its weights loaded (see :func:`generator_from_weights`)."""
        return generator_from_weights(self.spec, self.state_dict, device, eval_mode, source=self.source)


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

    def generators(self, doc: dict | None = None) -> dict[str, dict]:
        """The ``generators`` section of config.json (``doc``: the config already read), checked:
        generator name -> {"file": Path of its weights inside the run folder, "spec": dict,
        "directions": list of "AtoB"/"BtoA"}. Raises :class:`I2IError` naming config.json and the
        field when the section is missing, mistyped, or names a file outside the run folder."""
        doc = self.read_config() if doc is None else doc
        section = doc.get("generators")

        def bad(where: str, problem: str):
            raise I2IError(f"{self.config_path}: field {where} {problem}; the file is damaged: put back a copy "
                           "from a backup")

        if not isinstance(section, dict) or not section:
            bad("'generators'", "is missing or empty" if not section else "is not a JSON object")
        out = {}
        for name, g in section.items():
            where = f"'generators.{name}"
            if not isinstance(g, dict):
                bad(where + "'", "is not a JSON object")
            file, spec, directions = g.get("file"), g.get("spec"), g.get("directions")
            if not isinstance(file, str) or not file or file != Path(file).name or file.startswith(".") \
                    or "\\" in file or "\0" in file:
                bad(where + ".file'", f"is {json.dumps(file)[:60]}, not the name of a file in the run folder")
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                bad(where + ".spec'", "is not a network description (a JSON object with a \"name\")")
            if not isinstance(directions, list) or not all(d in ("AtoB", "BtoA") for d in directions):
                bad(where + ".directions'", "is not a list of AtoB and BtoA")
            out[name] = {"file": self.path / file, "spec": spec, "directions": list(directions)}
        return out

    def directions(self, doc: dict | None = None) -> dict[str, str]:
        """Which generator translates which way: direction -> generator name (empty for gan, vae and
        vaegan runs, whose generators make images from noise)."""
        return {d: name for name, g in self.generators(doc).items() for d in g["directions"]}

    def generator(self, direction: str | None = None, doc: dict | None = None) -> StoredGenerator:
        """The generator for ``direction``, its weights read (the one reader of a run's generators,
        for translate, the API, serve, sample and export).

        ``direction=None``: AtoB where the run translates that way, else its only (or first)
        direction; a run that translates nothing gives its generator ``G`` (else its first).
        Raises :class:`UsageError` when the run has no generator for ``direction``, and
        :class:`I2IError` naming the file for a damaged config.json or weights file.
        """
        doc = self.read_config() if doc is None else doc
        generators = self.generators(doc)
        available = self.directions(doc)
        if direction is None and available:
            direction = "AtoB" if "AtoB" in available else next(iter(available))
        if direction is None:
            name = "G" if "G" in generators else next(iter(generators))
        elif direction in available:
            name = available[direction]
        elif available:
            raise UsageError(f"{self.path} translates {', '.join(available)} only; drop --direction {direction}")
        else:
            raise UsageError(f"{self.path} is a {doc.get('mode')} run, which translates no direction; "
                             f"drop --direction {direction}")
        g = generators[name]
        state_dict, _ = load_weights(g["file"])
        source = f"{g['file']} (its network from {self.config_path}, 'generators.{name}.spec')"
        return StoredGenerator(name, g["spec"], state_dict, g["directions"], direction, source)

    def write_imported(self, net: torch.nn.Module, spec: dict, direction: str, source: str | Path) -> None:
        """Make this folder a run of one generator from elsewhere (``i2i import``): ``G.safetensors``
        holds ``net``'s weights, and config.json says it translates ``direction`` and where it came
        from (``source``)."""
        save_weights(self.path / "G.safetensors", net, spec)
        write_json(self.config_path, {
            "mode": "imported", "name": self.path.name, "source": str(source),
            "generators": {"G": {"file": "G.safetensors", "spec": spec, "directions": [direction]}},
        })

    def write_config(self, cfg, translators: dict[str, str], specs: dict[str, dict]) -> None:
        """``translators``: direction -> generator name; ``specs``: generator name -> create() args."""
        from ._version import __version__

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

    prev_state_path = property(lambda self: self.path / PREV_STATE_FILE)

    def save_state(self, state: dict) -> None:
        """Write ``state.pt`` atomically; the one it replaces becomes ``state.prev.pt``."""

        def write(tmp):
            torch.save(state, tmp)
            if self.state_path.is_file():
                os.replace(self.state_path, self.prev_state_path)

        atomic_write(self.state_path, write)

    def weight_files(self) -> list[Path]:
        """The generator weight files at the top of the run folder (the trained progress)."""
        return sorted(self.path.glob("*.safetensors")) if self.path.is_dir() else []

    def load_state(self, use: str | None = None) -> dict | None:
        """The checkpoint to resume from: ``state.pt``, else ``state.prev.pt`` with a warning when
        ``state.pt`` is missing or damaged; None when the run saved nothing yet (no checkpoint and
        no weight files: it restarts from step 0).

        Raises :class:`I2IError` when no checkpoint can be read but weight files hold trained
        progress: the message says why and how to use that progress (``use``: the command that
        uses the run, e.g. ``i2i translate IMAGES --model RUN``). It never advises deleting a file.
        """
        problems = []
        for path in (self.state_path, self.prev_state_path):
            if not path.is_file():
                if path == self.state_path:
                    problems.append(f"{path.name} is missing")
                continue
            try:
                state = _read_state(path)
            except I2IError as e:
                problems.append(f"{path.name} {e}")
                continue
            if problems:
                log.warning("%s: %s; continuing from the checkpoint before it (%s, step %d)",
                            self.path, "; ".join(problems), path.name, state["step"])
            return state
        if not self.prev_state_path.is_file() and not self.state_path.is_file() and not self.weight_files():
            return None
        use = use or f"i2i translate IMAGES --model {self.path}"
        kept = ", ".join(p.name for p in self.weight_files()) or "no weight files"
        raise I2IError(f"{self.path}: no checkpoint to continue training from ({'; '.join(problems)}); the trained "
                       f"weights are kept ({kept}): use them with {use}, or put back a copy of {STATE_FILE} "
                       "from a backup and resume again")

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


def torch_load(path: str | Path):
    """``torch.load(path, weights_only=True)`` on the CPU, for every PyTorch file i2i reads (checkpoints,
    reference generators, Inception weights): no code is ever unpickled, and torch's own messages
    (its advice to retry with ``weights_only=False``, notes on pickle protocols) never reach the user.

    Raises ValueError whose text is i2i's reason, starting lower case: pickled objects refused, or
    the file is damaged or not a plain file of tensors. OSError (no such file, permissions) passes
    through.
    """
    try:
        with warnings.catch_warnings():  # torch's notes on the file's pickle protocol are not for users
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):
            raise ValueError("it holds pickled objects, not only tensors: refused, since loading it could run "
                             "code") from None
        raise ValueError("it is damaged or not a plain PyTorch file of tensors: refused") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise ValueError(f"it is damaged or cut short ({_first_line(e)})") from None
    except Exception:  # noqa: BLE001  (whatever a damaged file makes the unpickler raise)
        raise ValueError("it is damaged or not a PyTorch file") from None


def _read_state(path: Path) -> dict:
    """One checkpoint file, read with :func:`torch_load` and checked for the fields a resume needs;
    :class:`I2IError` with a reason (starting lower case) otherwise."""
    try:
        state = torch_load(path)
    except (ValueError, OSError) as e:
        reason = str(e).removeprefix("it ") if isinstance(e, ValueError) else _first_line(e)
        raise I2IError(reason) from None
    ok = (isinstance(state, dict) and isinstance(state.get("nets"), dict)
          and all(isinstance(v, dict) for v in state["nets"].values())
          and isinstance(state.get("optimizers"), dict) and isinstance(state.get("rng"), dict)
          and all(isinstance(state.get(k), int) and not isinstance(state.get(k), bool) and state[k] >= 0
                  for k in ("step", "epoch", "epoch_step")))
    if not ok:
        raise I2IError("is damaged (it lacks the fields of an i2i checkpoint)")
    return state


def newest_run(checkpoints_dir: str | Path = "checkpoints") -> Path | None:
    """The most recently updated run folder under ``checkpoints_dir`` that has generator weights."""
    root = Path(checkpoints_dir)
    if not root.is_dir():
        return None
    runs = [p for p in root.iterdir() if (p / CONFIG_FILE).is_file() and any(p.glob("*.safetensors"))]
    return max(runs, key=lambda p: max(f.stat().st_mtime for f in p.glob("*.safetensors")), default=None)
