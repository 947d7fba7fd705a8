"""CUT's network pieces (Park et al., ECCV 2020; taesungp/contrastive-unpaired-translation): the
blurred Downsample/Upsample layers, the antialiased ResNet generator's layout and parameter count,
feature taps, and the PatchSampleF head."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from i2i import nets
from i2i.nets.antialias import Downsample, Upsample, get_filter
from i2i.nets.patch_sample import PatchSampleF

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny ops run faster on one thread

CUT_LAYERS = [0, 4, 8, 12, 16]


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# --- blur layers ------------------------------------------------------------------------------

def test_filters_are_normalised_binomials():
    assert torch.equal(get_filter(3), torch.tensor([[1., 2., 1.], [2., 4., 2.], [1., 2., 1.]]) / 16)
    assert torch.equal(get_filter(4)[0], torch.tensor([1., 3., 3., 1.]) / 64)
    assert get_filter(5).sum().item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        get_filter(8)


def test_downsample_is_a_reflect_padded_121_blur_subsampled():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 8)
    y = Downsample(3)(x)
    assert y.shape == (2, 3, 3, 4)

    def blur1d(t, dim):  # out[i] = (t[2i-1] + 2 t[2i] + t[2i+1]) / 4, index -1 reflected to 1
        n = t.shape[dim]
        idx = torch.arange(0, n, 2)
        left = (idx - 1).abs()
        right = (idx + 1).clamp(max=n - 1)
        return (t.index_select(dim, left) + 2 * t.index_select(dim, idx) + t.index_select(dim, right)) / 4

    expected = blur1d(blur1d(x, 2), 3)
    assert torch.allclose(y, expected, atol=1e-6)
    assert Downsample(3)(torch.ones(1, 3, 8, 8)).allclose(torch.ones(1, 3, 4, 4))


def test_upsample_equals_bilinear_doubling():
    # the [1 3 3 1] transposed filter with replicate padding is bilinear x2 (align_corners=False)
    torch.manual_seed(0)
    x = torch.randn(2, 4, 5, 7)
    y = Upsample(4)(x)
    assert y.shape == (2, 4, 10, 14)
    assert torch.allclose(y, F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False), atol=1e-5)


def test_blur_buffers_are_in_the_state_dict_and_not_learned():
    d, u = Downsample(5), Upsample(6)
    assert list(d.state_dict()) == ["filt"] and d.state_dict()["filt"].shape == (5, 1, 3, 3)
    assert list(u.state_dict()) == ["filt"] and u.state_dict()["filt"].shape == (6, 1, 4, 4)
    assert torch.allclose(u.filt.sum(dim=(2, 3)), torch.full((6, 1), 4.0))  # stride**2
    assert list(d.parameters()) == [] and list(u.parameters()) == []
    with torch.device("meta"):
        assert Downsample(5).filt.device.type == "meta"


# --- the antialiased ResNet generator ---------------------------------------------------------

def _authors_layer_params(ngf=64, in_nc=3, out_nc=3, n_blocks=9):
    """Parameters of the authors' ResnetGenerator (instance norm: convs have biases, norms none),
    summed layer by layer from their models/networks.py."""
    conv = lambda cin, cout, k, bias=True: cin * cout * k * k + (cout if bias else 0)
    total = conv(in_nc, ngf, 7)  # stem
    total += conv(ngf, 2 * ngf, 3) + conv(2 * ngf, 4 * ngf, 3)  # stride-1 convs before Downsample
    total += n_blocks * 2 * conv(4 * ngf, 4 * ngf, 3)  # ResnetBlocks
    total += conv(4 * ngf, 2 * ngf, 3) + conv(2 * ngf, ngf, 3)  # convs after Upsample
    total += conv(ngf, out_nc, 7)  # last conv
    return total


def test_antialias_parameter_count_matches_the_authors():
    expected = _authors_layer_params()
    assert expected == 11_378_179  # the same as CycleGAN's resnet_9blocks: only strides and the order change
    net = nets.create("resnet_9blocks_antialias", init=None, in_channels=3, out_channels=3, ngf=64, norm="instance")
    assert n_params(net) == expected
    assert n_params(nets.create("resnet", n_blocks=6, ngf=8, antialias=True, antialias_up=True, init=None)) \
        == _authors_layer_params(ngf=8, n_blocks=6)


def test_antialias_state_dict_layout_matches_the_authors():
    net = nets.create("resnet_9blocks_antialias", init=None, ngf=4, norm="instance")
    sd = net.state_dict()
    # pad(0) conv(1) IN ReLU | conv(4) IN ReLU Down(7) conv(8) IN ReLU Down(11) | blocks 12..20 |
    # Up(21) conv(22) IN ReLU Up(25) conv(26) IN ReLU | pad(29) conv(30) Tanh(31)
    expected = set()
    for i in (1, 4, 8, 22, 26, 30):
        expected |= {f"model.{i}.weight", f"model.{i}.bias"}
    for b in range(12, 21):
        expected |= {f"model.{b}.conv_block.{j}.{leaf}" for j in (1, 5) for leaf in ("weight", "bias")}
    expected |= {"model.7.filt", "model.11.filt", "model.21.filt", "model.25.filt"}
    assert set(sd) == expected
    assert len(net.model) == 32 and isinstance(net.model[31], nn.Tanh)
    assert sd["model.4.weight"].shape == (8, 4, 3, 3) and sd["model.22.weight"].shape == (8, 16, 3, 3)
    assert sd["model.7.filt"].shape == (8, 1, 3, 3) and sd["model.11.filt"].shape == (16, 1, 3, 3)
    assert sd["model.21.filt"].shape == (16, 1, 4, 4) and sd["model.25.filt"].shape == (8, 1, 4, 4)
    assert net.size_multiple == 4 and net.min_size == 8


def test_antialias_flags_one_at_a_time():
    down = nets.create("resnet", n_blocks=2, ngf=4, antialias=True, init=None)
    up = nets.create("resnet", n_blocks=2, ngf=4, antialias_up=True, init=None)
    assert [type(m).__name__ for m in down.model].count("Downsample") == 2
    assert not any(isinstance(m, Upsample) for m in down.model)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in down.model) == 2
    assert sum(isinstance(m, Upsample) for m in up.model) == 2
    assert not any(isinstance(m, (Downsample, nn.ConvTranspose2d)) for m in up.model)
    x = torch.rand(1, 3, 12, 16)
    for net in (down, up):
        assert net.eval()(x).shape == (1, 3, 12, 16)


def test_flags_off_is_todays_network():
    torch.manual_seed(0)
    plain = nets.create("resnet", n_blocks=3, ngf=4)
    torch.manual_seed(0)
    off = nets.create("resnet", n_blocks=3, ngf=4, antialias=False, antialias_up=False)
    assert list(plain.state_dict()) == list(off.state_dict())
    assert n_params(plain) == n_params(off)
    assert len(plain.model) == 4 + 6 + 3 + 6 + 3
    assert not any(isinstance(m, (Downsample, Upsample)) for m in off.modules())
    ref9 = nets.create("resnet_9blocks", init=None, ngf=4)
    assert set(ref9.state_dict()) == set(nets.create("resnet", init=None, ngf=4).state_dict())
    assert max(int(k.split(".")[1]) for k in ref9.state_dict()) == 26  # the reference's layout
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(plain.eval()(x), off.eval()(x))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(2, 9), w=st.integers(2, 9), batch=st.integers(1, 2))
def test_antialias_keeps_the_size_of_multiples_of_4(h, w, batch):
    torch.manual_seed(0)
    net = nets.create("resnet", n_blocks=1, ngf=2, antialias=True, antialias_up=True).eval()
    x = torch.rand(batch, 3, 4 * h, 4 * w) * 2 - 1
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_antialias_runs_at_the_minimum_size():
    net = nets.create("resnet_9blocks_antialias", ngf=2).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)
    with pytest.raises(RuntimeError):  # 4x4: the blocks' reflection padding has 1 pixel to reflect
        net(torch.rand(1, 3, 4, 4))


# --- feature taps -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet_9blocks_antialias", "resnet_6blocks"])
def test_features_are_the_outputs_of_those_layers(name):
    torch.manual_seed(0)
    net = nets.create(name, ngf=4, norm="instance").eval()
    x = torch.rand(2, 3, 16, 20) * 2 - 1
    layers = [16, 0, 4, 2, 8, 12, 4]  # any order, repeats, and 2: a norm that a ReLU(inplace) follows
    with torch.no_grad():
        feats = net.features(x, layers)
        for i, f in zip(layers, feats):
            assert torch.equal(f, net.model[: i + 1](x)), i
    assert [f.shape[1] for f in feats] == net.feature_channels(layers)
    assert net.features(x, []) == [] and net.feature_channels([]) == []


def test_cut_feature_layers():
    net = nets.create("resnet_9blocks_antialias", ngf=64, init=None)
    assert net.feature_channels(CUT_LAYERS) == [3, 128, 256, 256, 256]
    assert isinstance(net.model[0], nn.ReflectionPad2d)
    small = nets.create("resnet_9blocks_antialias", ngf=4).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        shapes = [tuple(f.shape) for f in small.features(x, CUT_LAYERS)]
    assert shapes == [(1, 3, 38, 38), (1, 8, 32, 32), (1, 16, 16, 16), (1, 16, 8, 8), (1, 16, 8, 8)]
    assert torch.equal(small.features(x, [0])[0], F.pad(x, (3, 3, 3, 3), mode="reflect"))


def test_features_stop_at_the_last_tapped_layer():
    net = nets.create("resnet_6blocks", ngf=4, init=None)
    seen = []
    for i, m in enumerate(net.model):
        m.register_forward_hook(lambda mod, inp, out, i=i: seen.append(i))
    net.features(torch.rand(1, 3, 8, 8), [4, 2])
    assert seen == [0, 1, 2, 3, 4]


def test_features_keep_gradients():
    net = nets.create("resnet_9blocks_antialias", ngf=2)
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    sum(f.sum() for f in net.features(x, CUT_LAYERS)).backward()
    assert x.grad is not None and net.model[1].weight.grad is not None
    assert net.model[30].weight.grad is None  # never reached


@pytest.mark.parametrize("bad", [[-1], [32], [0, 99], [1.0], [True]])
def test_bad_layer_ids_raise(bad):
    net = nets.create("resnet_9blocks_antialias", ngf=2, init=None)
    with pytest.raises(ValueError, match=r"0\.\.31"):
        net.features(torch.rand(1, 3, 8, 8), bad)
    with pytest.raises(ValueError, match=r"0\.\.31"):
        net.feature_channels(bad)


def test_feature_channels_of_a_meta_network_and_for_batch_norm():
    with torch.device("meta"):
        net = nets.create("resnet_9blocks_antialias", ngf=8, init=None, norm="batch", in_channels=1)
    assert net.feature_channels([0, 1, 7, 20, 24, 31]) == [1, 8, 16, 32, 16, 3]
    real = nets.create("resnet_6blocks", ngf=8, init=None, norm="batch")
    before = real.model[2].running_mean.clone()
    assert real.feature_channels([2, 18, 19]) == [8, 16, 8]
    assert torch.equal(real.model[2].running_mean, before)  # the probe touches no statistics
    assert real.model[1].weight.device.type == "cpu"
    assert real.to(torch.bfloat16).feature_channels([2, 18]) == [8, 16]  # any dtype


# --- PatchSampleF -----------------------------------------------------------------------------

def test_patch_sample_keys_match_the_authors():
    head = nets.create("mlp_sample", in_channels=[3, 128, 256, 256, 256])
    sd = head.state_dict()
    expected = {f"mlp_{i}.{j}.{leaf}" for i in range(5) for j in (0, 2) for leaf in ("weight", "bias")}
    assert set(sd) == expected
    assert sd["mlp_0.0.weight"].shape == (256, 3) and sd["mlp_1.0.weight"].shape == (256, 128)
    assert sd["mlp_4.2.weight"].shape == (256, 256)
    assert n_params(head) == sum(c * 256 + 256 + 256 * 256 + 256 for c in [3, 128, 256, 256, 256])
    assert isinstance(head.mlp_0[1], nn.ReLU)
    # create()'s default init, as the authors' init_net: N(0, 0.02) weights, zero biases
    assert abs(sd["mlp_1.2.weight"].std().item() - 0.02) < 0.002 and torch.count_nonzero(sd["mlp_1.2.bias"]) == 0


def test_patch_sample_shapes_norms_and_shared_ids():
    torch.manual_seed(0)
    head = nets.create("mlp_sample", in_channels=[3, 8], nc=16, init=None)  # PyTorch's init: outputs well above eps
    fk = [torch.randn(2, 3, 6, 6), torch.randn(2, 8, 3, 4)]
    fq = [torch.randn(2, 3, 6, 6), torch.randn(2, 8, 3, 4)]
    out_k, ids = head(fk, num_patches=10)
    assert [tuple(o.shape) for o in out_k] == [(20, 16), (20, 16)]
    assert [tuple(i.shape) for i in ids] == [(10,), (10,)]
    for o in out_k:
        assert torch.allclose(o.norm(dim=1), torch.ones(o.shape[0]), atol=1e-5)  # x / (|x| + 1e-7)
    for i, f in zip(ids, fk):
        assert len(set(i.tolist())) == len(i) and 0 <= i.min() and i.max() < f.shape[2] * f.shape[3]
    # row b * P + p is image b's feature at position ids[p], through the layer's MLP
    f = fk[1]
    pos = ids[1][3].item()
    vec = f[1, :, pos // 4, pos % 4]
    proj = head.mlp_1(vec)
    assert torch.allclose(out_k[1][10 + 3], proj / (proj.norm() + 1e-7), atol=1e-6)
    # the query features reuse the key's positions
    out_q, ids_q = head(fq, num_patches=10, patch_ids=ids)
    assert all(torch.equal(a, b) for a, b in zip(ids, ids_q))
    vec_q = fq[0][0, :, ids[0][7] // 6, ids[0][7] % 6]
    proj_q = head.mlp_0(vec_q)
    assert torch.allclose(out_q[0][7], proj_q / (proj_q.norm() + 1e-7), atol=1e-6)
    # fewer positions than patches: all of them, in a random order
    out_small, ids_small = head(fk, num_patches=100)
    assert out_small[1].shape == (2 * 12, 16) and sorted(ids_small[1].tolist()) == list(range(12))


def test_patch_sample_whole_map():
    torch.manual_seed(0)
    head = nets.create("mlp_sample", in_channels=[4], nc=8)
    f = torch.randn(2, 4, 3, 5)
    (out,), (ids,) = head([f], num_patches=0)
    assert out.shape == (2, 8, 3, 5) and ids == []
    proj = head.mlp_0(f.permute(0, 2, 3, 1).reshape(2, 15, 4))  # [B, HW, nc]
    # as in the authors' code, normalised over the positions (dim 1 of [B, HW, nc])
    expected = proj / (proj.norm(dim=1, keepdim=True) + 1e-7)
    assert torch.allclose(out, expected.permute(0, 2, 1).reshape(2, 8, 3, 5), atol=1e-6)


def test_patch_sample_refuses_mismatches():
    with pytest.raises(ValueError):
        PatchSampleF([])
    with pytest.raises(ValueError):
        PatchSampleF([3, 0])
    head = PatchSampleF([3, 8], nc=4)
    with pytest.raises(ValueError, match="2"):
        head([torch.randn(1, 3, 4, 4)])


def test_patch_sample_builds_on_meta_and_loads_the_authors_keys(tmp_path):
    with torch.device("meta"):
        meta = nets.create("mlp_sample", in_channels=[3, 16], nc=8, init=None)
    assert {k: tuple(v.shape) for k, v in meta.state_dict().items()} == {
        "mlp_0.0.weight": (8, 3), "mlp_0.0.bias": (8,), "mlp_0.2.weight": (8, 8), "mlp_0.2.bias": (8,),
        "mlp_1.0.weight": (8, 16), "mlp_1.0.bias": (8,), "mlp_1.2.weight": (8, 8), "mlp_1.2.bias": (8,)}
    torch.manual_seed(1)
    src = nets.create("mlp_sample", in_channels=[3, 16], nc=8)
    torch.save(src.state_dict(), tmp_path / "latest_net_F.pth")
    dst = nets.create("mlp_sample", in_channels=[3, 16], nc=8)
    dst.load_state_dict(torch.load(tmp_path / "latest_net_F.pth", weights_only=True), strict=True)
    feats = [torch.randn(1, 3, 4, 4), torch.randn(1, 16, 2, 2)]
    a, ids = src(feats, num_patches=3)
    b, _ = dst(feats, num_patches=3, patch_ids=ids)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_cut_generator_and_head_together():
    torch.manual_seed(0)
    G = nets.create("resnet_9blocks_antialias", ngf=4)
    head = nets.create("mlp_sample", in_channels=G.feature_channels(CUT_LAYERS), nc=8)
    feats = G.features(torch.rand(2, 3, 16, 16), CUT_LAYERS)
    out, ids = head(feats, num_patches=16)
    assert [tuple(o.shape) for o in out] == [(32, 8)] * 5
    assert len(ids) == 5
