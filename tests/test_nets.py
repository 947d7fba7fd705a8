"""Network registry: parameter counts and key layouts of the reference architectures, forward passes
of every registered network, weight initialisation and construction errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from i2i import nets
from i2i.nets.layers import INITS


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny ops run faster on one thread


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# --- parameter counts (pytorch-CycleGAN-and-pix2pix with 3-channel images, ngf=ndf=64) -------

@pytest.mark.parametrize(
    "name, kw, expected",
    [
        ("resnet_9blocks", dict(in_channels=3, out_channels=3, ngf=64, norm="instance"), 11_378_179),
        ("resnet_6blocks", dict(in_channels=3, out_channels=3, ngf=64, norm="instance"), 7_837_699),
        ("unet_256", dict(in_channels=3, out_channels=3, ngf=64, norm="batch"), 54_413_955),
        ("unet_128", dict(in_channels=3, out_channels=3, ngf=64, norm="batch"), 41_828_995),
        ("basic", dict(in_channels=3, ndf=64, norm="instance"), 2_764_737),
        ("basic", dict(in_channels=6, ndf=64, norm="batch"), 2_768_705),
        ("pixel", dict(in_channels=3, ndf=64, norm="instance"), 8_705),
    ],
    ids=["resnet9-instance", "resnet6-instance", "unet256-batch", "unet128-batch",
         "basicD3-instance", "basicD6-batch", "pixelD-instance"],
)
def test_parameter_counts_match_reference(name, kw, expected):
    assert n_params(nets.create(name, init=None, **kw)) == expected


# --- state-dict layout ------------------------------------------------------------------------

def test_resnet_state_dict_keys_match_reference_layout():
    net = nets.create("resnet_9blocks", init=None, ngf=4, norm="instance")
    keys = set(net.state_dict())
    # ReflectionPad(0) conv(1) IN ReLU | conv(4) IN ReLU conv(7) IN ReLU | 9 blocks (10..18) |
    # convT(19) IN ReLU convT(22) IN ReLU | ReflectionPad(25) conv(26) Tanh
    expected = set()
    for i in (1, 4, 7, 19, 22, 26):
        expected |= {f"model.{i}.weight", f"model.{i}.bias"}
    for b in range(10, 19):
        for j in (1, 5):  # pad(0) conv(1) IN(2) ReLU(3) pad(4) conv(5) IN(6)
            expected |= {f"model.{b}.conv_block.{j}.weight", f"model.{b}.conv_block.{j}.bias"}
    assert keys == expected
    assert "model.10.conv_block.1.weight" in keys
    assert net.state_dict()["model.1.weight"].shape == (4, 3, 7, 7)
    assert net.state_dict()["model.26.weight"].shape == (3, 4, 7, 7)


def test_unet_state_dict_keys_match_reference_layout():
    net = nets.create("unet_256", init=None, ngf=4, norm="batch")
    sd = net.state_dict()
    assert sd["model.model.0.weight"].shape == (4, 3, 4, 4)  # outermost down-conv
    assert "model.model.0.bias" not in sd  # batch norm: no conv bias (except the last layer)
    assert sd["model.model.1.model.1.weight"].shape == (8, 4, 4, 4)  # second level down-conv
    assert sd["model.model.3.weight"].shape == (8, 3, 4, 4)  # outermost up-conv (in, out, k, k)
    assert "model.model.3.bias" in sd
    for leaf in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        assert f"model.model.1.model.2.{leaf}" in sd  # BatchNorm after the second down-conv
    # 8 levels: the innermost block is reached through seven "model.3." (submodule) hops
    inner = "model.model.1." + "model.3." * 6
    assert f"{inner}model.1.weight" in sd and f"{inner}model.3.weight" in sd
    assert not any(k.startswith(inner + "model.3.model.") for k in sd)


def test_instance_norm_has_no_parameters_or_buffers():
    net = nets.create("resnet_6blocks", init=None, ngf=4, norm="instance")
    norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 3 + 2 * 6 + 2
    for m in norms:
        assert list(m.parameters()) == [] and list(m.buffers()) == []
    assert not any(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in net.state_dict())


# --- every registered network runs ------------------------------------------------------------

def test_registry_lists_every_kind():
    gens, discs = nets.names("generator"), nets.names("discriminator")
    latent, critics, vaes = nets.names("latent_generator"), nets.names("image_critic"), nets.names("vae")
    assert {"resnet_9blocks", "resnet_6blocks", "unet_128", "unet_256"} <= set(gens)
    assert {"basic", "n_layers", "pixel"} <= set(discs)
    assert latent == ["dcgan_generator"] and critics == ["dcgan_discriminator"] and vaes == ["conv_vae"]
    heads = nets.names("feature_head")
    assert heads == ["mlp_sample"]
    assert sorted(gens + discs + latent + critics + vaes + heads) == nets.names()


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("n_classes", [0, 3])
def test_dcgan_shapes_and_labels(size, n_classes):
    torch.manual_seed(0)
    G = nets.create("dcgan_generator", z_dim=8, image_size=size, ngf=4, n_classes=n_classes).eval()
    D = nets.create("dcgan_discriminator", image_size=size, ndf=4, n_classes=n_classes).eval()
    labels = torch.tensor([0, 2]) if n_classes else None
    x = G(torch.randn(2, 8), labels)
    assert x.shape == (2, 3, size, size) and x.abs().max() <= 1
    assert D(x, labels).shape == (2, 1)
    if n_classes:  # the label changes what both nets compute
        z = torch.randn(1, 8)
        assert not torch.allclose(G(z, torch.tensor([0])), G(z, torch.tensor([1])))
        assert not torch.allclose(D(x[:1], torch.tensor([0])), D(x[:1], torch.tensor([1])))


def test_dcgan_layout_follows_the_paper():
    G = nets.create("dcgan_generator", init=None)
    D = nets.create("dcgan_discriminator", init=None)
    assert sum(p.numel() for p in G.parameters()) == 3_576_704  # the DCGAN paper's 64x64 generator, z = 100
    assert isinstance(G.model[-1], nn.Tanh) and isinstance(D.model[1], nn.LeakyReLU)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.model[:2])  # no norm on D's first layer
    with pytest.raises(ValueError, match="image size 48"):
        nets.create("dcgan_generator", image_size=48)


@pytest.mark.parametrize("name", nets.names("generator"))
def test_every_generator_forward(name):
    torch.manual_seed(0)
    net = nets.create(name, in_channels=2, out_channels=3, ngf=4).eval()
    s = net.size_multiple
    while s < 8:  # instance norm needs more than one pixel at the bottleneck (ResNet: s / 4)
        s *= 2
    x = torch.rand(2, 2, s, s) * 2 - 1
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 3, s, s)
    assert torch.isfinite(y).all()
    assert y.min() >= -1 and y.max() <= 1


DISC_OUT = {"basic": 6, "n_layers": 6, "pixel": 64}  # for a 64x64 input


@pytest.mark.parametrize("name", nets.names("discriminator"))
def test_every_discriminator_forward(name):
    torch.manual_seed(0)
    net = nets.create(name, in_channels=6, ndf=4).eval()
    x = torch.rand(2, 6, 64, 64) * 2 - 1
    with torch.no_grad():
        y = net(x)
    assert y.dim() == 4 and y.shape[:2] == (2, 1)
    if name in DISC_OUT:
        assert y.shape[2:] == (DISC_OUT[name], DISC_OUT[name])
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("n_layers, out", [(1, 30), (2, 14), (4, 2)])
def test_n_layers_depth(n_layers, out):
    net = nets.create("n_layers", in_channels=3, ndf=4, n_layers=n_layers, init=None)
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 1, out, out)


def test_generic_builders_take_depth():
    assert nets.create("resnet", n_blocks=2, ngf=4, init=None).model[10].__class__.__name__ == "ResnetBlock"
    assert sum(type(m).__name__ == "ResnetBlock" for m in nets.create("resnet", n_blocks=2, ngf=4, init=None).modules()) == 2
    assert nets.create("unet", num_downs=6, ngf=4, init=None).size_multiple == 64
    assert nets.create("unet_512", ngf=4, init=None).size_multiple == 512


# --- initialisation ---------------------------------------------------------------------------

def _init_net(init, gain=0.02, ngf=16):
    torch.manual_seed(0)
    net = nets.create("resnet_6blocks", init=init, init_gain=gain, ngf=ngf, norm="batch")
    # every init: conv biases zero, batch-norm scales N(1, 0.02) and shifts zero
    for m in _convs(net):
        if m.bias is not None:
            assert torch.count_nonzero(m.bias) == 0
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 3 + 2 * 6 + 2
    scales = torch.cat([m.weight.detach() for m in bns])
    assert abs(scales.mean().item() - 1) < 5 * gain / math.sqrt(scales.numel())
    assert abs(scales.std().item() / gain - 1) < 0.2
    assert all(torch.count_nonzero(m.bias) == 0 for m in bns)
    return net


def _convs(net):
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def _fans(w):
    receptive = math.prod(w.shape[2:])
    return w.shape[1] * receptive, w.shape[0] * receptive  # torch's convention (also for ConvTranspose)


def test_init_normal_statistics():
    net = _init_net("normal")
    w = torch.cat([m.weight.detach().flatten() for m in _convs(net)])
    assert abs(w.std().item() - 0.02) < 0.001
    assert abs(w.mean().item()) < 0.001
    for m in _convs(net):
        if m.bias is not None:
            assert torch.count_nonzero(m.bias) == 0
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns
    g = torch.cat([m.weight.detach() for m in bns])
    assert abs(g.mean().item() - 1.0) < 0.01
    assert 0.01 < g.std().item() < 0.03
    assert all(torch.count_nonzero(m.bias) == 0 for m in bns)
    # the default init is "normal" with gain 0.02
    torch.manual_seed(0)
    default = nets.create("resnet_6blocks", ngf=16, norm="batch")
    for a, b in zip(default.state_dict().values(), net.state_dict().values()):
        assert torch.equal(a, b)


def test_init_normal_gain():
    w = torch.cat([m.weight.detach().flatten() for m in _convs(_init_net("normal", gain=0.1))])
    assert abs(w.std().item() - 0.1) < 0.005


def test_init_xavier_statistics():
    gain = 0.5
    for m in _convs(_init_net("xavier", gain)):
        w = m.weight.detach()
        if w.numel() < 5000:
            continue
        fan_in, fan_out = _fans(w)
        expected = gain * math.sqrt(2.0 / (fan_in + fan_out))
        assert abs(w.std().item() / expected - 1) < 0.1
        if m.bias is not None:
            assert torch.count_nonzero(m.bias) == 0


def test_init_kaiming_statistics():
    for m in _convs(_init_net("kaiming")):
        w = m.weight.detach()
        if w.numel() < 5000:
            continue
        fan_in, _ = _fans(w)
        assert abs(w.std().item() / math.sqrt(2.0 / fan_in) - 1) < 0.1


def test_init_orthogonal_statistics():
    gain = 0.02
    for m in _convs(_init_net("orthogonal", gain, ngf=4)):
        w = m.weight.detach().reshape(m.weight.shape[0], -1).double()
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        assert torch.allclose(gram, gain**2 * torch.eye(gram.shape[0], dtype=gram.dtype), atol=1e-8)


def test_inits_differ():
    assert INITS == ("normal", "xavier", "kaiming", "orthogonal")
    stds = {init: torch.cat([m.weight.detach().flatten() for m in _convs(_init_net(init, 0.5, ngf=4))]).std()
            for init in INITS}
    assert len({round(v.item(), 4) for v in stds.values()}) == len(INITS)


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="init"):
        nets.create("basic", init="uniform", ndf=4)
    with pytest.raises(KeyError):
        nets.create("no_such_net")
    with pytest.raises(ValueError, match="norm"):
        nets.create("resnet_6blocks", norm="group", ngf=4, init=None)
    with pytest.raises(ValueError):
        nets.create("resnet_6blocks", padding="circular", ngf=4, init=None)


# --- dropout and depth ------------------------------------------------------------------------

def _dropouts(net):
    return sum(isinstance(m, nn.Dropout) for m in net.modules())


def test_resnet_dropout_flag():
    assert _dropouts(nets.create("resnet_6blocks", ngf=4, init=None)) == 0
    net = nets.create("resnet_6blocks", ngf=4, init=None, dropout=True)
    assert _dropouts(net) == 6  # one per residual block
    assert isinstance(net.model[10].conv_block[4], nn.Dropout)


def test_unet_dropout_flag():
    assert _dropouts(nets.create("unet_256", ngf=4, init=None)) == 0
    assert _dropouts(nets.create("unet_256", ngf=4, init=None, dropout=True)) == 8 - 5
    assert _dropouts(nets.create("unet_128", ngf=4, init=None, dropout=True)) == 7 - 5


@pytest.mark.parametrize("num_downs", [1, 3, 4])
def test_unet_too_shallow_raises(num_downs):
    with pytest.raises(ValueError):
        nets.create("unet", num_downs=num_downs, ngf=4, init=None)


def test_unet_minimum_depth_builds():
    net = nets.create("unet", num_downs=5, ngf=4, init=None).eval()
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
