"""Every registered recipe, by being registered: trained two steps at tiny size, then used the way its task
says (translated, or sampled); what each recipe declares is what it does; options it does not read are
refused, and the advice to drop them works."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from conftest import ab_folder, random_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from i2i import modes
from i2i.cli import app
from i2i.config import TrainConfig
from i2i.config import typed_flag
from i2i.errors import UsageError

runner = CliRunner()
RECIPES = modes.names()


def data_for(cls, tmp_path) -> dict:
    """Tiny training data of the recipe's task: --a (and --b)."""
    if cls.task == "paired":
        return {"a": str(ab_folder(tmp_path / "ab", [(32, 32)] * 3))}
    if cls.task == "unpaired":
        folders = {}
        for side, seed in (("a", 0), ("b", 10)):
            folder = tmp_path / side
            folder.mkdir()
            for i in range(3):
                random_image(32, 32, seed=seed + i).save(folder / f"{i}.png")
            folders[side] = str(folder)
        return folders
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(4):
        random_image(32, 32, seed=i).save(folder / f"{i}.png")
    return {"a": str(folder)}


def tiny_options(cls, precision: str = "fp32") -> dict:
    """Small networks at 32 px, whichever of these options the recipe reads."""
    net_g = cls.defaults.get("net_g", TrainConfig.net_g)
    options = dict(ngf=4, ndf=4, load_size=36, crop_size=32, z_dim=8, image_size=32, batch_size=2, num_patches=16,
                   net_g="unet_32" if net_g.startswith("unet") else net_g, workers=0, seed=0, max_steps=2,
                   sample_every=1, device="cpu", precision=precision, threads=1, report=False)
    return {k: v for k, v in options.items() if k in cls.reads}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])  # bf16 whatever the CPU (emulated where not native)
@pytest.mark.parametrize("mode", RECIPES)
def test_every_recipe_trains_then_translates_or_samples(mode, precision, tmp_path):
    cls = modes.mode_class(mode)
    assert cls.name == mode and cls.title and cls.task in ("paired", "unpaired", "folder")
    data = data_for(cls, tmp_path)
    ck = tmp_path / "ck"
    args = ["train", "--mode", mode, "--name", "run", "--checkpoints-dir", str(ck)]
    for key, value in {**data, **tiny_options(cls, precision)}.items():
        args += [f"--{key.replace('_', '-')}", str(value)] if not isinstance(value, bool) else \
            [f"--{'' if value else 'no-'}{key.replace('_', '-')}"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = ck / "run"
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in logged) == 2
    grid = Image.open(sorted((run / "samples").glob("*.png"))[-1])
    # each row of the sample grid shows what the recipe says it shows
    assert grid.size[0] == len(cls.sample_columns) * 34 + 2
    assert modes.use_command(mode, run).split()[1] in ("sample", "translate")
    if cls.task == "folder":
        result = runner.invoke(app, ["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.png"),
                                     "--precision", precision])
        assert result.exit_code == 0, result.output
        assert Image.open(tmp_path / "s.png").size == (2 * 34 + 2, 2 * 34 + 2)
        return
    directions = json.loads((run / "config.json").read_text())["generators"]
    directions = sorted(d for g in directions.values() for d in g["directions"])
    assert directions, "a translation recipe exposes at least one direction"
    source = tmp_path / ("b" if directions == ["BtoA"] else "a") if cls.task == "unpaired" else tmp_path / "photos"
    if cls.task == "paired":
        source.mkdir()
        random_image(40, 28, seed=5).save(source / "p.png")
    for direction in directions:
        out = tmp_path / f"out_{direction}"
        result = runner.invoke(app, ["translate", str(source), "--model", str(run), "--direction", direction,
                                     "--out", str(out), "--precision", precision])
        assert result.exit_code == 0, result.output
        for src in source.glob("*.png"):
            assert Image.open(out / src.name).size == Image.open(src).size


@pytest.mark.parametrize("mode", RECIPES)
def test_sample_rows_match_the_declared_columns(mode, tmp_path):
    """What a recipe says its grid shows (the report's caption) is what sample_rows gives."""
    cls = modes.mode_class(mode)
    cfg = modes.make_config(mode, name="run", **data_for(cls, tmp_path), **tiny_options(cls))
    torch.manual_seed(0)
    mode_ = modes.create(cfg)
    batch = {"A": torch.rand(2, cfg.input_nc if cls.task != "folder" else cfg.output_nc, 32, 32) * 2 - 1,
             "B": torch.rand(2, cfg.output_nc, 32, 32) * 2 - 1, "label": torch.zeros(2, dtype=torch.long)}
    losses, out = mode_.train_step(batch)
    assert all(torch.isfinite(v) for v in losses.values()), losses
    rows = mode_.sample_rows(batch, out)
    assert rows and all(len(row) == len(cls.sample_columns) for row in rows)


UNREAD = [(mode, f.name) for mode in RECIPES for f in dataclasses.fields(TrainConfig)
          if f.metadata.get("cli", True) and f.name not in modes.ALWAYS_READ | modes.mode_class(mode).reads]


def test_every_recipe_leaves_some_options_unread():
    """The refusal below is exercised: each recipe has options it does not read."""
    assert {mode for mode, _ in UNREAD} == set(RECIPES)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(UNREAD), data=st.data())
def test_an_option_the_recipe_does_not_read_is_refused_and_dropping_it_works(case, data):
    mode, key = case
    cls = modes.mode_class(mode)
    field = next(f for f in dataclasses.fields(TrainConfig) if f.name == key)
    value = data.draw(st.sampled_from([v for v in (field.default, cls.defaults.get(key)) if v is not None] or ["x"]))
    base = {"a": "data", "name": "run", **({"b": "data_b"} if cls.task == "unpaired" else {})}
    flag = typed_flag(key, value)  # --no-x for a false boolean, as typed
    with pytest.raises(UsageError) as refused:
        modes.make_config(mode, **base, **{key: value})
    message = str(refused.value)
    assert message.startswith(f"{flag} is for ") and f"drop {flag}" in message and f"--mode {mode}" in message
    readers = [n for n in RECIPES if key in modes.mode_class(n).reads]
    assert all(n in message for n in readers)
    modes.make_config(mode, **base)  # the advice: without it, the same command works


# for each condition of a read_when, a value of its field under which the option is not read
NOT_READ = {"gan_loss": ["vanilla", "lsgan", "wgangp", "hinge"], "likelihood": ["bernoulli"], "learn_sigma": [True],
            "optimizer": ["rmsprop"], "init": ["kaiming"], "val": [None], "val_fraction": [0.0],
            "net_d": ["basic", "pixel"], "lambda_cycle": [0.0], "lambda_nce": [0.0]}
CONDITIONAL = [(mode, f.name) for mode in RECIPES for f in dataclasses.fields(TrainConfig)
               if f.metadata.get("read_when") and f.name in modes.mode_class(mode).reads]


def test_some_options_are_read_only_with_others():
    assert {key for _, key in CONDITIONAL} >= {"clip", "sigma", "beta1", "init_gain", "best_metric", "val_b",
                                               "n_layers_d", "lambda_identity", "num_patches"}


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from(CONDITIONAL), data=st.data())
def test_an_option_its_other_options_leave_unread_is_refused_and_dropping_it_works(case, data):
    """--clip without --gan-loss wgan, --sigma with --learn-sigma, --beta1 with --optimizer rmsprop ... were
    silently ignored."""
    mode, key = case
    cls = modes.mode_class(mode)
    field = next(f for f in dataclasses.fields(TrainConfig) if f.name == key)
    base = {"a": "data", "name": "run", **({"b": "data_b"} if cls.task == "unpaired" else {})}
    condition = data.draw(st.sampled_from(field.metadata["read_when"]))  # one of them, not met
    unread = {}
    for c in getattr(condition, "conditions", (condition,)):
        if c.key in cls.reads:
            unread[c.key] = data.draw(st.sampled_from(NOT_READ[c.key]))
    unread = {k: v for k, v in unread.items() if v is not None and (k != "val_fraction" or v)}
    cfg = dataclasses.replace(modes.make_config(mode, **base, **unread))
    assume_unread = any(c(cfg) for c in field.metadata["read_when"])
    if not assume_unread:  # the recipe's own defaults make it read (e.g. dual's --gan-loss)
        return
    value = field.default if field.default is not None else "x"
    flag = typed_flag(key, value)
    with pytest.raises(UsageError) as refused:
        modes.make_config(mode, **base, **unread, **{key: value})
    message = str(refused.value)
    assert message.startswith(f"{flag} is read only with ") and message.endswith(f": drop {flag}")
    modes.make_config(mode, **base, **unread)  # the advice: without it, the same command works


def test_the_cli_refuses_an_unread_option_before_any_work(tmp_path):
    result = runner.invoke(app, ["train", "--mode", "cycle", "--a", str(tmp_path), "--b", str(tmp_path),
                                 "--lambda-l1", "50", "--checkpoints-dir", str(tmp_path / "ck")])
    assert result.exit_code == 2
    assert "--lambda-l1 is for --mode pix2pix, not --mode cycle: drop --lambda-l1" in " ".join(result.output.split())
    assert not (tmp_path / "ck").exists()


def test_help_shows_each_recipes_defaults_and_readers(monkeypatch):
    import typer.rich_utils

    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 4000)  # one line per option
    text = " ".join(runner.invoke(app, ["train", "--help"]).output.replace("│", " ").split())
    for mode in RECIPES:
        assert f"{mode} ({modes.mode_class(mode).title})" in text
    assert "[default: unet_256; cycle: resnet_9blocks;" in text  # the dataclass's default, then a recipe's own
    assert "dual with --gan-loss wgan: 4" in text  # a loss preset
    assert "Identity L1 weight, times --lambda-cycle. Read only with a --lambda-cycle above 0. Read by: cycle. " \
           "[default: 0.5]" in text
    assert "[default: cut: on; fastcut: off]" in text  # read by two recipes: each one's own
    assert "(--no-flip: off)" in text
    assert "Clip critic weights to +-clip (the WGAN critic's Lipschitz bound). Read only with --gan-loss wgan." in text


# --- what the recipes declare is what they do ---------------------------------------------------------

def _count_d_updates(mode_, batch) -> int:
    calls = []
    step = mode_.optimizer_step
    mode_.optimizer_step = lambda name: (calls.append(name), step(name))
    mode_.train_step(batch)
    return calls.count("D")


@pytest.mark.parametrize("mode", [m for m in RECIPES if "n_critic" in modes.mode_class(m).reads])
def test_n_critic_is_honoured_by_every_recipe_that_reads_it(mode, tmp_path):
    """--n-critic was silently ignored by pix2pix and cycle."""
    cls = modes.mode_class(mode)
    cfg = modes.make_config(mode, name="run", n_critic=3, **data_for(cls, tmp_path), **tiny_options(cls))
    torch.manual_seed(0)
    batch = {"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1,
             "label": torch.zeros(1, dtype=torch.long)}
    assert _count_d_updates(modes.create(cfg), batch) == 3


@pytest.mark.parametrize("mode", [m for m in RECIPES if "clip" in modes.mode_class(m).reads])
def test_wgan_critics_are_clipped_in_every_recipe(mode, tmp_path):
    """--gan-loss wgan with --mode gan trained an unclipped critic."""
    cls = modes.mode_class(mode)
    cfg = modes.make_config(mode, name="run", gan_loss="wgan", clip=0.005, **data_for(cls, tmp_path),
                            **tiny_options(cls))
    torch.manual_seed(0)
    mode_ = modes.create(cfg)
    batch = {"A": torch.rand(2, 3, 32, 32) * 2 - 1, "B": torch.rand(2, 3, 32, 32) * 2 - 1,
             "label": torch.zeros(2, dtype=torch.long)}
    mode_.train_step(batch)
    critics = [net for name, net in mode_.nets.items() if name.startswith("D")]
    assert critics and all(p.abs().max() <= 0.005 for d in critics for p in d.parameters())


def test_runtime_and_world_are_constructor_arguments(tmp_path):
    from i2i.distributed import World
    from i2i.runtime import Runtime

    runtime, world = Runtime(torch.device("cpu"), dtype=torch.bfloat16), World()
    cfg = modes.make_config("pix2pix", name="run", **data_for(modes.mode_class("pix2pix"), tmp_path),
                            **tiny_options(modes.mode_class("pix2pix")))
    mode_ = modes.create(cfg, runtime=runtime, world=world)
    assert mode_.runtime is runtime and mode_.world is world
    with mode_.autocast():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
