"""--mode vae: the textbook terms, the reparameterisation, training, held-out bits/dim, commands."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from i2i.cli import app
from i2i.modes import make_config
from i2i.errors import UsageError
from i2i.losses import bernoulli_nll, gaussian_nll, kl_to_standard_normal
from i2i.modes import create
from i2i.nets.vae import reparameterise
from i2i.runs import Run
from i2i.train import train

runner = CliRunner()


def test_kl_matches_closed_form_of_two_gaussians():
    mu, logvar = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    want = torch.distributions.kl_divergence(q, p).sum(1)
    assert torch.allclose(kl_to_standard_normal(mu, logvar), want)
    assert torch.allclose(kl_to_standard_normal(torch.zeros(2, 4), torch.zeros(2, 4)), torch.zeros(2))


def test_likelihoods_match_torch_distributions():
    x, mean = torch.rand(2, 3, 4, 4, dtype=torch.float64), torch.rand(2, 3, 4, 4, dtype=torch.float64)
    log_sigma = torch.tensor([-2.0, -1.0, 0.5], dtype=torch.float64).view(1, 3, 1, 1)
    want = -torch.distributions.Normal(mean, log_sigma.exp().expand_as(mean)).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(gaussian_nll(x, mean, log_sigma), want)
    assert torch.allclose(gaussian_nll(x, mean, math.log(0.1)),
                          -torch.distributions.Normal(mean, 0.1).log_prob(x).flatten(1).sum(1))
    bits, logits = (x > 0.5).double(), torch.randn_like(x)
    want = -torch.distributions.Bernoulli(logits=logits).log_prob(bits).flatten(1).sum(1)
    assert torch.allclose(bernoulli_nll(bits, logits), want)


def test_reparameterisation_passes_gradients_to_mu_and_logvar():
    mu, logvar = torch.zeros(4, 3, requires_grad=True), torch.zeros(4, 3, requires_grad=True)
    z = reparameterise(mu, logvar)
    (z ** 2).sum().backward()
    assert mu.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0
    torch.manual_seed(0)
    draws = reparameterise(torch.full((20000, 1), 2.0), torch.full((20000, 1), math.log(0.25)))
    assert abs(draws.mean() - 2.0) < 0.02 and abs(draws.std() - 0.5) < 0.02


@pytest.fixture
def toy_images(tmp_path):
    """Smooth random 32x32 images in two class folders."""
    rng = np.random.default_rng(0)
    for cls in ("round", "square"):
        (tmp_path / "toy" / cls).mkdir(parents=True)
        for i in range(12):
            small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
            Image.fromarray(small).resize((32, 32), Image.BILINEAR).save(tmp_path / "toy" / cls / f"{i}.png")
    return tmp_path / "toy"


def vae_config(data, tmp_path, **kw):
    options = dict(a=str(data), name="v", checkpoints_dir=str(tmp_path / "ck"), image_size=32, ngf=8, z_dim=16,
                   batch_size=8, epochs=12, workers=0, seed=0, log_every=1, holdout=0.25)
    options.update(kw)
    return make_config("vae", **options)


def test_negative_elbo_falls_and_holdout_is_scored(toy_images, tmp_path):
    run = train(vae_config(toy_images, tmp_path, epochs=30))
    records = Run(run).read_log()
    steps = [r for r in records if not r.get("eval")]
    evals = [r for r in records if r.get("eval")]
    assert len(steps) == 30 * 3  # 18 training images at batch 8
    first, last = np.mean([-r["ELBO"] for r in steps[:5]]), np.mean([-r["ELBO"] for r in steps[-5:]])
    assert last < first
    assert evals[0]["step"] == 0 and evals[-1]["step"] == 90 and len(evals) == 31
    assert evals[-1]["val_bits_per_dim"] < evals[0]["val_bits_per_dim"]
    assert all(r["bits_per_dim"] == pytest.approx(-r["ELBO"] / (3 * 32 * 32) / math.log(2) + 8) for r in steps)


def test_beta_weights_the_kl(toy_images, tmp_path):
    batch = {"A": torch.rand(4, 3, 32, 32) * 2 - 1, "label": torch.zeros(4, dtype=torch.long)}
    for beta in (0.0, 4.0):
        cfg = vae_config(toy_images, tmp_path, beta=beta)
        torch.manual_seed(1)
        m = create(cfg, "cpu")
        losses, _ = m.train_step(batch)
        assert float(losses["loss"]) == pytest.approx(float(losses["recon_nll"] + beta * losses["KL"]), rel=1e-5)


def test_bernoulli_and_learned_sigma(toy_images, tmp_path):
    batch = {"A": torch.rand(4, 3, 32, 32) * 2 - 1, "label": torch.zeros(4, dtype=torch.long)}
    m = create(vae_config(toy_images, tmp_path, likelihood="bernoulli"), "cpu")
    assert set(m.targets(batch["A"]).unique().tolist()) <= {0.0, 1.0}
    m = create(vae_config(toy_images, tmp_path, learn_sigma=True), "cpu")
    before = m.G.log_sigma.detach().clone()
    m.train_step(batch)
    assert not torch.equal(before, m.G.log_sigma.detach())


def test_conditional_vae_commands(toy_images, tmp_path):
    run = train(vae_config(toy_images, tmp_path, conditional=True, epochs=1))
    result = runner.invoke(app, ["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.png"), "--label", "round"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "s.png").size == (2 * 34 + 2, 2 * 34 + 2)
    result = runner.invoke(app, ["sample", str(run), "--out", str(tmp_path / "t.png"), "--label", "triangle"])
    assert result.exit_code == 2 and "'triangle' is not a class" in result.output
    result = runner.invoke(app, ["reconstruct", str(run), str(toy_images / "round"), "--out", str(tmp_path / "rec"),
                                 "--label", "round"])
    assert result.exit_code == 0, result.output
    recs = sorted((tmp_path / "rec").glob("*.png"))
    assert len(recs) == 12 and Image.open(recs[0]).size == (2 * 34 + 2, 34 + 2)  # input | reconstruction
    a, b = toy_images / "round" / "0.png", toy_images / "square" / "1.png"
    result = runner.invoke(app, ["interpolate", str(run), "--images", str(a), str(b), "--steps", "5",
                                 "--label", "round", "--out", str(tmp_path / "i.png")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "i.png").size == (5 * 34 + 2, 34 + 2)
    result = runner.invoke(app, ["translate", str(toy_images), "--model", str(run)])
    assert result.exit_code == 2 and "i2i reconstruct" in " ".join(result.output.split())


def test_vae_options_are_checked(toy_images, tmp_path):
    with pytest.raises(UsageError, match="--likelihood must be"):
        vae_config(toy_images, tmp_path, likelihood="poisson")
    with pytest.raises(UsageError, match="--holdout"):
        vae_config(toy_images, tmp_path, holdout=1.0)


def test_vaegan_step_trains_encoder_decoder_and_critic_on_their_own_losses(toy_images, tmp_path):
    cfg = make_config("vaegan", a=str(toy_images), name="vg", checkpoints_dir=str(tmp_path / "ck"), image_size=32,
                      ngf=8, ndf=8, z_dim=16, batch_size=4, workers=0, seed=0)
    torch.manual_seed(0)
    m = create(cfg, "cpu")
    batch = {"A": torch.rand(4, 3, 32, 32) * 2 - 1, "label": torch.zeros(4, dtype=torch.long)}
    before = {"E": [p.clone() for p in m.encoder_params], "G": [p.clone() for p in m.decoder_params],
              "D": [p.clone() for p in m.D.parameters()]}
    losses, out = m.train_step(batch)
    assert {"D", "KL", "feature", "G_GAN"} <= set(losses)
    after = {"E": m.encoder_params, "G": m.decoder_params, "D": list(m.D.parameters())}
    for name in before:
        assert any(not torch.equal(p, q) for p, q in zip(before[name], after[name])), name
    assert out["recon"].shape == out["prior"].shape == (4, 3, 32, 32)


def test_vaegan_run_samples_and_reconstructs(toy_images, tmp_path):
    run = train(make_config("vaegan", a=str(toy_images), name="vg", checkpoints_dir=str(tmp_path / "ck"), image_size=32,
                            ngf=8, ndf=8, z_dim=16, batch_size=4, workers=0, seed=0, max_steps=2))
    result = runner.invoke(app, ["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["reconstruct", str(run), str(toy_images / "round" / "0.png"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0 and (tmp_path / "r" / "0.png").is_file()


def test_vaegan_encoder_gets_no_gan_gradient(toy_images, tmp_path):
    """Scaling the GAN term changes the decoder's update but not the encoder's."""
    cfg = make_config("vaegan", a=str(toy_images), name="vg", checkpoints_dir=str(tmp_path / "ck"), image_size=32,
                      ngf=8, ndf=8, z_dim=16, batch_size=4, workers=0, seed=0)
    batch = {"A": torch.rand(4, 3, 32, 32) * 2 - 1, "label": torch.zeros(4, dtype=torch.long)}
    results = []
    for scale in (1.0, 1000.0):
        torch.manual_seed(0)
        m = create(cfg, "cpu")
        g = m.adversarial.g
        m.adversarial.g = lambda critic, fake, g=g, scale=scale: scale * g(critic, fake)
        torch.manual_seed(1)
        m.train_step(batch)
        results.append(([p.detach().clone() for p in m.encoder_params], [p.detach().clone() for p in m.decoder_params]))
    (enc1, dec1), (enc2, dec2) = results
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(enc1, enc2))
    assert any(not torch.allclose(a, b, atol=1e-7) for a, b in zip(dec1, dec2))


def test_vae_encoder_reads_sixteen_bit_files_by_the_numeric_rule(tmp_path):
    """reconstruct and interpolate --images read a file as training does: 16-bit values v/65535,
    not rounded to 8 bits."""
    import numpy as np
    from PIL import Image

    from i2i.generate import LatentGenerator, load_square

    values = np.array([[200, 4000], [30000, 65535]], dtype=np.uint16).repeat(16, 0).repeat(16, 1)
    Image.fromarray(values).save(tmp_path / "deep.png")
    from i2i import nets
    from i2i.modes.vae import vae_spec

    cfg = make_config("vae", a=".", name="v", image_size=32, ngf=4, z_dim=4, input_nc=1, output_nc=1)
    x = load_square(LatentGenerator(nets.create(**vae_spec(cfg)), 4, [], "run"), tmp_path / "deep.png")
    assert x.shape == (1, 1, 32, 32)
    assert torch.allclose(x[0, 0, ::16, ::16], torch.tensor([[200, 4000], [30000, 65535]]) / 65535 * 2 - 1, atol=1e-6)
