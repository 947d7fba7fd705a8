"""Adversarial losses shared by every mode.

A discriminator here outputs raw scores (logits, or critic values); each loss reads them its own way:

- ``vanilla``: binary cross-entropy on logits (Goodfellow et al. 2014). The generator uses the
  non-saturating form, maximising log D(G(z)), which gives useful gradients early in training.
- ``minimax``: the same discriminator, and the generator minimising log(1 - D(G(z))) as in the
  original minimax objective; it saturates when D wins, and is here for study.
- ``lsgan``: least squares towards 1 (real) and 0 (fake) (Mao et al. 2017).
- ``wgan``: Wasserstein critic, mean D(fake) - mean D(real); the critic's Lipschitz bound comes from
  weight clipping done by the mode (Arjovsky et al. 2017).
- ``wgangp``: the same with a gradient penalty on random interpolates (Gulrajani et al. 2017).
- ``hinge``: hinge loss for D, -D(G(z)) for G (Lim and Ye 2017; Miyato et al. 2018).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

GAN_LOSSES = ("vanilla", "minimax", "lsgan", "wgan", "wgangp", "hinge")


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0) -> torch.Tensor:
    """``weight * E[(||grad critic(x_hat)||_2 - 1)^2]`` at random points between real and fake."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return weight * ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


class AdversarialLoss:
    """``d(critic, real, fake)`` and ``g(critic, fake)`` for one of :data:`GAN_LOSSES`.

    The discriminator loss is the mean of its real and fake terms, as in the reference (which halves
    the sum), plus the gradient penalty for ``wgangp``.
    """

    def __init__(self, kind: str, gp_weight: float = 10.0):
        if kind not in GAN_LOSSES:
            raise ValueError(f"unknown GAN loss {kind!r}; choose from {', '.join(GAN_LOSSES)}")
        self.kind = kind
        self.gp_weight = gp_weight

    def real_fake_terms(self, real_scores: torch.Tensor, fake_scores: torch.Tensor):
        if self.kind in ("vanilla", "minimax"):
            return (F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores)),
                    F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores)))
        if self.kind == "lsgan":
            return F.mse_loss(real_scores, torch.ones_like(real_scores)), F.mse_loss(fake_scores, torch.zeros_like(fake_scores))
        if self.kind in ("wgan", "wgangp"):
            return -real_scores.mean(), fake_scores.mean()
        return F.relu(1 - real_scores).mean(), F.relu(1 + fake_scores).mean()

    def d(self, critic, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Discriminator loss on a real and a (detached) fake batch, with its parts for logging."""
        fake = fake.detach()
        real_term, fake_term = self.real_fake_terms(critic(real), critic(fake))
        loss = 0.5 * (real_term + fake_term)
        parts = {"D_real": real_term.detach(), "D_fake": fake_term.detach()}
        if self.kind == "wgangp":
            gp = gradient_penalty(critic, real, fake, self.gp_weight)
            loss = loss + gp
            parts["D_gp"] = gp.detach()
        return loss, parts

    def g(self, critic, fake: torch.Tensor) -> torch.Tensor:
        """Generator loss: make the critic score ``fake`` as real."""
        scores = critic(fake)
        if self.kind == "minimax":  # log(1 - sigmoid(s)) = -softplus(s)
            return -F.softplus(scores).mean()
        if self.kind == "vanilla":
            return F.binary_cross_entropy_with_logits(scores, torch.ones_like(scores))
        if self.kind == "lsgan":
            return F.mse_loss(scores, torch.ones_like(scores))
        return -scores.mean()


# --- variational ----------------------------------------------------------------------------------

def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per example, summed over latent dimensions (nats)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(1)


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """-log N(x; mean, sigma^2) per example, summed over dimensions (nats); ``log_sigma`` broadcasts."""
    log_sigma = torch.as_tensor(log_sigma, dtype=x.dtype, device=x.device).expand_as(x)
    nll = 0.5 * ((x - mean) / log_sigma.exp()).pow(2) + log_sigma + 0.5 * math.log(2 * math.pi)
    return nll.flatten(1).sum(1)


def bernoulli_nll(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """-log Bernoulli(x; sigmoid(logits)) per example, summed over dimensions (nats)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


# --- contrastive ----------------------------------------------------------------------------------

def patch_nce(feat_q: torch.Tensor, feat_k: torch.Tensor, batch_size: int,
              temperature: float = 0.07) -> torch.Tensor:
    """PatchNCE loss of CUT (Park et al., "Contrastive Learning for Unpaired Image-to-Image
    Translation", ECCV 2020, eq. 2-3), per query patch: the authors' ``PatchNCELoss`` with
    ``nce_includes_all_negatives_from_minibatch=False`` (negatives only from the same image).

    ``feat_q``, ``feat_k``: ``[B * P, D]`` (``B = batch_size`` images, ``P`` patches each, image-major
    rows, as :class:`i2i.nets.patch_sample.PatchSampleF` returns them; normally L2-normalised), the
    query (translated image) and key (source image) features at the same positions. ``feat_k`` is
    detached. Row ``i``'s positive is key ``i`` (logit ``q_i . k_i``), its negatives the other
    ``P - 1`` keys of the same image; the ``i = j`` entry of the negatives' ``P x P`` block is set to
    -10 (as the authors do, instead of dropping it), so each row has ``1 + P`` logits, all divided by
    ``temperature``. Returns the cross-entropy towards the positive, ``[B * P]``, unreduced (CUT
    averages it, per layer).
    """
    if feat_q.dim() != 2 or feat_q.shape != feat_k.shape:
        raise ValueError(f"feat_q and feat_k must both be [B * P, D], not {tuple(feat_q.shape)} and {tuple(feat_k.shape)}")
    num_patches, dim = feat_q.shape
    if batch_size < 1 or num_patches % batch_size:
        raise ValueError(f"{num_patches} feature rows do not split into batch_size={batch_size} images")
    feat_k = feat_k.detach()
    l_pos = torch.bmm(feat_q.view(num_patches, 1, -1), feat_k.view(num_patches, -1, 1)).view(num_patches, 1)
    feat_q = feat_q.view(batch_size, -1, dim)
    feat_k = feat_k.view(batch_size, -1, dim)
    npatches = feat_q.size(1)
    l_neg_curbatch = torch.bmm(feat_q, feat_k.transpose(2, 1))
    diagonal = torch.eye(npatches, device=feat_q.device, dtype=torch.bool)[None, :, :]
    l_neg_curbatch.masked_fill_(diagonal, -10.0)
    l_neg = l_neg_curbatch.view(-1, npatches)
    out = torch.cat((l_pos, l_neg), dim=1) / temperature
    target = torch.zeros(out.size(0), dtype=torch.long, device=feat_q.device)
    return F.cross_entropy(out, target, reduction="none")
