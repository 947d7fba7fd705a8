"""Training recipes, one file each: a recipe class owns everything about its recipe.

A recipe (a :class:`~i2i.modes.base.Mode` subclass) declares its name, its task (paired, unpaired
or one folder), its defaults and loss presets, the config fields it reads, its default validation
metric and what its sample grid shows (see the contract in :mod:`i2i.modes.base`). Everything
else (config, validation, eval, report, generate, the CLI) asks it through the functions here;
none of them compares mode names.

To add a recipe:

1. Write ``i2i/modes/<name>.py``: a subclass of ``AdversarialMode`` (GANs; the shared
   discriminator/generator step) or ``Mode``, with the class attributes of the contract,
   ``make_dataset``, and ``forward``/``d_loss``/``g_loss`` (or ``train_step``) and ``sample_rows``.
2. Add one line to :data:`IMPLEMENTED` below.
3. New networks go in ``i2i/nets/`` (see the contract in :mod:`i2i.nets`); new options are fields of
   :class:`~i2i.config.TrainConfig` with their help (``i2i train`` gets them from there).
4. ``tests/test_recipes.py`` trains, saves and uses every registered recipe at tiny size: run it.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

from ..config import TrainConfig, check_common, check_read, typed_flag
from ..errors import I2IError, UsageError

# mode name -> "module:Class" (imported when first asked for, so the CLI starts without torch)
IMPLEMENTED = {
    "pix2pix": "pix2pix:Pix2Pix",
    "cycle": "cycle:CycleGAN",
    "dual": "dual:DualGAN",
    "cut": "cut:CUT",
    "fastcut": "cut:FastCUT",
    "gan": "gan:GAN",
    "vae": "vae:VAE",
    "vaegan": "vaegan:VAEGAN",
}


def names() -> list[str]:
    """The registered recipes' names, in the order ``--help`` lists them."""
    return list(IMPLEMENTED)


def translation_names() -> list[str]:
    """The recipes that translate images (paired or unpaired), as opposed to those of one folder."""
    return [n for n in names() if mode_class(n).task != "folder"]


def mode_class(name: str):
    """The recipe class registered as ``name``; :class:`UsageError` naming the choices otherwise."""
    if not isinstance(name, str) or name not in IMPLEMENTED:
        raise UsageError(f"--mode {name!r} is not one of {', '.join(IMPLEMENTED)}")
    module, cls = IMPLEMENTED[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def create(cfg: TrainConfig, device="cpu", *, runtime=None, world=None):
    """Build the recipe ``cfg.mode`` names, its networks prepared for ``runtime`` (fast layers,
    channels_last; see :mod:`i2i.runtime`)."""
    mode = mode_class(cfg.mode)(cfg, device, runtime=runtime, world=world)
    if runtime is not None:
        runtime.prepare_mode(mode)
    return mode


def given_options(options: dict) -> dict:
    """The options actually given (None means "not given")."""
    return {k: v for k, v in options.items() if v is not None}


def make_config(mode: str, **options) -> TrainConfig:
    """Config for ``mode``: the dataclass defaults, then the recipe's defaults, then its preset for
    the chosen ``gan_loss``, then ``options`` (None means "not given" and keeps the default).

    Raises :class:`UsageError` for an option the recipe does not read, or does not read with these
    other options (it would be silently ignored), and for values that fail the checks
    (:func:`validate`).
    """
    cls = mode_class(mode)
    given = given_options(options)
    refuse_unread(cls, given)
    defaults = dict(cls.defaults)
    defaults.update(cls.loss_presets.get(given.get("gan_loss", defaults.get("gan_loss", "vanilla")), {}))
    cfg = TrainConfig.from_dict({**defaults, **given, "mode": mode})
    check_read(cfg, given)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Every check of ``cfg`` before any work: the common ones, then the recipe's own."""
    check_common(cfg)
    mode_class(cfg.mode).check(cfg)


# options that name the run rather than configure it: read by every recipe
ALWAYS_READ = frozenset({"mode", "name", "checkpoints_dir", "a", "classes"})


def refuse_unread(cls, given: dict) -> None:
    """:class:`UsageError` for the first given option that recipe ``cls`` does not read, naming the
    recipes that do."""
    for key, value in given.items():
        if key in ALWAYS_READ or key in cls.reads:
            continue
        flag = typed_flag(key, value)
        readers = [n for n in names() if key in mode_class(n).reads]
        translation = translation_names()
        if not readers:
            raise UsageError(f"{flag} is not an option of i2i train")
        who = (f"the translation modes ({', '.join(readers)})" if readers == translation
               else f"--mode {', '.join(readers)}")
        folder = f"; --mode {cls.name} learns from one folder, --a" if cls.task == "folder" else ""
        raise UsageError(f"{flag} is for {who}, not --mode {cls.name}{folder}: drop {flag}")


def run_task(doc: dict) -> str:
    """The task of the run whose config.json is ``doc``: "paired", "unpaired" or "folder" (an
    imported generator is used as a paired one unless its config says otherwise)."""
    mode = doc.get("mode")
    if isinstance(mode, str) and mode in IMPLEMENTED:
        return mode_class(mode).task
    task = doc.get("task", "paired")
    if task not in ("paired", "unpaired", "folder"):
        raise I2IError(f"field 'task' of the run's config.json is {task!r}, not paired, unpaired or folder")
    return task


def use_command(mode: str, run_dir: str | Path) -> str:
    """The command that uses a trained run: sampling for the one-folder recipes, else translation."""
    if mode in IMPLEMENTED and mode_class(mode).task == "folder":
        return f"i2i sample {run_dir}"
    return f"i2i translate IMAGES --model {run_dir}"


def option_help(key: str) -> str:
    """The help of ``i2i train --KEY``: the field's text, its defaults (the dataclass's and each
    recipe's own, loss presets included) and, when not every recipe reads it, which ones do."""
    field = next(f for f in dataclasses.fields(TrainConfig) if f.name == key)
    text = field.metadata["help"]
    recipes = [mode_class(n) for n in names()]
    readers = [r for r in recipes if key in ALWAYS_READ or key in r.reads]
    if field.metadata.get("default_help"):
        default = field.metadata["default_help"]
    else:
        unset = field.metadata.get("unset")  # what None means, e.g. "as --norm"

        def shown(value):
            return unset if value is None else _shown(value)

        values: dict[str | None, list[str]] = {}  # shown value -> who has it
        for r in readers:
            own = r.defaults.get("gan_loss", TrainConfig.gan_loss)
            values.setdefault(shown(r.loss_presets.get(own, {}).get(key, r.defaults.get(key, field.default))),
                              []).append(r.name)
            for loss, preset in r.loss_presets.items():
                if key in preset and loss != own:
                    values.setdefault(shown(preset[key]), []).append(f"{r.name} with --gan-loss {loss}")
        values.pop(None, None)
        common = shown(field.default)
        if not values:
            default = ""
        elif len(values) == 1:
            default = next(iter(values))
        elif len(values.get(common, ())) >= 2:  # the dataclass's, then the exceptions
            default = "; ".join([common] + [f"{', '.join(who)}: {v}" for v, who in values.items() if v != common])
        else:  # each recipe's own
            default = "; ".join(f"{', '.join(who)}: {v}" for v, who in values.items())
    if key == "mode":
        text += " " + ", ".join(f"{r.name} ({r.title})" for r in recipes) + "."
    notes: dict[str, list[str]] = {}
    for r in readers:
        if key in r.notes:
            notes.setdefault(r.notes[key], []).append(r.name)
    if notes:
        text += " " + "; ".join(f"{', '.join(who)}: {note}" for note, who in notes.items()) + "."
    conditions = field.metadata.get("read_when", ())
    if conditions:
        text += " Read only with " + " and ".join(c.text.removeprefix("only with ") for c in conditions) + "."
    if len(readers) < len(recipes):
        text += f" Read by: {', '.join(r.name for r in readers)}."
    return text + (f" [default: {default}]" if default else "")


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


