"""The fast path (i2i/runtime.py, i2i/nets/fast_layers.py): correct gradients, closeness to fp32,
and an fp32 path that is bit for bit the plain one."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from i2i import nets
from i2i.errors import UsageError
from hypothesis import given, settings
from hypothesis import strategies as st

from i2i.nets.fast_layers import (GEMM_MAX_POSITIONS, FastInstanceNorm2d, GemmConv2d, GemmConvTranspose2d,
                                  NNPackConv2d, nnpack_available, use_fast_layers)
from i2i.runtime import Runtime, busy_cpus, pick_threads, resolve

CPU = torch.device("cpu")
BF16 = Runtime(CPU, torch.bfloat16, channels_last=True, fast_layers=True)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2)."""
    return 10 * torch.log10(4 / (a.double() - b.double()).pow(2).mean()).item()


def resnet(ngf=8, **kw):
    torch.manual_seed(0)
    return nets.create("resnet_6blocks", in_channels=3, out_channels=3, ngf=ngf, norm="instance", dropout=False, **kw)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_fast_instance_norm_matches_fp64_nchw_reference(batch, channels_last, training):
    torch.manual_seed(0)
    x, g = torch.randn(batch, 16, 12, 12) * 3 + 1, torch.randn(batch, 16, 12, 12)
    x64 = x.double().requires_grad_()
    F.instance_norm(x64).backward(g.double())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    xi = x.contiguous(memory_format=fmt).requires_grad_()
    y = FastInstanceNorm2d(16).train(training)(xi)
    y.backward(g.contiguous(memory_format=fmt))
    assert (y.double() - F.instance_norm(x.double())).abs().max() < 1e-5
    assert (xi.grad.double() - x64.grad).abs().max() < 1e-5


def test_fast_generator_gradients_match_fp64_nchw_reference():
    """channels_last at batch 1 is where nn.InstanceNorm2d's CPU backward goes wrong on torch 2.14."""
    G = resnet()
    ref = copy.deepcopy(G).double()
    fast = use_fast_layers(copy.deepcopy(G)).to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    ref(x.double()).square().mean().backward()
    fast(x.contiguous(memory_format=torch.channels_last)).square().mean().backward()
    scale = max(p.grad.abs().max().item() for p in ref.parameters())
    worst = max((p.grad.double() - q.grad).abs().max().item() for p, q in zip(fast.parameters(), ref.parameters()))
    assert worst < 1e-4 * scale


def test_fast_layers_keep_the_state_dict_layout():
    G = resnet()
    keys = list(G.state_dict())
    use_fast_layers(G, nnpack=True)
    assert list(G.state_dict()) == keys
    assert any(isinstance(m, FastInstanceNorm2d) for m in G.modules())
    G.load_state_dict(resnet().state_dict(), strict=True)


@settings(max_examples=60, deadline=None)
@given(transposed=st.booleans(), batch=st.integers(1, 3), channels=st.tuples(st.integers(1, 6), st.integers(1, 6)),
       kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)), stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)), size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       extra=st.tuples(st.integers(0, 2), st.integers(0, 2)), bias=st.booleans(),
       layout=st.sampled_from(["nchw", "channels_last", "unbatched"]))
def test_gemm_convolutions_are_the_same_function(transposed, batch, channels, kernel, stride, padding, size, extra,
                                                 bias, layout):
    """Any shape a Conv2d or ConvTranspose2d accepts, small enough for the matrix-product path (or not:
    then the plain kernel runs): the same output and gradients as the plain layer, in fp64."""
    import torch.nn as nn

    torch.manual_seed(0)
    cin, cout = channels
    if transposed:
        output_padding = tuple(min(e, s - 1) for e, s in zip(extra, stride))
        plain = nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding=output_padding, bias=bias)
    else:
        plain = nn.Conv2d(cin, cout, kernel, stride, padding, bias=bias)
    plain = plain.double()
    fast = use_fast_layers(copy.deepcopy(plain))
    assert type(fast) is (GemmConvTranspose2d if transposed else GemmConv2d)
    x = torch.randn(batch, cin, *size, dtype=torch.float64)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "unbatched":
        x = x[0]
    try:
        want = plain(x.requires_grad_())
    except RuntimeError:  # a shape the plain layer refuses (output smaller than 1 pixel)
        return
    got = fast(x)
    assert got.shape == want.shape and (got - want).abs().max() < 1e-10
    g = torch.randn_like(want)
    grads = [torch.autograd.grad(y, [x, *layer.parameters()], g) for y, layer in ((want, plain), (got, fast))]
    for a, b in zip(*grads):
        assert (a - b).abs().max() < 1e-10


def test_unet_bottleneck_takes_the_matrix_product_path_close_to_fp32():
    """unet_256 at 256x256: the layers at 8x8 and below take the matrix-product path (counted), and a
    bf16 training step's generator gradients stay close to fp32's."""
    torch.manual_seed(0)
    G = nets.create("unet_256", in_channels=3, out_channels=3, ngf=4, norm="batch", dropout=False)
    fast = BF16.prepare(copy.deepcopy(G), training=True)
    calls = []
    for m in fast.modules():
        if isinstance(m, (GemmConv2d, GemmConvTranspose2d)):
            m.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0] * min(i[0].shape[2] * i[0].shape[3],
                                                                                     o.shape[2] * o.shape[3])))
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    G(x).square().mean().backward()
    with BF16.autocast():
        out = fast(x.contiguous(memory_format=torch.channels_last))
    out.float().square().mean().backward()
    assert len(calls) == 16 and sum(c <= GEMM_MAX_POSITIONS for c in calls) == 8  # 4 down, 4 up at 8x8 and below
    scale = max(p.grad.abs().max().item() for p in G.parameters())
    worst = max((p.grad - q.grad.float()).abs().max().item() for p, q in zip(G.parameters(), fast.parameters()))
    assert worst < 0.05 * scale


@pytest.mark.skipif(not nnpack_available(), reason="this torch build has no NNPACK")
def test_nnpack_inference_is_close_to_fp32():
    G = resnet(ngf=16).eval()
    fast = use_fast_layers(copy.deepcopy(G), nnpack=True)
    assert sum(isinstance(m, NNPackConv2d) for m in fast.modules()) == 14  # 12 3x3 in the blocks, 2 7x7
    x = torch.rand(2, 3, 64, 48) * 2 - 1
    with torch.no_grad():
        assert (fast(x) - G(x)).abs().max() < 1e-4
    x.requires_grad_()  # with autograd on, the plain kernel runs (NNPACK has no backward)
    fast(x).sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("name", ["resnet_6blocks", "unet_32"])
def test_fp32_is_the_plain_path_bit_for_bit(name, training):
    """Every fast path (fast norm, NNPACK, the bottleneck's matrix products) is off under --precision
    fp32: the same modules, and outputs and gradients equal to the last bit."""
    rt = resolve("cpu", "fp32", threads=torch.get_num_threads(), training=training)
    torch.manual_seed(0)
    norm = "instance" if name.startswith("resnet") else "batch"
    G = nets.create(name, in_channels=3, out_channels=3, ngf=8, norm=norm, dropout=False).train(training)
    prepared = rt.prepare(copy.deepcopy(G), training=training)
    assert [type(m) for m in prepared.modules()] == [type(m) for m in G.modules()]
    assert all(p.is_contiguous() and p.dtype == torch.float32 for p in prepared.parameters())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.set_grad_enabled(training):
        a, b = prepared(x), G(x)
    assert torch.equal(a, b)
    if training:
        a.square().mean().backward()
        b.square().mean().backward()
        assert all(torch.equal(p.grad, q.grad) for p, q in zip(prepared.parameters(), G.parameters()))


@pytest.mark.parametrize("mode_name", ["pix2pix", "cycle"])
def test_fp32_fast_training_step_tracks_the_plain_one(mode_name, aligned_dir, unpaired_dirs, tmp_path):
    """auto on a CPU without native bf16 trains in fp32 with the fast layers: the same step to
    summation order (losses to 1e-4, gradients at cosine 0.9999)."""
    data = unpaired_dirs if mode_name == "cycle" else aligned_dir
    plain_losses, plain_grads = _one_step_grads(mode_name, Runtime(CPU), data, tmp_path / "a")
    fast_losses, fast_grads = _one_step_grads(mode_name, Runtime(CPU, fast_layers=True), data, tmp_path / "b")
    for k in plain_losses:
        assert abs(float(fast_losses[k]) - float(plain_losses[k])) <= 1e-4 * abs(float(plain_losses[k])) + 1e-6, k
    for net in {k.split(".")[0] for k in plain_grads}:  # whole networks: a bias before instance norm has a
        keys = [k for k in plain_grads if k.split(".")[0] == net]  # zero gradient, up to rounding noise
        a, b = (torch.cat([grads[k].flatten() for k in keys]) for grads in (plain_grads, fast_grads))
        assert F.cosine_similarity(a, b, 0) >= 0.9999, net


def test_bf16_inference_is_within_40_db_of_fp32():
    from i2i.translator import Translator

    G = resnet().eval()
    spec = {"name": "resnet_6blocks", "in_channels": 3}
    fp32 = Translator(copy.deepcopy(G), spec, "AtoB", "test", Runtime(CPU))
    bf16 = Translator(BF16.prepare(copy.deepcopy(G), training=False), spec, "AtoB", "test", BF16)
    assert next(bf16.net.parameters()).dtype == torch.bfloat16
    x = torch.rand(2, 3, 32, 40) * 2 - 1
    out = bf16(x)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert psnr(out, fp32(x)) >= 40


def _one_step_grads(mode_name, runtime, data, tmp_path):
    from conftest import tiny_config, tiny_unpaired_config

    from i2i import modes

    if mode_name == "cycle":
        cfg = tiny_unpaired_config(data, tmp_path, net_g="resnet_6blocks", ngf=8, ndf=8, pool_size=0)
    else:
        cfg = tiny_config(data, tmp_path)
    torch.manual_seed(0)
    mode = modes.create(cfg, runtime=runtime)
    for opt in mode.optimizers.values():  # keep the weights: compare the gradients of one step
        opt.step = lambda *a, **k: None
    batch = next(iter(torch.utils.data.DataLoader(mode.make_dataset(cfg), batch_size=1,
                                                  sampler=[(0, 0)])))
    torch.manual_seed(1)
    losses, _ = mode.train_step(batch)
    return losses, {f"{n}.{k}": p.grad.float().clone() for n, net in mode.nets.items()
                    for k, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("mode_name", ["pix2pix", "cycle"])
def test_bf16_training_step_tracks_fp32(mode_name, aligned_dir, unpaired_dirs, tmp_path):
    """One step under bf16 autocast, channels_last and the fast norm, against the fp32 step.

    Tolerances: losses within 2%; each network's whole gradient at cosine >= 0.98 to fp32's for the
    discriminators (smooth losses), >= 0.8 for the generators, whose gradients are dominated by L1
    terms: sign(output - target) flips wherever bf16 and fp32 outputs straddle the target. (Measured:
    D 0.990-0.997, G 0.87-0.95.)
    """
    data = unpaired_dirs if mode_name == "cycle" else aligned_dir
    fp32_losses, fp32_grads = _one_step_grads(mode_name, Runtime(CPU), data, tmp_path / "a")
    bf16_losses, bf16_grads = _one_step_grads(mode_name, BF16, data, tmp_path / "b")
    assert fp32_grads.keys() == bf16_grads.keys()
    for k in fp32_losses:
        assert abs(float(bf16_losses[k]) - float(fp32_losses[k])) <= 0.02 * abs(float(fp32_losses[k])) + 1e-3, k
    for net in {k.split(".")[0] for k in fp32_grads}:
        keys = [k for k in fp32_grads if k.split(".")[0] == net]
        a, b = (torch.cat([grads[k].flatten() for k in keys]) for grads in (fp32_grads, bf16_grads))
        assert F.cosine_similarity(a, b, 0) >= (0.98 if net.startswith("D") else 0.8), net


def test_precision_device_and_threads_options():
    with pytest.raises(UsageError, match="--precision"):
        resolve("cpu", "fp16")
    with pytest.raises(UsageError, match="--device"):
        resolve("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            resolve("cuda")
    with pytest.raises(UsageError, match="--threads"):
        pick_threads(0)
    assert pick_threads(3) == 3
    rt = resolve("cpu", "fp32", threads=1)
    assert torch.get_num_threads() == 1 and rt.describe() == "cpu, fp32, 1 thread"


def test_auto_threads_leave_busy_cpus_alone(monkeypatch):
    import os

    from i2i import runtime

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(runtime, "busy_cpus", lambda: 1)
    assert pick_threads() == 3
    monkeypatch.setattr(runtime, "busy_cpus", lambda: 9)
    assert pick_threads() == 1


def test_busy_cpus_counts_other_running_tasks():
    import subprocess
    import sys
    import time

    before = busy_cpus()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.3)
        assert busy_cpus() >= min(before + 1, 2)
    finally:
        for p in spinners:
            p.kill()


def test_auto_precision_follows_the_hardware(monkeypatch):
    from i2i import runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert resolve("cpu", "auto", threads=1).bf16
    assert resolve("cpu", "auto", threads=1, training=True).channels_last
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    infer, train = resolve("cpu", "auto", threads=1), resolve("cpu", "auto", threads=1, training=True)
    assert not infer.bf16 and infer.nnpack and infer.fast_layers
    # training on such CPUs: fp32 with the fast layers (no NNPACK: it has no backward)
    assert train == Runtime(CPU, threads=1, fast_layers=True)


def test_bf16_training_run_saves_loadable_weights(aligned_dir, tmp_path):
    from conftest import tiny_config

    from i2i.train import train
    from i2i.translator import load_translator

    cfg = tiny_config(aligned_dir, tmp_path, max_steps=2, precision="bf16", threads=1)
    run = train(cfg)
    t = load_translator(run, runtime=resolve("cpu", "fp32", threads=1))
    assert all(p.is_contiguous() for p in t.net.parameters())
    assert t(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)



def test_compile_option_compiles_in_place(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: calls.append(type(self).__name__))
    G = resnet()
    keys = list(G.state_dict())
    assert resolve("cpu", "fp32", threads=1, compile=True).prepare(G, training=True) is G
    assert calls == ["ResnetGenerator"] and list(G.state_dict()) == keys


def test_short_bf16_run_tracks_the_fp32_run(aligned_dir, tmp_path):
    """Twenty steps of a tiny pix2pix in each precision: the L1 term falls in both, and the two
    curves stay within 3% of each other at every step (measured: under 0.5%)."""
    import json

    from conftest import tiny_config

    from i2i.train import train

    curves = {}
    for precision in ("fp32", "bf16"):
        cfg = tiny_config(aligned_dir, tmp_path / precision, max_steps=20, log_every=1, precision=precision,
                          threads=1, dropout=False, epochs=20, epochs_decay=0, lr=2e-3)
        run = train(cfg)
        rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        curves[precision] = [r["G_L1"] for r in rows if "G_L1" in r]
    fp32, bf16 = curves["fp32"], curves["bf16"]
    assert len(fp32) == len(bf16) == 20
    assert fp32[-1] < 0.97 * fp32[0] and bf16[-1] < 0.97 * bf16[0]
    assert max(abs(a - b) / a for a, b in zip(fp32, bf16)) < 0.03
