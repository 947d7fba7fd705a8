"""``--precision auto`` on a CPU with native bf16 settles on bf16 or fp32 by measuring the workload
(i2i/autoprecision.py): the faster wins, the answer is cached, and measuring changes nothing."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from i2i import autoprecision, nets
from i2i.autoprecision import settle
from i2i.runtime import resolve


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("I2I_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "precision.json"


@pytest.fixture
def native_bf16(monkeypatch):
    monkeypatch.setenv("I2I_CPU_BF16", "1")


def tiny_unet():
    torch.manual_seed(0)
    return nets.create("unet_32", in_channels=3, out_channels=3, ngf=4, norm="batch", dropout=False)


shapes: list[tuple] = []  # the shapes fake_timings was asked to measure at, newest last


def fake_timings(monkeypatch, bf16: float, fp32: float) -> list:
    calls = []

    def probe(candidates, nets_, shape, training, make_pass=None):
        assert candidates["bf16"].bf16 and not candidates["fp32"].bf16
        calls.extend([True, False])
        shapes.append(tuple(shape))
        return {"bf16": bf16, "fp32": fp32}

    monkeypatch.setattr(autoprecision, "probe_seconds", probe)
    return calls


@settings(max_examples=30, deadline=None)
@given(bf16=st.floats(1e-4, 10), fp32=st.floats(1e-4, 10), training=st.booleans(), side=st.sampled_from([32, 64]))
def test_the_faster_precision_wins_and_is_cached(bf16, fp32, training, side, tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("I2I_CPU_BF16", "1")
        monkeypatch.setenv("I2I_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        calls = fake_timings(monkeypatch, bf16, fp32)
        auto = resolve("cpu", "auto", threads=1, training=training)
        assert auto.auto and auto.bf16
        shape = (1, 3, side, side)
        chosen = settle(auto, {"G": tiny_unet()}, shape, training)
        assert not chosen.auto and chosen.bf16 == (fp32 >= 0.9 * bf16)  # fp32 only when 10% faster
        if not chosen.bf16:
            assert chosen == auto.fp32_alternative(training) and not chosen.channels_last
            assert chosen.nnpack == (not training) and chosen.fast_layers
        assert sorted(calls) == [False, True]
        again = settle(auto, {"G": tiny_unet()}, shape, training)  # from the cache: no second measurement
        assert again == chosen and len(calls) == 2


def test_the_log_says_what_was_chosen_and_why(native_bf16, fresh_cache, monkeypatch, caplog):
    fake_timings(monkeypatch, bf16=0.5, fp32=0.25)
    auto = resolve("cpu", "auto", threads=1, training=True)
    with caplog.at_level(logging.INFO, logger="i2i.autoprecision"):
        settle(auto, {"G": tiny_unet()}, (1, 3, 32, 32), training=True)
        settle(auto, {"G": tiny_unet()}, (1, 3, 32, 32), training=True)
    measuring, first, second = [r.getMessage() for r in caplog.records]  # said before a pause of up to a minute
    assert "measuring bf16 against fp32 on the network at 1x3x32x32" in measuring
    assert "fp32 for training of G at 1x3x32x32" in first and "bf16 0.500 s, fp32 0.250 s" in first
    assert "cached in" in second and str(fresh_cache) in second


def _entry_key(monkeypatch, tmp_path) -> str:
    """The cache key of the tiny U-Net at 32x32 inference, found by letting settle write it once."""
    with monkeypatch.context() as m:
        m.setenv("I2I_CACHE_DIR", str(tmp_path / "probe"))
        fake_timings(m, bf16=0.1, fp32=0.2)
        settle(resolve("cpu", "auto", threads=1), {"G": tiny_unet()}, (1, 3, 32, 32), False)
        (key,) = json.loads((tmp_path / "probe" / "precision.json").read_text())
    return key


@settings(max_examples=25, deadline=None)
@given(damage=st.one_of(
    st.just("{not json"), st.just("[]"), st.just("null"),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["precision", "seconds", "bf16",
                                                                                      "fp32", "x"]), c, max_size=3),
                 max_leaves=8).map(lambda entry: ("entry", entry))))
def test_a_damaged_cache_is_measured_again(damage, tmp_path_factory):
    """Whatever the cache file holds, a file that is not JSON or an entry settle did not write, the
    choice is measured again and the entry rewritten."""
    tmp = tmp_path_factory.mktemp("damaged")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("I2I_CPU_BF16", "1")
        key = _entry_key(monkeypatch, tmp)
        monkeypatch.setenv("I2I_CACHE_DIR", str(tmp / "cache"))
        cache = tmp / "cache" / "precision.json"
        cache.parent.mkdir(parents=True)
        cache.write_text(json.dumps({key: damage[1]}) if isinstance(damage, tuple) else damage)
        valid = (isinstance(damage, tuple) and isinstance(damage[1], dict) and damage[1].get("precision") in
                 ("bf16", "fp32") and isinstance(damage[1].get("seconds"), dict) and
                 all(type(damage[1]["seconds"].get(k)) in (int, float) for k in ("bf16", "fp32")))
        calls = fake_timings(monkeypatch, bf16=0.1, fp32=0.2)
        chosen = settle(resolve("cpu", "auto", threads=1), {"G": tiny_unet()}, (1, 3, 32, 32), False)
        if valid:  # an entry of the right shape is believed
            assert calls == [] and chosen.bf16 == (damage[1]["precision"] == "bf16")
        else:
            assert len(calls) == 2 and chosen.bf16
            assert json.loads(cache.read_text())[key]["precision"] == "bf16"


def test_an_unwritable_cache_folder_only_costs_a_measurement(native_bf16, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("I2I_CACHE_DIR", str(tmp_path / "file"))
    calls = fake_timings(monkeypatch, bf16=0.2, fp32=0.1)
    for _ in range(2):
        assert not settle(resolve("cpu", "auto", threads=1), {"G": tiny_unet()}, (1, 3, 32, 32), False).bf16
    assert len(calls) == 4


def test_a_different_shape_or_network_is_measured_anew(native_bf16, fresh_cache, monkeypatch):
    calls = fake_timings(monkeypatch, bf16=0.1, fp32=0.2)
    auto = resolve("cpu", "auto", threads=1)
    settle(auto, {"G": tiny_unet()}, (1, 3, 32, 32), False)
    settle(auto, {"G": tiny_unet()}, (1, 3, 64, 64), False)
    settle(auto, {"G": nets.create("resnet_6blocks", ngf=4)}, (1, 3, 64, 64), False)
    assert len(calls) == 6


@pytest.mark.parametrize("setting", ["fp32", "bf16", "auto without native bf16"])
def test_no_measurement_unless_auto_on_a_native_bf16_cpu(setting, fresh_cache, monkeypatch):
    monkeypatch.setenv("I2I_CPU_BF16", "0" if setting.startswith("auto") else "1")
    calls = fake_timings(monkeypatch, bf16=0.1, fp32=0.2)
    runtime = resolve("cpu", setting.split()[0], threads=1)
    assert not runtime.auto
    assert settle(runtime, {"G": tiny_unet()}, (1, 3, 32, 32), False) is runtime
    assert calls == [] and not fresh_cache.exists()


@pytest.mark.parametrize("training", [True, False])
def test_measuring_leaves_the_network_and_random_state_alone(training, native_bf16, fresh_cache):
    net = tiny_unet().train(training)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    types = [type(m) for m in net.modules()]
    rng = torch.get_rng_state()
    chosen = settle(resolve("cpu", "auto", threads=1, training=training), {"G": net}, (1, 3, 32, 32), training)
    assert chosen.dtype in (torch.float32, torch.bfloat16)
    assert torch.equal(torch.get_rng_state(), rng)
    assert [type(m) for m in net.modules()] == types and net.training == training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.is_contiguous() and p.dtype == torch.float32 for p in net.parameters())
    (entry,) = json.loads(fresh_cache.read_text()).values()
    assert entry["precision"] in ("bf16", "fp32") and set(entry["seconds"]) == {"bf16", "fp32"}


def test_training_and_translate_run_in_the_settled_precision(native_bf16, fresh_cache, monkeypatch, aligned_dir,
                                                             tmp_path, caplog):
    from conftest import tiny_config

    from i2i.train import train
    from i2i.translator import load_translator

    fake_timings(monkeypatch, bf16=0.5, fp32=0.25)
    with caplog.at_level(logging.INFO):
        run = train(tiny_config(aligned_dir, tmp_path, precision="auto", device="cpu", threads=1, max_steps=1))
    assert any("precision auto: fp32 for training of D, G" in r.getMessage() for r in caplog.records)
    assert any("cpu, fp32" in r.getMessage() for r in caplog.records if "step" in r.getMessage())
    translator = load_translator(run, runtime=resolve("cpu", "auto", threads=1))
    assert not translator.runtime.bf16 and next(translator.net.parameters()).dtype == torch.float32
    fake_timings(monkeypatch, bf16=0.1, fp32=0.25)
    fresh_cache.unlink()
    translator = load_translator(run, runtime=resolve("cpu", "auto", threads=1))
    assert translator.runtime.bf16 and next(translator.net.parameters()).dtype == torch.bfloat16

    from test_cli import invoke  # the CLI names the precision it settled on, not the flags' guess

    fake_timings(monkeypatch, bf16=0.5, fp32=0.25)
    fresh_cache.unlink()
    result = invoke("translate", str(aligned_dir), "--model", str(run), "--out", str(tmp_path / "out"),
                    "--precision", "auto", "--threads", "1", "--ab")
    assert result.exit_code == 0, result.output
    assert "cpu, fp32" in result.output and "bf16" not in result.output.split("model:")[1].splitlines()[0]


def test_a_failed_measurement_keeps_bf16_and_does_not_stop_the_work(native_bf16, fresh_cache, caplog):
    auto = resolve("cpu", "auto", threads=1)
    with caplog.at_level(logging.WARNING, logger="i2i.autoprecision"):
        chosen = settle(auto, {"G": tiny_unet()}, (1, 3, 20, 20), False)  # not a multiple of 32: the U-Net fails
    assert chosen == auto.settled() and "measuring at 1x3x20x20 failed" in caplog.text
    assert not fresh_cache.exists()


@pytest.mark.parametrize("preprocess, load_size", [("resize_and_crop", 36), ("none", 40), ("none", 70), ("none", 286),
                                                   ("scale_width", 20), ("scale_width", 64)])
def test_training_measures_at_the_shape_it_trains_at(preprocess, load_size, native_bf16, fresh_cache, monkeypatch,
                                                     aligned_dir, tmp_path):
    """With a crop, the crop; without one, the size the data loader gives: --preprocess none keeps
    each image's own size (rounded to the generator's multiple), which --load-size does not cap (a
    probe at --load-size 286 once timed 256x256 steps for 32x32 images)."""
    from conftest import tiny_config

    from i2i import modes, preflight
    from i2i.distributed import World
    from i2i.train import settle_training_precision

    fake_timings(monkeypatch, bf16=0.1, fp32=0.2)
    cfg = tiny_config(aligned_dir, tmp_path, precision="auto", preprocess=preprocess, load_size=load_size,
                      batch_size=2)
    dataset = modes.mode_class(cfg.mode).make_dataset(cfg)
    auto = resolve("cpu", "auto", threads=1, training=True)
    settle_training_precision(cfg, modes.mode_class(cfg.mode)(cfg, runtime=auto), auto, World(), dataset)
    trained = tuple(dataset[0]["A"].shape[-2:])
    assert shapes[-1] == (2, 3, *trained) == (2, 3, *preflight.training_size(cfg, dataset))
    if "crop" in preprocess:
        assert trained == (cfg.crop_size, cfg.crop_size)


def test_recipes_from_noise_keep_bf16_and_say_why(native_bf16, fresh_cache, monkeypatch, tmp_path, caplog):
    from i2i import modes
    from i2i.distributed import World
    from i2i.train import settle_training_precision

    calls = fake_timings(monkeypatch, bf16=0.5, fp32=0.1)
    cfg = modes.make_config("gan", a=str(tmp_path), name="g", image_size=32, ngf=4, ndf=4, z_dim=8)
    auto = resolve("cpu", "auto", threads=1, training=True)
    with caplog.at_level(logging.INFO, logger="i2i.train"):
        chosen = settle_training_precision(cfg, modes.mode_class("gan")(cfg, runtime=auto), auto, World())
    assert chosen == auto.settled() and calls == []
    assert "not measured: --mode gan generates from noise" in caplog.text


def fake_clock_probe(monkeypatch, costs_of):
    """probe_seconds on a fake clock: ``costs_of(precision)`` lists each pass's seconds in order.
    Returns (the medians, the passes each precision ran)."""
    clock, ran = [0.0], {"bf16": 0, "fp32": 0}

    def make_pass(runtime):
        name = "bf16" if runtime.bf16 else "fp32"
        costs = iter(costs_of(name))

        def one_pass():
            ran[name] += 1
            clock[0] += next(costs)
        return one_pass

    monkeypatch.setattr(autoprecision, "time", type("Clock", (), {"perf_counter": staticmethod(lambda: clock[0])}))
    monkeypatch.setenv("I2I_CPU_BF16", "1")
    auto = resolve("cpu", "auto", threads=1, training=True)
    seconds = autoprecision.probe_seconds({"bf16": auto, "fp32": auto.fp32_alternative(True)}, {}, (1, 3, 8, 8),
                                          True, make_pass)
    return seconds, ran


WARM_FEWEST, WARM_MOST, WARM_SECONDS = autoprecision.PROBE_WARMUP
RUNS_FEWEST, RUNS_MOST, RUNS_SECONDS = autoprecision.PROBE_RUNS


@settings(max_examples=40, deadline=None)
@given(slow=st.lists(st.floats(0.01, WARM_SECONDS / WARM_MOST * 0.99), max_size=WARM_MOST),
       steady=st.fixed_dictionaries({"bf16": st.floats(1e-3, 1), "fp32": st.floats(1e-3, 1)}),
       spikes=st.lists(st.floats(1, 10), max_size=(RUNS_FEWEST - 1) // 2))
def test_warm_up_passes_and_rare_spikes_are_not_what_is_measured(slow, steady, spikes):
    """Short steps (facades' pix2pix: 0.2 s): however slow each precision's first passes (kernels
    built, memory grown: up to 2x on bf16 on the AVX512-BF16 CPU), up to all the warm-up's, and
    fewer than half the timed ones spiking, each precision is measured at its steady pass time."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        seconds, _ = fake_clock_probe(monkeypatch, lambda name: slow + spikes + [steady[name]] * 50)
    assert seconds == pytest.approx(steady)


@settings(max_examples=40, deadline=None)
@given(step=st.fixed_dictionaries({"bf16": st.floats(1e-3, 30), "fp32": st.floats(1e-3, 30)}))
def test_the_probe_takes_fewer_passes_the_longer_a_step(step):
    """Each phase runs its fewest passes, then more only while a precision has spent less than the
    phase's seconds, up to its most: CycleGAN's seconds-long steps are not timed eight times each."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        seconds, ran = fake_clock_probe(monkeypatch, lambda name: [step[name]] * 50)
    assert seconds == pytest.approx(step)
    fastest = min(step.values())  # a phase goes on until both have spent its seconds
    for name in ran:
        warm = min(WARM_MOST, max(WARM_FEWEST, -(-WARM_SECONDS // fastest)))
        timed = min(RUNS_MOST, max(RUNS_FEWEST, -(-RUNS_SECONDS // fastest)))
        assert WARM_FEWEST + RUNS_FEWEST <= ran[name] <= WARM_MOST + RUNS_MOST
        assert ran[name] == pytest.approx(warm + timed, abs=1)  # the float sums may land either side of a bound


@pytest.mark.parametrize("mode", sorted(__import__("i2i.modes", fromlist=["x"]).translation_names()))
def test_training_times_whole_steps_of_a_copy_of_every_translation_recipe(mode, native_bf16, fresh_cache,
                                                                          monkeypatch, tmp_path):
    """Generators alone misjudge a training step (unet_128's passes tied while whole pix2pix steps
    ran 1.5x faster in bf16): every recipe is measured on whole steps of a recipe built for each
    precision, every network in the cache key, and the run's own networks and random streams untouched."""
    import random

    from test_recipes import data_for, tiny_options

    from i2i import modes
    from i2i.distributed import World
    from i2i.train import settle_training_precision

    monkeypatch.setattr(autoprecision, "PROBE_WARMUP", (1, 1, 0.0))
    monkeypatch.setattr(autoprecision, "PROBE_RUNS", (1, 1, 0.0))
    cls = modes.mode_class(mode)
    cfg = modes.make_config(mode, name="run", **data_for(cls, tmp_path), **tiny_options(cls, precision="auto"))
    auto = resolve("cpu", "auto", threads=1, training=True)
    run_mode = cls(cfg, runtime=auto)
    before = {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in run_mode.nets.items()}
    stepped = []
    real_step = cls.train_step
    monkeypatch.setattr(cls, "train_step", lambda self, batch: stepped.append((self, batch)) or real_step(self, batch))
    rng, python_rng = torch.get_rng_state(), random.getstate()
    chosen = settle_training_precision(cfg, run_mode, auto, World())
    assert not chosen.auto and run_mode.runtime == chosen
    probes = {id(m) for m, _ in stepped}
    assert len(stepped) == 4 and len(probes) == 2 and id(run_mode) not in probes  # a copy per precision, 2 steps each
    assert all(b["A"].shape == (2, cfg.input_nc, 32, 32) and b["B"].shape[1] == cfg.output_nc for _, b in stepped)
    assert torch.equal(torch.get_rng_state(), rng) and random.getstate() == python_rng
    for name, net in run_mode.nets.items():
        assert all(torch.equal(before[name][k], v) for k, v in net.state_dict().items())
    (key,) = json.loads(fresh_cache.read_text())
    assert set(json.loads(key)["nets"]) == set(run_mode.nets) and json.loads(key)["probe"] == "step"


def test_recipes_with_the_same_networks_are_measured_apart(native_bf16, fresh_cache, monkeypatch, aligned_dir,
                                                           tmp_path):
    """The cache key holds the options a step's time depends on: a wgangp critic with 5 steps is
    not timed as vanilla pix2pix with the same networks; run-control options share the answer."""
    from conftest import tiny_config

    from i2i import modes
    from i2i.distributed import World
    from i2i.train import settle_training_precision

    calls = fake_timings(monkeypatch, bf16=0.1, fp32=0.2)
    auto = resolve("cpu", "auto", threads=1, training=True)
    for options in ({}, {"gan_loss": "wgangp", "n_critic": 5}, {"seed": 7, "max_steps": 9, "name": "other"}):
        cfg = tiny_config(aligned_dir, tmp_path, precision="auto", **options)
        settle_training_precision(cfg, modes.mode_class(cfg.mode)(cfg, runtime=auto), auto, World())
    assert len(calls) == 4  # two measurements: the third run shares the first's
    assert len(json.loads(fresh_cache.read_text())) == 2
