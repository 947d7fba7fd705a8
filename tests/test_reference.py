"""Generator files of pytorch-CycleGAN-and-pix2pix: exact outputs on the shared fixtures, state-dict
cleaning, architecture inference, and refusal of pickled code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from i2i import nets
from i2i.errors import I2IError
from i2i.reference import clean_state_dict, infer_generator_spec, load_state_dict

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "reference_generators"
MANIFEST = FIXTURES / "manifest.json"
HAVE_FIXTURES = MANIFEST.is_file()
NO_FIXTURES = f"reference fixtures not found at {FIXTURES}"

if HAVE_FIXTURES:
    _manifest = json.loads(MANIFEST.read_text())
    TOL = float(_manifest.get("tolerance_max_abs", 1e-4))
    CASES = [pytest.param(c, id=c["checkpoint"].removesuffix(".pth")) for c in _manifest["cases"]]
else:
    TOL = 1e-4
    CASES = [pytest.param(None, id="no-fixtures", marks=pytest.mark.skip(reason=NO_FIXTURES))]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny ops run faster on one thread


def _pairs(case):
    for pair in case["pairs"]:
        x = torch.from_numpy(np.load(FIXTURES / pair["input"]))
        y = torch.from_numpy(np.load(FIXTURES / pair["expected_output"]))
        assert list(x.shape) == pair["shape"]
        yield x, y


def _expected_spec(case):
    net_g = case["netG"]
    spec = {"in_channels": case["input_nc"], "out_channels": case["output_nc"], "ngf": case["ngf"],
            "norm": case["norm"]}
    if net_g.startswith("resnet_"):
        spec |= {"name": "resnet", "n_blocks": int(net_g.split("_")[1].removesuffix("blocks")),
                 "dropout": case["use_dropout"]}
    else:
        spec |= {"name": "unet", "num_downs": int(net_g.split("_")[1]).bit_length() - 1}
    return spec


# --- the shared fixtures ----------------------------------------------------------------------

def test_fixture_manifest_is_readable():
    if not HAVE_FIXTURES:
        pytest.skip(NO_FIXTURES)
    assert len(CASES) >= 1
    for param in CASES:
        case = param.values[0]
        assert (FIXTURES / case["checkpoint"]).is_file()
        assert case["pairs"]


@pytest.mark.parametrize("case", CASES)
def test_reference_file_reproduces_outputs(case):
    sd = load_state_dict(FIXTURES / case["checkpoint"])
    spec = infer_generator_spec(sd)
    want = _expected_spec(case)
    assert {k: spec[k] for k in want} == want
    net = nets.create(**spec, init=None)
    net.load_state_dict(sd, strict=True)
    net.eval()
    with torch.no_grad():
        for x, y in _pairs(case):
            out = net(x)
            assert out.shape == y.shape
            assert (out - y).abs().max().item() <= TOL


BF16_MIN_PSNR = 40.0  # dB on [-1, 1] outputs; measured 49 to 96 dB on these fixtures (AVX512-BF16 CPU)


def _psnr(out: torch.Tensor, y: torch.Tensor) -> float:
    mse = ((out.float() - y) / 2).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("case", CASES)
def test_reference_file_through_load_translator(case, precision):
    """fp32 reproduces the reference exactly; bf16 (what --precision auto picks on bf16 hardware) is
    close but not exact, which is why the README sends bit-exact users to --precision fp32."""
    from i2i.runtime import input_dtype, resolve
    from i2i.translator import load_translator

    tr = load_translator(FIXTURES / case["checkpoint"], runtime=resolve("cpu", precision))
    assert not tr.net.training
    assert tr.in_channels == case["input_nc"]
    for x, y in _pairs(case):
        with torch.no_grad():
            out = tr.net(x.to(input_dtype(tr.net))).float()
        if precision == "fp32":
            assert (out - y).abs().max().item() <= TOL
            assert (tr(x) - y).abs().max().item() <= TOL  # sizes are multiples: no padding involved
        else:
            assert _psnr(out, y) >= BF16_MIN_PSNR
            assert _psnr(tr(x), y) >= BF16_MIN_PSNR


@pytest.mark.parametrize("case", CASES)
def test_raw_file_quirks_are_cleaned(case):
    raw = torch.load(FIXTURES / case["checkpoint"], map_location="cpu", weights_only=True)
    sd = load_state_dict(FIXTURES / case["checkpoint"])
    stats = ("running_mean", "running_var", "num_batches_tracked")
    if case["norm"] == "instance":
        assert not any(k.endswith(stats) for k in sd)
    else:
        # batch-norm statistics are kept, whatever the file's age
        assert {k for k in raw if k.endswith(stats)} == {k for k in sd if k.endswith(stats)}
        assert any(k.endswith("running_mean") for k in sd)
    assert set(sd) <= set(raw)
    for k in sd:
        assert torch.equal(sd[k], raw[k])


# --- clean_state_dict on state dicts made here ------------------------------------------------

def test_clean_drops_instance_norm_statistics():
    net = nets.create("resnet_6blocks", ngf=4, norm="instance", init=None)
    sd = dict(net.state_dict())
    norm_names = [n for n, m in net.named_modules() if isinstance(m, nn.InstanceNorm2d)]
    assert "model.2" in norm_names and "model.10.conv_block.2" in norm_names
    dirty = dict(sd)
    for n in norm_names:
        c = 16  # any size; they have to go
        dirty[f"{n}.running_mean"] = torch.zeros(c)
        dirty[f"{n}.running_var"] = torch.ones(c)
        dirty[f"{n}.num_batches_tracked"] = torch.tensor(0)
    with pytest.raises(RuntimeError):
        nets.create("resnet_6blocks", ngf=4, norm="instance", init=None).load_state_dict(dirty, strict=True)
    cleaned = clean_state_dict(dirty)
    assert set(cleaned) == set(sd)
    fresh = nets.create("resnet_6blocks", ngf=4, norm="instance", init=None)
    fresh.load_state_dict(cleaned, strict=True)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, sd[k])
    assert infer_generator_spec(cleaned)["norm"] == "instance"


def test_clean_keeps_batch_norm_statistics():
    sd = dict(nets.create("unet_32", ngf=4, norm="batch", init=None).state_dict())
    assert sum(k.endswith("running_mean") for k in sd) > 0
    assert clean_state_dict(sd).keys() == sd.keys()
    sd = dict(nets.create("resnet_6blocks", ngf=4, norm="batch", init=None).state_dict())
    assert clean_state_dict(sd).keys() == sd.keys()


def test_batch_norm_file_without_num_batches_tracked_loads():
    torch.manual_seed(0)
    src = nets.create("unet_32", ngf=4, norm="batch")
    for m in src.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    old = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(old) < len(src.state_dict())
    cleaned = clean_state_dict(old)
    dst = nets.create("unet_32", ngf=4, norm="batch", init=None)
    dst.load_state_dict(cleaned, strict=True)
    for k, v in old.items():
        assert torch.equal(dst.state_dict()[k], v)
    src.eval(), dst.eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_load_state_dict_from_file_strips_dataparallel_prefix(tmp_path):
    net = nets.create("resnet_6blocks", ngf=4, norm="instance", init=None)
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "g.pth")
    sd = load_state_dict(tmp_path / "g.pth")
    assert set(sd) == set(net.state_dict())


# --- architecture inference round trips -------------------------------------------------------

ROUND_TRIPS = [
    pytest.param("resnet_6blocks", dict(norm="instance", dropout=False), id="resnet-instance"),
    pytest.param("resnet_6blocks", dict(norm="instance", dropout=True), id="resnet-instance-dropout"),
    pytest.param("resnet_6blocks", dict(norm="none", dropout=False), id="resnet-none"),
    pytest.param("resnet_6blocks", dict(norm="batch", dropout=True), id="resnet-batch-dropout"),
    pytest.param("resnet_6blocks", dict(norm="batch", dropout=False), id="resnet-batch"),
    pytest.param("resnet", dict(n_blocks=3, in_channels=1, out_channels=2), id="resnet3-1to2"),
    pytest.param("unet_64", dict(norm="batch"), id="unet64-batch"),
    pytest.param("unet_64", dict(norm="instance"), id="unet64-instance"),
    pytest.param("unet_32", dict(norm="none", in_channels=1, out_channels=3), id="unet32-none-1to3"),
]


@pytest.mark.parametrize("name, kw", ROUND_TRIPS)
def test_infer_generator_spec_round_trip(name, kw):
    src = nets.create(name, ngf=4, init=None, **kw)
    spec = infer_generator_spec(clean_state_dict(src.state_dict()))
    assert spec["norm"] == kw.get("norm", "instance" if name.startswith("resnet") else "batch")
    assert spec["in_channels"] == kw.get("in_channels", 3)
    assert spec["out_channels"] == kw.get("out_channels", 3)
    assert spec["ngf"] == 4
    if spec["name"] == "resnet":
        assert spec["dropout"] == kw.get("dropout", False)
    nets.create(**spec, init=None).load_state_dict(src.state_dict(), strict=True)


def test_infer_generator_spec_rejects_other_networks():
    with pytest.raises(ValueError):
        infer_generator_spec(nets.create("basic", ndf=4, init=None).state_dict())


# --- pickled code is refused ------------------------------------------------------------------

def _touch(path):  # what a malicious pickle would run on load
    Path(path).write_text("executed")
    return 0


class Payload:
    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return _touch, (self.sentinel,)


def test_pickled_object_is_refused_and_not_executed(tmp_path):
    sentinel = tmp_path / "sentinel"
    net = nets.create("resnet_6blocks", ngf=4, norm="instance", init=None)
    sd = dict(net.state_dict())
    sd["model.1.extra"] = Payload(sentinel)
    path = tmp_path / "evil.pth"
    torch.save(sd, path)
    assert not sentinel.exists()

    with pytest.raises(Exception):
        load_state_dict(path)
    assert not sentinel.exists()

    from i2i.translator import load_translator

    with pytest.raises(I2IError):
        load_translator(path)
    assert not sentinel.exists()

    # the payload is live: an unsafe load would have run it
    torch.load(path, map_location="cpu", weights_only=False)
    assert sentinel.read_text() == "executed"


def test_non_state_dict_is_refused(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(ValueError):
        load_state_dict(tmp_path / "list.pth")
    torch.save({"a": torch.zeros(2), "b": 3}, tmp_path / "mixed.pth")
    with pytest.raises(ValueError):
        load_state_dict(tmp_path / "mixed.pth")


# --- i2i import: reference files become runs --------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_import_reproduces_reference_outputs(case, tmp_path):
    from typer.testing import CliRunner

    from i2i.cli import app
    from i2i.translator import load_translator

    result = CliRunner().invoke(app, ["import", str(FIXTURES / case["checkpoint"]), "--name", "zoo",
                                      "--checkpoints-dir", str(tmp_path), "--direction", "BtoA"])
    assert result.exit_code == 0, result.output
    from i2i.runtime import resolve

    tr = load_translator(tmp_path / "zoo", runtime=resolve("cpu", "fp32"))  # bit-exact needs fp32
    assert tr.direction == "BtoA" and not tr.net.training
    for x, y in _pairs(case):
        assert (tr(x) - y).abs().max().item() <= TOL


def test_import_refuses_malformed_files(tmp_path):
    from typer.testing import CliRunner

    from i2i.cli import app

    sentinel = tmp_path / "sentinel"
    sd = dict(nets.create("resnet_6blocks", ngf=4, norm="instance", init=None).state_dict())
    sd["model.1.extra"] = Payload(sentinel)
    torch.save(sd, tmp_path / "evil.pth")
    torch.save(nets.create("basic", ndf=4, init=None).state_dict(), tmp_path / "disc.pth")
    wrong = dict(nets.create("resnet_6blocks", ngf=4, norm="instance", init=None).state_dict())
    wrong["model.1.weight"] = torch.zeros(4, 3, 3, 3)  # a 3x3 stem: the shapes no longer fit
    torch.save(wrong, tmp_path / "wrong.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    for name in ("evil", "disc", "wrong", "junk"):
        result = CliRunner().invoke(app, ["import", str(tmp_path / f"{name}.pth"), "--name", name,
                                          "--checkpoints-dir", str(tmp_path / "ck")])
        assert result.exit_code == 1, result.output
        assert result.output.startswith("error:") and f"{name}.pth" in result.output and "Traceback" not in result.output
        assert not (tmp_path / "ck" / name / "G.safetensors").exists()
    assert not sentinel.exists()


# --- CUT's antialiased ResNet generators (taesungp/contrastive-unpaired-translation) ---------------

@pytest.mark.parametrize("down, up", [(True, True), (True, False), (False, True)],
                         ids=["cut-default", "down-only", "up-only"])
def test_cut_authors_generator_file_imports_and_round_trips(tmp_path, down, up):
    from i2i.reference import read_generator

    torch.manual_seed(0)
    src = nets.create("resnet", n_blocks=4, ngf=4, in_channels=3, out_channels=3, norm="instance",
                      antialias=down, antialias_up=up).eval()
    sd = src.state_dict()
    assert any(k.endswith(".filt") for k in sd)  # fixed blur filters, saved like the authors' buffers
    path = tmp_path / "latest_net_G.pth"
    torch.save(sd, path)
    state_dict, spec = read_generator(path)
    assert spec == {"name": "resnet", "n_blocks": 4, "in_channels": 3, "out_channels": 3, "ngf": 4,
                    "norm": "instance", "dropout": False,
                    **({"antialias": True} if down else {}), **({"antialias_up": True} if up else {})}
    assert set(state_dict) == set(sd)
    net = nets.create(**spec, init=None)
    net.load_state_dict(state_dict, strict=True)
    x = torch.rand(1, 3, 16, 12) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net.eval()(x), src(x))


def test_cut_default_generator_spec_from_a_dataparallel_file(tmp_path):
    from i2i.reference import read_generator

    src = nets.create("resnet_9blocks_antialias", ngf=4, norm="instance", dropout=True)
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, tmp_path / "G.pth")
    _, spec = read_generator(tmp_path / "G.pth")
    assert spec["n_blocks"] == 9 and spec["antialias"] is True and spec["antialias_up"] is True
    assert spec["dropout"] is True and spec["ngf"] == 4


def test_plain_resnet_spec_has_no_antialias_flags():
    spec = infer_generator_spec(nets.create("resnet_6blocks", ngf=4, init=None).state_dict())
    assert "antialias" not in spec and "antialias_up" not in spec


def test_cut_file_with_a_missing_filter_does_not_fit(tmp_path):
    from i2i.reference import read_generator

    sd = nets.create("resnet_9blocks_antialias", ngf=4, init=None).state_dict()
    del sd["model.11.filt"]
    torch.save(sd, tmp_path / "G.pth")
    with pytest.raises(I2IError, match="model.11.filt"):
        read_generator(tmp_path / "G.pth")


def test_cut_authors_generator_file_through_import_and_load(tmp_path):
    from i2i.reference import import_generator
    from i2i.runtime import resolve
    from i2i.translator import load_translator

    torch.manual_seed(0)
    src = nets.create("resnet_9blocks_antialias", ngf=4).eval()
    torch.save(src.state_dict(), tmp_path / "latest_net_G.pth")
    run = import_generator(tmp_path / "latest_net_G.pth", tmp_path / "runs" / "cut")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    for model in (run, tmp_path / "latest_net_G.pth"):  # the imported run, and --model x.pth directly
        t = load_translator(model, runtime=resolve("cpu", "fp32"))
        assert t.spec["antialias"] is True and t.spec["antialias_up"] is True
        with torch.no_grad():
            assert torch.allclose(t.net(x), src(x), atol=1e-5)
