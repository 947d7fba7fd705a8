"""tools/bench.py counts FLOPs with torch's FlopCounterMode; its counts match the networks' known
figures (forward, batch 1, 256x256; a multiply-add counts 2)."""

from __future__ import annotations


import pytest

from conftest import load_tool



@pytest.fixture(scope="module")
def bench():
    return load_tool("bench")


@pytest.mark.parametrize("name, kw, gflop", [
    ("resnet_9blocks", {"norm": "instance"}, 99.1),  # CycleGAN's generator
    ("unet_256", {"norm": "batch"}, 12.1),  # pix2pix's
    ("basic", {"in_channels": 6, "norm": "batch"}, 6.39),  # the 70x70 PatchGAN on an (A, B) pair
])
def test_flop_counts_match_the_known_figures(bench, name, kw, gflop):
    assert bench.network_flops(name, 256, **kw) / 1e9 == pytest.approx(gflop, rel=0.005)


def test_flops_scale_with_pixels(bench):
    """Convolutions cost per output pixel: a quarter of the pixels, a quarter of the FLOPs."""
    assert bench.network_flops("resnet_9blocks", 128) * 4 == pytest.approx(bench.network_flops("resnet_9blocks", 256))


def test_cpu_model_and_flags(bench):
    model, flags = bench.cpu_model()
    assert isinstance(model, str) and model
    assert set(flags) <= set(bench.CPU_FLAGS)


def test_time_breakdown_sorts_ops_by_kind(bench):
    """The profile names where a step's time goes: a convolution's time is counted as convolution, a
    dtype cast's as a cast."""
    import torch

    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 16, 16)

    def step():
        conv(x.to(torch.float64).float()).sum().backward()

    kinds = bench.time_breakdown(step, steps=2)
    assert set(kinds) == set(bench.TIME_KINDS) | {"other"}
    assert kinds["convolutions and matrix products"] > 0
    assert kinds["dtype casts and copies"] > 0
    assert all(v >= 0 for v in kinds.values())
