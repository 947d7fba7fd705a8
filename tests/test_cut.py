"""CUT and FastCUT (i2i/modes/cut.py): the authors' defaults, the identity loss and flip-equivariance,
the PatchNCE term's wiring, and the checks of --net-g and --nce-layers (whose advice is run)."""

from __future__ import annotations

import pytest
import torch

from i2i import modes
from i2i.errors import UsageError

TINY = dict(a="a", b="b", name="run", ngf=4, ndf=4, load_size=36, crop_size=32, num_patches=16)


def batch(n=1, size=32):
    return {"A": torch.rand(n, 3, size, size) * 2 - 1, "B": torch.rand(n, 3, size, size) * 2 - 1}


def test_the_authors_defaults():
    cut, fast = modes.make_config("cut", a="a", b="b", name="c"), modes.make_config("fastcut", a="a", b="b", name="f")
    for cfg in (cut, fast):
        assert (cfg.net_g, cfg.norm, cfg.gan_loss, cfg.init, cfg.dropout, cfg.nce_layers, cfg.num_patches, cfg.nce_t,
                cfg.lr, cfg.beta1, cfg.pool_size) == ("resnet_9blocks_antialias", "instance", "lsgan", "xavier", False,
                                                      "0,4,8,12,16", 256, 0.07, 2e-4, 0.5, 0)
    assert (cut.lambda_nce, cut.nce_idt, cut.flip_equivariance, cut.epochs, cut.epochs_decay) == (1, True, False, 200, 200)
    assert (fast.lambda_nce, fast.nce_idt, fast.flip_equivariance, fast.epochs, fast.epochs_decay) == (10, False, True, 150, 50)


def test_identity_nce_is_on_for_cut_and_off_for_fastcut():
    torch.manual_seed(0)
    losses, out = modes.create(modes.make_config("cut", **TINY)).train_step(batch())
    assert {"G_GAN", "NCE", "NCE_Y", "D"} <= set(losses) and "idt_B" in out
    losses, out = modes.create(modes.make_config("fastcut", **TINY)).train_step(batch())
    assert "NCE_Y" not in losses and "idt_B" not in out
    losses, out = modes.create(modes.make_config("cut", nce_idt=False, **TINY)).train_step(batch())
    assert "NCE_Y" not in losses


def test_the_generator_loss_is_gan_plus_the_mean_of_both_nce_terms():
    torch.manual_seed(0)
    losses, _ = modes.create(modes.make_config("cut", **TINY)).train_step(batch())
    assert torch.isclose(losses["G"], losses["G_GAN"] + (losses["NCE"] + losses["NCE_Y"]) / 2, rtol=1e-5)
    losses, _ = modes.create(modes.make_config("fastcut", flip_equivariance=False, **TINY)).train_step(batch())
    assert torch.isclose(losses["G"], losses["G_GAN"] + losses["NCE"], rtol=1e-5)


def test_fastcut_flips_the_input_half_the_steps():
    torch.manual_seed(0)
    mode = modes.create(modes.make_config("fastcut", **TINY))
    flips = []
    for _ in range(40):
        b = batch()
        with torch.no_grad():
            out = mode.forward(b)
            expected = mode.G(torch.flip(b["A"], [3]) if mode.flipped else b["A"])
        assert torch.allclose(out["fake_B"], expected, atol=1e-6)
        flips.append(mode.flipped)
    assert 10 <= sum(flips) <= 30
    cut = modes.create(modes.make_config("cut", **TINY))
    for _ in range(10):
        cut.forward(batch())
        assert not cut.flipped


def test_a_generator_without_feature_taps_is_refused_naming_one_with_them():
    with pytest.raises(UsageError) as refused:
        modes.make_config("cut", **{**TINY, "net_g": "unet_32"})
    message = str(refused.value)
    assert "--net-g unet_32 has no feature taps" in message
    choice = message.rsplit("choose one of ", 1)[1].split(", ")[0]
    modes.make_config("cut", **{**TINY, "net_g": choice})  # the advice works


@pytest.mark.parametrize("layers", ["", "a,b", "0,4,4", "-1,2", "0,4,99"])
def test_bad_nce_layers_are_refused_naming_the_option(layers):
    with pytest.raises(UsageError, match="--nce-layers"):
        modes.make_config("cut", **{**TINY, "nce_layers": layers})


def test_nce_layers_pick_the_taps_and_the_head_fits_them():
    cfg = modes.make_config("cut", **{**TINY, "nce_layers": "0,8,12"})
    mode = modes.create(cfg)
    assert mode.layers == [0, 8, 12]
    assert mode.F.in_channels == mode.G.feature_channels([0, 8, 12]) == [3, 16, 16]


def test_the_plain_reference_generator_works_too():
    torch.manual_seed(0)
    mode = modes.create(modes.make_config("cut", **{**TINY, "net_g": "resnet_6blocks", "nce_layers": "0,4,8"}))
    losses, out = mode.train_step(batch())
    assert out["fake_B"].shape == (1, 3, 32, 32) and torch.isfinite(losses["NCE"])


def test_a_cut_run_works_with_every_command(tmp_path):
    """Checkpoint, resume, translate, export, eval, report, serve's translation and the API take a CUT run
    like any other."""
    from conftest import random_image
    from PIL import Image
    from typer.testing import CliRunner

    from i2i import load
    from i2i.cli import app
    from i2i.evaluate import evaluate
    from i2i.export import export
    from i2i.report import write_report
    from i2i.serve import translate_image
    from i2i.train import resume_config, train

    folders = {}
    for side, seed in (("a", 0), ("b", 10)):
        folders[side] = tmp_path / side
        folders[side].mkdir()
        for i in range(3):
            random_image(36, 32, seed=seed + i).save(folders[side] / f"{i}.png")
    options = {**TINY, "a": str(folders["a"]), "b": str(folders["b"]), "checkpoints_dir": str(tmp_path / "ck"),
               "workers": 0, "seed": 0, "max_steps": 2, "device": "cpu", "precision": "fp32", "save_every": 1}
    run = train(modes.make_config("fastcut", **options))
    assert {"G.safetensors", "state.pt"} <= {p.name for p in run.iterdir()}
    run = train(resume_config(run, max_steps=3), resume=True)  # resumed from the checkpoint: F and all
    assert '"step": 3' in (run / "log.jsonl").read_text()

    result = CliRunner().invoke(app, ["translate", str(folders["a"]), "--model", str(run), "--out",
                                      str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "0.png").size == (36, 32)
    assert export(run, "pt2", tmp_path / "g.pt2")["max_abs_diff"] <= 1e-3
    scores = evaluate(run, str(folders["a"]), str(folders["b"]))["scores"]
    assert set(scores) == {"identity_L1_B", "images"} and scores["images"] == 6  # one way: no round trip
    assert write_report(run).is_file()
    model = load(run, device="cpu", precision="fp32")
    image = Image.open(folders["a"] / "1.png")
    assert model(image).size == translate_image(model, image, None).size == (36, 32)


@pytest.mark.parametrize("name", ["cut", "fastcut"])
def test_decay_epochs_see_whole_images_as_the_authors_code(name, tmp_path, monkeypatch):
    """Before --epochs, random load_size -> crop_size crops; in the decay epochs each image is resized
    straight to crop_size and seen whole (the authors' unaligned_dataset.py); the loop tells the
    recipe each epoch."""
    import numpy as np

    from conftest import random_image
    from i2i.data.transforms import resize
    from i2i.train import train

    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        for i in range(2):
            random_image(48, 48, seed=i + (side == "b") * 10).save(tmp_path / side / f"{i}.png")
    cfg = modes.make_config(name, **{**TINY, "a": str(tmp_path / "a"), "b": str(tmp_path / "b"), "flip": False,
                                     "epochs": 2, "epochs_decay": 2, "checkpoints_dir": str(tmp_path / "ck"),
                                     "workers": 0, "precision": "fp32", "report": False})
    cls = modes.mode_class(name)
    data = cls.make_dataset(cfg)
    whole = torch.from_numpy(resize(np.asarray(random_image(48, 48, seed=0)), 32, 32).copy()).permute(2, 0, 1) / 127.5 - 1
    for epoch in range(4):
        cls.set_epoch(cfg, data, epoch >= cfg.epochs)
        crops = [data[(0, seed)]["A"] for seed in range(6)]
        if epoch < cfg.epochs:
            assert len({float(c.sum()) for c in crops}) > 1  # random crops of the 36-pixel resize
        else:
            assert all(torch.allclose(c, whole, atol=1e-6) for c in crops)

    seen = []
    original = cls.set_epoch
    monkeypatch.setattr(cls, "set_epoch",
                        staticmethod(lambda cfg, dataset, decaying: seen.append(decaying) or original(cfg, dataset, decaying)))
    train(cfg)
    assert seen == [False, False, True, True]
