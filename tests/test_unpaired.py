"""CycleGAN and DualGAN: data, the image pool, the steps, runs in both directions."""

import json

import pytest
import torch

from i2i.modes import make_config
from i2i.data.transforms import Augment
from i2i.data.unpaired import UnpairedDataset
from i2i.errors import UsageError
from i2i.image_pool import ImagePool
from i2i.modes import create
from i2i.train import train
from i2i.translator import load_translator

from conftest import tiny_config, tiny_unpaired_config


def test_unpaired_dataset_length_random_and_serial_b(unpaired_dirs):
    a, b = unpaired_dirs
    ds = UnpairedDataset(a, b, transform=Augment("resize_and_crop", 36, 32, True, 4))
    assert len(ds) == 5  # max(|A|, |B|)
    item = ds[(4, 123)]
    assert item["A"].shape == item["B"].shape == (3, 32, 32)  # grayscale A converted, B cropped
    assert item["path"].endswith("a4.png")
    draws = {tuple(ds[(0, seed)]["B"].flatten()[:4].tolist()) for seed in range(12)}
    assert len(draws) > 3  # B is drawn at random (and augmented) per sample seed
    serial = UnpairedDataset(a, b, serial=True)
    assert torch.equal(serial[(3, 1)]["B"], serial[(0, 2)]["B"])  # B[3 mod 3] == B[0]
    with pytest.raises(UsageError, match="--b .*empty_missing: no such folder"):
        UnpairedDataset(a, b.parent.parent / "empty_missing")
    (a.parent / "empty").mkdir()
    with pytest.raises(UsageError, match="--a .*empty: no images found"):
        UnpairedDataset(a.parent / "empty", b)


def test_pool_fills_then_swaps_half_the_time():
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returned as they are
    assert len(pool.images) == 4
    swapped = 0
    for i in range(400):
        new = torch.full((1, 1, 1, 1), 100.0 + i)
        out = pool.query(new)
        swapped += int(out.item() != new.item())
        assert len(pool.images) == 4
    assert 160 < swapped < 240  # p = 0.5
    assert ImagePool(0).query(first) is first
    state = pool.state_dict()
    clone = ImagePool(1)
    clone.load_state_dict(state)
    assert clone.size == 4 and all(torch.equal(x, y) for x, y in zip(clone.images, pool.images))


def params(net):
    return [p.detach().clone() for p in net.parameters()]


def moved(before, net):
    return any(not torch.equal(p, q) for p, q in zip(before, net.parameters()))


@pytest.mark.parametrize("mode", ["cycle", "dual"])
def test_one_step_moves_all_four_nets(mode, unpaired_dirs, tmp_path):
    cfg = tiny_unpaired_config(unpaired_dirs, tmp_path, mode)
    m = create(cfg, "cpu")
    before = {k: params(v) for k, v in m.nets.items()}
    batch = {"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1}
    losses, out = m.train_step(batch)
    assert all(moved(before[k], v) for k, v in m.nets.items()), [k for k, v in m.nets.items() if not moved(before[k], v)]
    assert set(out) == {"fake_A", "fake_B", "rec_A", "rec_B"}
    rows = m.sample_rows(batch, out)
    assert len(rows) == 2 and all(len(r) == 3 for r in rows)  # real | fake | rec for A and for B


def test_cycle_defaults_and_identity_weight(unpaired_dirs, tmp_path):
    cfg = tiny_unpaired_config(unpaired_dirs, tmp_path)
    defaults = make_config("cycle", a="x", b="y", name="n")
    assert (defaults.net_g, defaults.norm, defaults.dropout, defaults.gan_loss) == ("resnet_9blocks", "instance", False, "lsgan")
    assert (defaults.lambda_cycle, defaults.lambda_identity, defaults.pool_size, defaults.lr) == (10, 0.5, 50, 2e-4)
    batch = {"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1}
    torch.manual_seed(0)
    losses, _ = create(cfg, "cpu").train_step(batch)
    assert {"G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B"} <= set(losses)
    cfg0 = tiny_unpaired_config(unpaired_dirs, tmp_path, lambda_identity=0)
    torch.manual_seed(0)
    m = create(cfg0, "cpu")
    calls = []
    m.G_A.register_forward_hook(lambda *a: calls.append(1))
    losses0, _ = m.train_step(batch)
    assert "idt_A" not in losses0 and "idt_B" not in losses0
    assert len(calls) == 2  # fake_B and rec_B only: no identity pass
    assert float(losses0["G"]) == pytest.approx(float(losses["G"] - losses["idt_A"] - losses["idt_B"]), rel=1e-5)


def test_dual_clipping_and_critic_steps(unpaired_dirs, tmp_path):
    cfg = tiny_unpaired_config(unpaired_dirs, tmp_path, "dual", gan_loss="wgan")
    assert (cfg.optimizer, cfg.lr, cfg.n_critic, cfg.clip) == ("rmsprop", 5e-5, 4, 0.01)
    m = create(cfg, "cpu")
    counts = {"D": 0, "G": 0}
    for name in counts:
        m.optimizers[name].register_step_post_hook(lambda *a, name=name: counts.__setitem__(name, counts[name] + 1))
    batch = {"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1}
    m.train_step(batch)
    assert counts == {"D": 4, "G": 1}
    for critic in m.discriminators:
        assert all(p.abs().max() <= 0.01 for p in critic.parameters())
    gp = tiny_unpaired_config(unpaired_dirs, tmp_path, "dual")
    assert (gp.gan_loss, gp.optimizer, gp.lr, gp.beta2, gp.n_critic, gp.norm_d, gp.lambda_cycle) == \
        ("wgangp", "adam", 1e-4, 0.9, 5, "instance", 500)
    losses, _ = create(gp, "cpu").train_step(batch)
    assert "D_A" in losses and "rec_A" in losses


def test_cycle_run_translates_both_ways_and_resumes_with_its_pool(unpaired_dirs, tmp_path):
    cfg = tiny_unpaired_config(unpaired_dirs, tmp_path, max_steps=3, sample_every=3, pool_size=2)
    run = train(cfg)
    doc = json.loads((run / "config.json").read_text())
    assert doc["generators"]["G_A"]["directions"] == ["AtoB"] and doc["generators"]["G_B"]["directions"] == ["BtoA"]
    assert load_translator(run).spec["in_channels"] == 3
    assert load_translator(run, "BtoA").source == str(run)
    x = torch.rand(1, 3, 32, 32)
    assert not torch.equal(load_translator(run, "AtoB")(x), load_translator(run, "BtoA")(x))
    state = torch.load(run / "state.pt", weights_only=True)
    assert len(state["extra"]["pools"]["fake_B"]["images"]) == 2
    assert (run / "samples" / "step_0000003.png").is_file()
    train(tiny_unpaired_config(unpaired_dirs, tmp_path, max_steps=5, pool_size=2), resume=True)
    assert torch.load(run / "state.pt", weights_only=True)["step"] == 5


def test_direction_btoa_swaps_folders(unpaired_dirs, tmp_path):
    cfg = tiny_unpaired_config(unpaired_dirs, tmp_path, "dual", direction="BtoA", max_steps=1, n_critic=1)
    run = train(cfg)
    doc = json.loads((run / "config.json").read_text())
    assert doc["generators"]["G_A"]["directions"] == ["BtoA"]
    ds = create(cfg, "cpu").make_dataset(cfg)
    assert "B" in str(ds.files_a[0]) and len(ds) == 5


def test_pix2pix_config_is_unchanged_by_unpaired_options(aligned_dir, tmp_path):
    cfg = tiny_config(aligned_dir, tmp_path)
    assert (cfg.gan_loss, cfg.lambda_l1, cfg.n_critic, cfg.optimizer, cfg.norm_d) == ("vanilla", 100, 1, "adam", None)


def test_serial_batches_take_a_in_order_too(unpaired_dirs, tmp_path, monkeypatch):
    """--serial-batches as the reference's: no shuffle, so step i trains on A[i] beside B[i mod |B|]."""
    import i2i.data.transforms as transforms

    made = []

    class Recording(transforms.EpochSampler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(transforms, "EpochSampler", Recording)
    for serial in (True, False):
        made.clear()
        train(tiny_unpaired_config(unpaired_dirs, tmp_path / str(serial), max_steps=1, serial_batches=serial))
        order = [index for index, _ in made[0]]
        assert (order == list(range(5))) == serial
