"""Adversarial losses against textbook formulas computed here, and the WGAN-GP gradient penalty."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from i2i.losses import GAN_LOSSES, AdversarialLoss, gradient_penalty, patch_nce


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny ops run faster on one thread


def identity(x):
    """A "critic" whose scores are its input: the tests hand-make the scores."""
    return x


def scores():
    torch.manual_seed(0)
    real = torch.randn(4, 1, 3, 3) * 2 + 0.5
    fake = torch.randn(4, 1, 3, 3) * 2 - 0.5
    return real, fake


def log_sigmoid(x):  # log D on logits, written out
    return torch.log(1 / (1 + torch.exp(-x.double())))


def textbook(kind, real, fake):
    """(D loss without penalty, D real term, D fake term, G loss) for hand-made scores."""
    if kind in ("vanilla", "minimax"):
        d_real = -log_sigmoid(real).mean()  # -log D(x)
        d_fake = -torch.log(1 - torch.exp(log_sigmoid(fake))).mean()  # -log(1 - D(G(z)))
        if kind == "vanilla":
            g = -log_sigmoid(fake).mean()  # non-saturating: -log D(G(z))
        else:
            g = torch.log(1 - torch.exp(log_sigmoid(fake))).mean()  # the original: log(1 - D(G(z)))
    elif kind == "lsgan":
        d_real = ((real.double() - 1) ** 2).mean()
        d_fake = (fake.double() ** 2).mean()
        g = ((fake.double() - 1) ** 2).mean()
    elif kind in ("wgan", "wgangp"):
        d_real, d_fake = -real.double().mean(), fake.double().mean()
        g = -fake.double().mean()
    elif kind == "hinge":
        d_real = torch.clamp(1 - real.double(), min=0).mean()
        d_fake = torch.clamp(1 + fake.double(), min=0).mean()
        g = -fake.double().mean()
    else:
        raise AssertionError(kind)
    return 0.5 * (d_real + d_fake), d_real, d_fake, g


def close(a, b, tol=1e-5):
    a, b = (float(v.detach()) if torch.is_tensor(v) else float(v) for v in (a, b))
    return abs(a - b) <= tol * max(1.0, abs(b))


def test_all_kinds_covered():
    assert set(GAN_LOSSES) == {"vanilla", "minimax", "lsgan", "wgan", "wgangp", "hinge"}


@pytest.mark.parametrize("kind", GAN_LOSSES)
def test_losses_match_textbook(kind):
    real, fake = scores()
    d_want, real_want, fake_want, g_want = textbook(kind, real, fake)
    loss = AdversarialLoss(kind)
    d, parts = loss.d(identity, real, fake)
    if kind == "wgangp":
        # identity critic: the gradient of sum(x) is all ones, so every interpolate's gradient norm
        # is sqrt(numel per sample) and the penalty is 10 * (sqrt(9) - 1)^2 = 40, whatever alpha
        gp = 10.0 * (math.sqrt(real[0].numel()) - 1) ** 2
        assert close(parts["D_gp"], gp)
        d_want = d_want + gp
    else:
        assert "D_gp" not in parts
    assert d.dim() == 0
    assert close(d, d_want)
    assert close(parts["D_real"], real_want)
    assert close(parts["D_fake"], fake_want)
    assert close(loss.g(identity, fake), g_want)


def test_vanilla_generator_is_non_saturating():
    # a confident discriminator (very negative logits on fakes) still gives the generator a gradient
    fake = torch.full((2, 1, 2, 2), -20.0, requires_grad=True)
    AdversarialLoss("vanilla").g(identity, fake).backward()
    assert fake.grad.abs().min() > 0.1 / fake.numel()
    # and its value is softplus(20) ~ 20, not log(1 - sigmoid(-20)) ~ 0
    assert close(AdversarialLoss("vanilla").g(identity, fake.detach()), math.log1p(math.exp(20)))


def test_hinge_is_zero_beyond_margin():
    real, fake = torch.full((2, 1), 1.5), torch.full((2, 1), -3.0)
    d, parts = AdversarialLoss("hinge").d(identity, real, fake)
    assert d.item() == 0 and parts["D_real"].item() == 0 and parts["D_fake"].item() == 0


def test_gp_weight_is_used():
    real, fake = scores()
    _, parts = AdversarialLoss("wgangp", gp_weight=2.5).d(identity, real, fake)
    assert close(parts["D_gp"], 2.5 * (3 - 1) ** 2)


def test_unknown_kind_raises():
    with pytest.raises(ValueError):
        AdversarialLoss("wgan-gp")
    with pytest.raises(ValueError):
        AdversarialLoss("")


# --- gradient penalty -------------------------------------------------------------------------

class LinearCritic(nn.Module):
    """f(x) = sum(w * x) per sample: its input gradient is w everywhere."""

    def __init__(self, shape):
        super().__init__()
        torch.manual_seed(1)
        self.w = nn.Parameter(torch.randn(*shape) * 0.7)

    def forward(self, x):
        return (self.w * x).flatten(1).sum(1)


@pytest.mark.parametrize("weight", [10.0, 1.0, 0.3])
def test_gradient_penalty_on_linear_critic(weight):
    critic = LinearCritic((2, 4, 4))
    real, fake = torch.randn(5, 2, 4, 4), torch.randn(5, 2, 4, 4)
    norm = critic.w.detach().double().norm().item()
    want = weight * (norm - 1) ** 2
    gp = gradient_penalty(critic, real, fake, weight)
    assert gp.dim() == 0
    assert close(gp, want)
    # the penalty is differentiable in the critic's parameters (create_graph=True)
    gp.backward()
    assert critic.w.grad is not None
    expected_grad = weight * 2 * (norm - 1) * critic.w.detach() / norm
    assert torch.allclose(critic.w.grad, expected_grad.float(), rtol=1e-4, atol=1e-6)


def test_gradient_penalty_of_unit_norm_critic_is_zero():
    critic = LinearCritic((3, 2, 2))
    with torch.no_grad():
        critic.w /= critic.w.norm()
    gp = gradient_penalty(critic, torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2))
    assert gp.item() < 1e-10


def test_gradient_penalty_samples_between_real_and_fake():
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return x.flatten(1).sum(1)

    real, fake = torch.randn(6, 1, 3, 3), torch.randn(6, 1, 3, 3)
    gradient_penalty(critic, real, fake)
    (x_hat,) = seen
    # x_hat = alpha * real + (1 - alpha) * fake with one alpha in [0, 1] per sample
    alpha = ((x_hat - fake) / (real - fake)).flatten(1)
    assert torch.allclose(alpha, alpha[:, :1].expand_as(alpha), atol=1e-4)
    assert (alpha[:, 0] >= -1e-5).all() and (alpha[:, 0] <= 1 + 1e-5).all()


# --- gradients reach the right tensors ---------------------------------------------------------

class ConvCritic(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("kind", GAN_LOSSES)
def test_discriminator_loss_detaches_fake(kind):
    torch.manual_seed(0)
    critic = ConvCritic()
    g_param = torch.randn(2, 3, 8, 8, requires_grad=True)
    fake = torch.tanh(g_param)  # stands in for G(z)
    real = torch.rand(2, 3, 8, 8) * 2 - 1
    d, _ = AdversarialLoss(kind).d(critic, real, fake)
    d.backward()
    assert g_param.grad is None
    assert critic.conv.weight.grad is not None and critic.conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", GAN_LOSSES)
def test_generator_loss_reaches_generator(kind):
    torch.manual_seed(0)
    critic = ConvCritic()
    g_param = torch.randn(2, 3, 8, 8, requires_grad=True)
    AdversarialLoss(kind).g(critic, torch.tanh(g_param)).backward()
    assert g_param.grad is not None and g_param.grad.abs().sum() > 0


def test_minimax_generator_saturates_where_vanilla_does_not():
    """When D confidently rejects the fakes, log(1 - D(G(z))) has almost no gradient."""
    scores = torch.full((4,), -8.0, requires_grad=True)
    AdversarialLoss("minimax").g(identity, scores).backward()
    saturating = scores.grad.abs().max().item()
    scores.grad = None
    AdversarialLoss("vanilla").g(identity, scores).backward()
    assert saturating < 1e-3 < scores.grad.abs().max().item()


# --- PatchNCE (CUT) -------------------------------------------------------------------------------

def _ce(logits, target=0):
    """Cross-entropy of a list of logits towards ``target``, by hand (log-sum-exp shifted by the target's
    logit, so that float64 keeps the tiny losses of confident rows exact)."""
    return math.log1p(sum(math.exp(v - logits[target]) for j, v in enumerate(logits) if j != target))


@pytest.mark.parametrize("t", [0.5, 0.07])
def test_patch_nce_hand_computed(t):
    # one image, two patches, 2-d features
    q = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    k = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    # row 0: positive q0.k0 = 0.8; negatives: k0 (its own, masked to -10), k1: q0.k1 = 0
    # row 1: positive q1.k1 = 0.8; negatives: k0: q1.k0 = 0.48 + 0.48 = 0.96, k1 (masked to -10)
    expected = [_ce([0.8 / t, -10 / t, 0.0 / t]), _ce([0.8 / t, 0.96 / t, -10 / t])]
    loss = patch_nce(q, k, batch_size=1, temperature=t)
    assert loss.shape == (2,)
    assert loss.tolist() == pytest.approx(expected, rel=1e-5, abs=1e-6)  # float32 logits near 11


def test_patch_nce_default_temperature_is_cut_s():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # row 0: [1, -10, 1] / 0.07; row 1: [0, 0, -10] / 0.07
    expected = [_ce([1 / 0.07, -10 / 0.07, 1 / 0.07]), _ce([0.0, 0.0, -10 / 0.07])]
    assert patch_nce(q, k, 1).tolist() == pytest.approx(expected, rel=1e-5)
    assert expected[0] == pytest.approx(math.log(2), rel=1e-6) and expected[1] == pytest.approx(math.log(2), rel=1e-6)


def test_patch_nce_negatives_stay_within_each_image():
    torch.manual_seed(0)
    B, P, D = 2, 3, 4
    q = F.normalize(torch.randn(B * P, D), dim=1)
    k = F.normalize(torch.randn(B * P, D), dim=1)
    loss = patch_nce(q, k, batch_size=B, temperature=0.1)
    assert loss.shape == (B * P,)
    for b in range(B):
        for p in range(P):
            i = b * P + p
            logits = [float(q[i] @ k[i]) / 0.1]
            logits += [(-10.0 if j == p else float(q[i] @ k[b * P + j])) / 0.1 for j in range(P)]
            assert loss[i].item() == pytest.approx(_ce(logits), rel=1e-5)
    # other images' keys are not negatives: changing image 1's keys leaves image 0's losses alone
    k2 = k.clone()
    k2[P:] = F.normalize(torch.randn(P, D), dim=1)
    loss2 = patch_nce(q, k2, batch_size=B, temperature=0.1)
    assert torch.equal(loss2[:P], loss[:P]) and not torch.allclose(loss2[P:], loss[P:])
    # but with batch_size=1 (all rows one image) they would be
    assert not torch.allclose(patch_nce(q, k2, batch_size=1, temperature=0.1)[:P],
                              patch_nce(q, k, batch_size=1, temperature=0.1)[:P])


def test_patch_nce_detaches_the_keys():
    q = torch.randn(4, 3, requires_grad=True)
    k = torch.randn(4, 3, requires_grad=True)
    patch_nce(q, k, batch_size=2).mean().backward()
    assert q.grad is not None and torch.count_nonzero(q.grad) > 0
    assert k.grad is None


def test_patch_nce_refuses_bad_shapes():
    with pytest.raises(ValueError):
        patch_nce(torch.randn(6, 3), torch.randn(6, 3), batch_size=4)
    with pytest.raises(ValueError):
        patch_nce(torch.randn(6, 3), torch.randn(6, 2), batch_size=1)
