import torch

from i2i.modes.base import adam, set_requires_grad
from i2i.modes.pix2pix import Pix2Pix

from conftest import tiny_config


def test_fused_adam_matches_plain_adam():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = adam(a.parameters(), 1e-2, (0.5, 0.999)), torch.optim.Adam(b.parameters(), 1e-2, betas=(0.5, 0.999))
    for _ in range(5):
        x = torch.randn(3, 8)
        for net, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            net(x).pow(2).sum().backward()
            opt.step()
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.parameters(), b.parameters()))


def test_pix2pix_step_updates_d_then_g_with_d_frozen(aligned_dir, tmp_path):
    """D learns from real and fake pairs; the G update leaves D untouched and D trainable afterwards."""
    cfg = tiny_config(aligned_dir, tmp_path)
    mode = Pix2Pix(cfg, "cpu")
    batch = {"A": torch.rand(2, 3, 32, 32) * 2 - 1, "B": torch.rand(2, 3, 32, 32) * 2 - 1}
    d_grads = []  # D's gradients after its own step, and when G steps
    for name in ("D", "G"):
        mode.optimizers[name].register_step_pre_hook(
            lambda opt, args, kwargs: d_grads.append([p.grad.clone() for p in mode.D.parameters()]))
    d_before = [p.clone() for p in mode.D.parameters()]
    g_before = [p.clone() for p in mode.G.parameters()]
    losses, out = mode.train_step(batch)
    assert set(losses) == {"D", "D_real", "D_fake", "G", "G_GAN", "G_L1"}
    assert out["fake_B"].shape == batch["B"].shape
    assert any(not torch.equal(p, q) for p, q in zip(d_before, mode.D.parameters()))
    assert any(not torch.equal(p, q) for p, q in zip(g_before, mode.G.parameters()))
    assert all(torch.equal(g, h) for g, h in zip(*d_grads))  # D was frozen: the G loss added nothing
    assert all(p.requires_grad for p in mode.D.parameters())
    set_requires_grad([mode.D], False)
    assert not any(p.requires_grad for p in mode.D.parameters())
