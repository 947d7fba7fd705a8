"""Is int8 translation worth shipping? Static post-training int8 (ONNX Runtime) against fp32 and bf16.

For each generator (a trained CUT ResNet, resnet_9blocks_antialias, and a trained pix2pix U-Net,
unet_256) this tool:

1. exports the fp32 generator to ONNX at a fixed 1 x 3 x 256 x 256 shape, [0, 1] in and out as
   ``i2i export`` does (``torch.onnx.export(dynamo=True)``), then runs ORT's ``quant_pre_process``
   (shape inference and graph optimisation, which folds BatchNorm into the convolutions);
2. quantizes it statically with ``onnxruntime.quantization.quantize_static``: QDQ format, per-channel
   int8 weights, uint8 activations, calibrated on the first ``--calib`` (8) input images, once per
   calibration method (MinMax, Entropy, Percentile); only Conv / ConvTranspose (and what ORT can fuse
   with them) are quantized, so InstanceNormalization and the rest stay in float;
3. on the next ``--eval`` (30) held-out images computes the PSNR (8-bit output images, data range
   255) of each int8 model's output, and of i2i's bf16 output for reference, against i2i's fp32
   torch output (``load_translator(..., runtime=resolve("cpu", "fp32", threads))``);
4. times batch-1 256 x 256 translation at ``--threads`` threads, median of ``--runs`` runs after a
   warm-up, for torch fp32, torch bf16 as i2i runs it (``resolve("cpu", "bf16", threads)``: bf16
   weights, channels_last, fast layers), ORT fp32 and ORT int8 (the best calibration), and lists
   the op types of the optimised int8 session (QLinearConv present = ORT runs integer conv kernels;
   MLAS picks its AVX512-VNNI / AMX kernels from cpuid).

5. does the same through PyTorch (``--stage pt2e``): torch.export, torchao's pt2e
   X86InductorQuantizer, torch.compile (inductor with freezing) lowering to oneDNN int8 convolutions
   (needs torchao), with i2i's fp32 and bf16 translators under the same torch.compile as controls
   (``--stage compiled``).

Every stage writes its result under ``--work`` so that stages can be run one at a time (each short
enough to hold a shared CPU lock fairly) and the table printed at the end::

    export NO_ALBUMENTATIONS_UPDATE=1
    python tools/bench_int8.py --stage all                   # everything, then the table
    # or stage by stage (each under a couple of minutes on 2 cores):
    python tools/bench_int8.py --model resnet --stage export
    python tools/bench_int8.py --model resnet --stage ref
    python tools/bench_int8.py --model resnet --stage quant --method minmax
    python tools/bench_int8.py --model resnet --stage psnr  --method minmax
    python tools/bench_int8.py --model resnet --stage speed --variant percentile-asym
    python tools/bench_int8.py --model resnet --stage profile
    python tools/bench_int8.py --model resnet --stage pt2e
    python tools/bench_int8.py --model resnet --stage compiled
    python tools/bench_int8.py --stage report

The keep rule (from the issue): int8 ships only if its PSNR against fp32 is at least 38 dB and it is
at least 1.4x faster than bf16 on the CPU at hand. The verdicts read the PSNR rule per image (the
worst held-out image, ``min``): no user's photo should come out below it; the mean is printed too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import torch

MODELS = {
    "resnet": {"model": "/tmp/h2z/ck/h2z_cut_128", "images": "/work/shared/datasets/horse2zebra/testA", "paired": False},
    "unet": {"model": "/tmp/t16/ck/facades_p2p", "images": "/work/shared/datasets/facades/test", "paired": True},
}
METHODS = ("minmax", "entropy", "percentile")
# the ONNX Runtime settings --stage all tries (what each option does: --help)
SETTINGS = [{"method": "minmax"}, {"method": "entropy", "bins": 0}, {"method": "entropy"}, {"method": "percentile"},
            {"method": "percentile", "calib_symmetric": "false"},
            {"method": "percentile", "calib_symmetric": "false", "exclude_ends": True},
            {"method": "percentile", "calib_symmetric": "false", "ops": "Conv"},
            {"method": "percentile", "calib_symmetric": "false", "float_outputs": True}]
SIZE = 256
KEEP_PSNR, KEEP_SPEEDUP = 38.0, 1.4


# ----------------------------------------------------------------------------------------------- inputs

def input_tensors(name: str, direction: str | None, start: int, count: int) -> list[torch.Tensor]:
    """1 x 3 x 256 x 256 network inputs in [-1, 1], read by i2i's own loader (the input half of A|B pairs)."""
    from i2i.data.codecs import input_half, prepare_image
    from i2i.data.images import list_images, load_network_image

    cfg = MODELS[name]
    paths = sorted(list_images(cfg["images"]))[start: start + count]
    out = []
    for p in paths:
        img = load_network_image(p, 3)
        if cfg["paired"]:
            img = input_half(img, direction, p)
        if img.size != (SIZE, SIZE):
            raise SystemExit(f"{p}: {img.size[0]}x{img.size[1]}, this benchmark expects {SIZE}x{SIZE} inputs")
        out.append(prepare_image(img, 3, None)[0][None])
    return out


def to_uint8(y: torch.Tensor | np.ndarray, unit: bool) -> np.ndarray:
    """N x C x H x W output -> uint8, as i2i saves images (``tensor_to_image``); ``unit``: values in [0, 1]."""
    y = torch.as_tensor(y).float()
    if not unit:
        y = (y.clamp(-1, 1) + 1) / 2
    return (y.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


# ----------------------------------------------------------------------------------------------- models

def translator(name: str, precision: str, threads: int):
    from i2i.runtime import resolve
    from i2i.translator import load_translator

    return load_translator(MODELS[name]["model"], runtime=resolve("cpu", precision, threads))


def ort_session(path: Path, threads: int, optimized: Path | None = None, profile: str | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ORT's worker threads spin after each run by default, which would slow whatever runs next (the
    # timings interleave the paths); off, the threads sleep as torch's do
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized is not None:
        so.optimized_model_filepath = str(optimized)
    if profile is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def stage_export(name: str, work: Path, args) -> None:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from i2i.export import UnitRange
    from i2i.runtime import Runtime
    from i2i.translator import load_translator
    t = load_translator(MODELS[name]["model"], runtime=Runtime(torch.device("cpu")))  # plain fp32
    wrapped = UnitRange(t.net).eval()
    raw, prep = work / f"{name}.fp32.raw.onnx", work / f"{name}.fp32.onnx"
    example = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        program = torch.onnx.export(wrapped, (example,), dynamo=True, input_names=["x"], output_names=["y"],
                                    verbose=False)
        program.save(str(raw))
        expected = wrapped(example).numpy()
    quant_pre_process(str(raw), str(prep), skip_symbolic_shape=True)
    got = ort_session(prep, args.threads).run(None, {"x": example.numpy()})[0]
    diff = float(np.abs(got - expected).max())
    ops = op_types(prep)
    save(work / f"{name}.export.json", {"direction": t.direction, "max_abs_diff": diff, "ops": ops})
    print(f"{name}: exported {prep} (direction {t.direction}), ORT vs torch max |diff| {diff:.2e}; ops {ops}")


def op_types(path: Path) -> dict:
    import onnx

    counts: dict = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def stage_ref(name: str, work: Path, args) -> None:
    """i2i's fp32 and bf16 torch outputs (uint8) on the held-out images."""
    direction = load(work / f"{name}.export.json")["direction"]
    xs = input_tensors(name, direction, args.calib, args.eval)
    outs = {}
    for precision in ("fp32", "bf16"):
        t = translator(name, precision, args.threads)
        outs[precision] = np.concatenate([to_uint8(t(x), unit=False) for x in xs])
    np.savez_compressed(work / f"{name}.ref.npz", **outs)
    scores = [psnr(a, b) for a, b in zip(outs["bf16"], outs["fp32"])]
    save(work / f"{name}.psnr.bf16.json", summary(scores))
    print(f"{name}: reference outputs of {len(xs)} images; bf16 vs fp32 {summary(scores)}")


class Reader:
    """ORT calibration data: the first ``calib`` images, [0, 1]."""

    def __init__(self, xs):
        self.items = iter([{"x": ((x + 1) / 2).numpy()} for x in xs])

    def get_next(self):
        return next(self.items, None)

    def rewind(self):  # not needed by quantize_static, kept for the interface
        pass


def stage_quant(name: str, work: Path, args) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    direction = load(work / f"{name}.export.json")["direction"]
    xs = input_tensors(name, direction, 0, args.calib)
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[args.method]
    extra = {"ActivationSymmetric": False, "WeightSymmetric": True}
    if args.method == "percentile":
        extra["CalibPercentile"] = args.percentile
    if args.calib_symmetric != "default":
        extra["CalibTensorRangeSymmetric"] = args.calib_symmetric == "true"
    if args.float_outputs:  # no Q/DQ on convolution outputs (ORT then cannot fuse them into QLinearConv)
        extra["OpTypesToExcludeOutputQuantization"] = ["Conv", "ConvTranspose"]
    src = work / f"{name}.fp32.onnx"
    exclude = []
    if args.exclude_ends:  # the first and the last convolution stay in float
        import onnx

        convs = [n.name for n in onnx.load(str(src)).graph.node if n.op_type in ("Conv", "ConvTranspose")]
        exclude = [convs[0], convs[-1]]
    out = work / f"{name}.int8.{variant(args)}.onnx"
    if args.method == "entropy":
        _entropy_bins(args.bins)
    start = time.perf_counter()
    quantize_static(str(src), str(out), Reader(xs), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=method, op_types_to_quantize=args.ops.split(","), nodes_to_exclude=exclude,
                    extra_options=extra)
    took = time.perf_counter() - start
    print(f"{name}: {out} ({variant(args)}, {len(xs)} calibration images) in {took:.0f} s; ops {op_types(out)}")


def variant(args) -> str:
    """The name of a quantization setting: the method, then what differs from the defaults."""
    name = args.method
    if args.method == "entropy" and args.bins:
        name += f"-bins{args.bins}"
    if args.calib_symmetric != "default":
        name += "-sym" if args.calib_symmetric == "true" else "-asym"
    if args.exclude_ends:
        name += "-ends-fp32"
    if args.float_outputs:
        name += "-float-outputs"
    if args.ops != "Conv,ConvTranspose":
        name += "-" + args.ops.replace(",", "+")
    return name


def _entropy_bins(bins: int | None) -> None:
    """quantize_static passes no histogram size to the entropy calibrator, whose default (128 bins, the
    same as its 128 quantized bins) leaves it one candidate threshold, the full range: MinMax. Wrap
    ``create_calibrator`` to give it ``bins``."""
    if not bins:
        return
    import importlib

    q = importlib.import_module("onnxruntime.quantization.quantize")  # the package exports a function of that name
    original = q.create_calibrator

    def create(*a, extra_options=None, **kw):
        extra_options = dict(extra_options or {})
        extra_options.setdefault("num_bins", bins)
        return original(*a, extra_options=extra_options, **kw)

    q.create_calibrator = create


def stage_psnr(name: str, work: Path, args) -> None:
    direction = load(work / f"{name}.export.json")["direction"]
    xs = input_tensors(name, direction, args.calib, args.eval)
    ref = np.load(work / f"{name}.ref.npz")["fp32"]
    session = ort_session(work / f"{name}.int8.{variant(args)}.onnx", args.threads)
    scores = []
    for x, r in zip(xs, ref):
        y = session.run(None, {"x": ((x + 1) / 2).numpy()})[0]
        scores.append(psnr(to_uint8(y, unit=True)[0], r))
    result = summary(scores)
    save(work / f"{name}.psnr.{variant(args)}.json", result)
    print(f"{name} int8 {variant(args)}: PSNR vs fp32 {result}")


def summary(scores: list[float]) -> dict:
    finite = [min(s, 99.0) for s in scores]
    return {"n": len(scores), "mean": statistics.fmean(finite), "min": min(finite), "max": max(finite)}


def int8_variants(name: str, work: Path) -> dict:
    """Every int8 setting measured so far: its PSNR summary by name."""
    prefix = f"{name}.psnr."
    return {p.name[len(prefix):-5]: load(p) for p in sorted(work.glob(f"{prefix}*.json"))
            if p.name[len(prefix):-5] != "bf16"}


def shippable(variant_name: str) -> bool:
    """A setting that runs integer kernels (--float-outputs is a quality probe: float convolutions)."""
    return "float-outputs" not in variant_name


def best_method(name: str, work: Path) -> str | None:
    found = {k: v for k, v in int8_variants(name, work).items() if shippable(k)}
    return max(found, key=lambda m: found[m]["mean"]) if found else None


def median_rate(fn, x, runs: int, warmup: int) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return 1.0 / statistics.median(times), times


def stage_speed(name: str, work: Path, args) -> None:
    """Images/s of each path in ``--paths``, timed in interleaved rounds (one call of each path per
    round, the median over rounds), so that load from other processes hits every path alike."""
    direction = load(work / f"{name}.export.json")["direction"]
    x = input_tensors(name, direction, args.calib, 1)[0]
    x01 = ((x + 1) / 2).numpy()
    method = args.variant or best_method(name, work) or "minmax"
    result = load(work / f"{name}.speed.json") if (work / f"{name}.speed.json").exists() else {}
    calls = {}
    for path in args.paths.split(","):
        if path in ("torch_fp32", "torch_bf16", "torch_bf16_compiled"):
            t = translator(name, path.split("_")[1], args.threads)
            if path.endswith("_compiled"):
                import torch._inductor.config as inductor_config

                inductor_config.freezing = True
                t.net = torch.compile(t.net)
            calls[path] = (t, x)
        elif path == "pt2e_int8":
            calls[path] = (_pt2e_model(name, work, args), x)
        else:
            model = work / (f"{name}.fp32.onnx" if path == "ort_fp32" else f"{name}.int8.{method}.onnx")
            session = ort_session(model, args.threads, optimized=work / f"{name}.{path}.optimized.onnx")
            calls[path] = (_runner(session), x01)
    torch.set_num_threads(args.threads)
    times = {path: [] for path in calls}
    with torch.no_grad():
        for _ in range(args.warmup):
            for fn, inp in calls.values():
                fn(inp)
        for _ in range(args.runs):
            for path, (fn, inp) in calls.items():
                begin = time.perf_counter()
                fn(inp)
                times[path].append(time.perf_counter() - begin)
    for path, ts in times.items():
        rate = 1.0 / statistics.median(ts)
        result[path] = {"images_per_s": rate, "times": ts, "threads": args.threads}
        if path == "ort_int8":
            result[path]["method"] = method
            result[path]["optimized_ops"] = op_types(work / f"{name}.ort_int8.optimized.onnx")
        if "torch_bf16" in times:  # per round, so that a busy stretch slows both sides of the ratio
            result[path]["vs_bf16_per_round"] = statistics.median(b / t for b, t in zip(times["torch_bf16"], ts))
        print(f"{name} {path}: {rate:.3f} images/s (median of {args.runs}: {' '.join(f'{s:.3f}' for s in ts)} s)"
              + (f"; {result[path]['vs_bf16_per_round']:.2f}x bf16 (median per round)" if "torch_bf16" in times else ""))
    save(work / f"{name}.speed.json", result)
    if "ort_int8" in result:
        print(f"{name} ort_int8 ({method}) optimised graph ops: {result['ort_int8']['optimized_ops']}")


def _runner(session):
    return lambda a: session.run(None, {"x": a})


def _pt2e_model(name: str, work: Path, args):
    """i2i's fp32 generator quantized by torchao's pt2e X86InductorQuantizer (calibrated on the first
    ``--calib`` images) and compiled by inductor with freezing."""
    import torch._inductor.config as inductor_config
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from i2i.runtime import Runtime
    from i2i.translator import load_translator

    direction = load(work / f"{name}.export.json")["direction"]
    net = load_translator(MODELS[name]["model"], runtime=Runtime(torch.device("cpu"))).net.eval()
    cal = input_tensors(name, direction, 0, args.calib)
    inductor_config.freezing = True
    with torch.no_grad():
        model = torch.export.export(net, (cal[0],)).module()
        quantizer = xiq.X86InductorQuantizer()
        quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
        model = prepare_pt2e(model, quantizer)
        for x in cal:
            model(x)
        return torch.compile(convert_pt2e(model))


def stage_profile(name: str, work: Path, args) -> None:
    """Per-op-type time of the int8 session (which kernels run, and where the time goes)."""
    direction = load(work / f"{name}.export.json")["direction"]
    x01 = ((input_tensors(name, direction, args.calib, 1)[0] + 1) / 2).numpy()
    method = args.variant or best_method(name, work) or "minmax"
    for label, model in (("int8", f"{name}.int8.{method}.onnx"), ("fp32", f"{name}.fp32.onnx")):
        session = ort_session(work / model, args.threads, profile=str(work / f"{name}.prof.{label}"))
        for _ in range(3):
            session.run(None, {"x": x01})
        trace = json.loads(Path(session.end_profiling()).read_text())
        per: dict = {}
        for ev in trace:
            if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
                op = ev["args"].get("op_name", "?")
                per[op] = per.get(op, 0) + ev["dur"] / 3 / 1000
        total = sum(per.values())
        top = sorted(per.items(), key=lambda kv: -kv[1])
        save(work / f"{name}.profile.{label}.json", {"ms_per_image": per, "total_ms": total})
        print(f"{name} ORT {label} ({model}): {total:.0f} ms/image in kernels; "
              + ", ".join(f"{op} {ms:.0f}" for op, ms in top[:8]))


def stage_pt2e(name: str, work: Path, args) -> None:
    """The PyTorch route: torch.export, torchao's pt2e X86InductorQuantizer (per-channel int8 weights,
    uint8 activations, histogram observers), calibrated on the same images, lowered by torch.compile
    (inductor, freezing) to oneDNN int8 convolutions; PSNR and speed of the compiled model."""
    direction = load(work / f"{name}.export.json")["direction"]
    xs = input_tensors(name, direction, args.calib, args.eval)
    ref = np.load(work / f"{name}.ref.npz")["fp32"]
    compiled = _pt2e_model(name, work, args)
    with torch.no_grad():
        start = time.perf_counter()
        compiled(xs[0])
        took = time.perf_counter() - start
        scores = [psnr(to_uint8(compiled(x), unit=False)[0], r) for x, r in zip(xs, ref)]
        rate, times = median_rate(compiled, xs[0], args.runs, args.warmup)
    result = {"psnr": summary(scores), "images_per_s": rate, "times": times, "compile_s": took,
              "kernels": _inductor_kernels()}
    save(work / f"{name}.pt2e.json", result)
    print(f"{name} pt2e int8 (inductor): PSNR vs fp32 {result['psnr']}; {rate:.3f} images/s; compiled in {took:.0f} s;"
          f" kernels {result['kernels']}")


def _inductor_kernels() -> dict:
    """Convolution kernels in the newest inductor output file: onednn.qconv_pointwise = int8 oneDNN."""
    import glob
    import re
    import tempfile

    root = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or os.path.join(tempfile.gettempdir(),
                                                                     f"torchinductor_{os.environ.get('USER', 'root')}")
    files = sorted(glob.glob(os.path.join(root, "**", "*.py"), recursive=True), key=os.path.getmtime)
    for f in reversed(files):
        text = Path(f).read_text(errors="ignore")
        if "def call(" in text:
            found = re.findall(r"onednn\.qconv[a-z_0-9]*|mkldnn\._convolution[a-z_]*|extern_kernels\.convolution", text)
            return {k: found.count(k) for k in sorted(set(found))}
    return {}


def stage_compiled(name: str, work: Path, args) -> None:
    """Controls: i2i's fp32 and bf16 translators under torch.compile (inductor, freezing)."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    direction = load(work / f"{name}.export.json")["direction"]
    x = input_tensors(name, direction, args.calib, 1)[0]
    result = load(work / f"{name}.compiled.json") if (work / f"{name}.compiled.json").exists() else {}
    for precision in ("fp32", "bf16"):
        t = translator(name, precision, args.threads)
        t.net = torch.compile(t.net)
        rate, times = median_rate(t, x, args.runs, args.warmup + 1)
        result[f"torch_{precision}_compiled"] = {"images_per_s": rate, "times": times}
        print(f"{name} torch {precision} compiled: {rate:.3f} images/s")
        save(work / f"{name}.compiled.json", result)


def stage_report(work: Path, args) -> None:
    print(f"{'model':8} {'path':36} {'PSNR mean':>9} {'PSNR min':>9} {'images/s':>9} {'vs bf16':>8}")
    print("-" * 84)
    verdicts = []
    for name in args.models:
        speed = load(work / f"{name}.speed.json") if (work / f"{name}.speed.json").exists() else {}
        bf16 = speed.get("torch_bf16", {}).get("images_per_s")
        best = best_method(name, work)
        entries = [("torch_fp32", None), ("torch_bf16", "bf16"), ("torch_bf16_compiled", None), ("ort_fp32", None)]
        entries += [(f"int8 {m}", m) for m in int8_variants(name, work)]
        compiled = load(work / f"{name}.compiled.json") if (work / f"{name}.compiled.json").exists() else {}
        speed = {**speed, **compiled}
        entries += [(k, None) for k in compiled if k not in speed]
        for label, key in entries:
            p = work / f"{name}.psnr.{key}.json" if key else None
            ps = load(p) if p is not None and p.exists() else None
            timed = speed.get("ort_int8", {}).get("method")
            skey = "ort_int8" if label == f"int8 {timed}" else label if not label.startswith("int8") else None
            rate = speed.get(skey, {}).get("images_per_s") if skey else None
            per_round = speed.get(skey, {}).get("vs_bf16_per_round") if skey else None
            ratio = f"{per_round:.2f}x" if per_round else f"{rate / bf16:.2f}x" if rate and bf16 else ""
            print(f"{name:8} {label:36} {fmt(ps and ps['mean']):>9} {fmt(ps and ps['min']):>9} "
                  f"{fmt(rate, 3):>9} {ratio:>8}")
        pt2e = load(work / f"{name}.pt2e.json") if (work / f"{name}.pt2e.json").exists() else None
        if pt2e:
            rate = speed.get("pt2e_int8", {}).get("images_per_s") or pt2e["images_per_s"]
            ratio = speed.get("pt2e_int8", {}).get("vs_bf16_per_round") or (rate / bf16 if bf16 else float("nan"))
            print(f"{name:8} {'int8 pt2e x86 inductor':36} {pt2e['psnr']['mean']:>9.2f} {pt2e['psnr']['min']:>9.2f} "
                  f"{rate:>9.3f} {ratio:>7.2f}x")
            ok_q, ok_s = pt2e["psnr"]["min"] >= KEEP_PSNR, ratio >= KEEP_SPEEDUP
            verdicts.append(f"{name}: pt2e int8 PSNR {pt2e['psnr']['mean']:.2f} dB (min {pt2e['psnr']['min']:.2f}), "
                            f"{ratio:.2f}x bf16 -> "
                            f"{'keep' if ok_q and ok_s else 'leave out'}")
        if best:
            ps = load(work / f"{name}.psnr.{best}.json")
            if speed.get("ort_int8", {}).get("method") != best:
                verdicts.append(f"{name}: the int8 model timed is not the best one ({best}); rerun --stage speed")
            rate = speed.get("ort_int8", {}).get("images_per_s")
            ok_q = ps["min"] >= KEEP_PSNR
            ok_s = bool(rate and bf16 and rate / bf16 >= KEEP_SPEEDUP)
            verdicts.append(f"{name}: best int8 setting {best}, PSNR {ps['mean']:.2f} dB (min {ps['min']:.2f}) "
                            f"{'>=' if ok_q else '<'} {KEEP_PSNR}; int8/bf16 "
                            f"{(rate / bf16) if rate and bf16 else float('nan'):.2f}x {'>=' if ok_s else '<'} "
                            f"{KEEP_SPEEDUP}x -> {'keep' if ok_q and ok_s else 'leave out'}")
        print("-" * 84)
    for v in verdicts:
        print(v)


def fmt(v, digits: int = 2) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def save(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1))


def load(path: Path):
    return json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=[*MODELS, "all"], default="all")
    parser.add_argument("--stage", choices=["export", "ref", "quant", "psnr", "speed", "profile", "pt2e", "compiled", "report", "all"],
                        default="all")
    parser.add_argument("--method", choices=METHODS, default="minmax", help="calibration method (quant, psnr)")
    parser.add_argument("--variant", help="speed/profile: the int8 model to time (default: the best PSNR so far)")
    parser.add_argument("--bins", type=int, default=2048,
                        help="entropy calibration histogram bins (0: ORT's default of 128, which equals MinMax)")
    parser.add_argument("--calib-symmetric", choices=["default", "true", "false"], default="default",
                        help="symmetric calibration ranges (ORT's default: no for MinMax/Entropy, yes for Percentile)")
    parser.add_argument("--float-outputs", action="store_true",
                        help="leave convolution outputs unquantized (a quality probe: no QLinearConv then)")
    parser.add_argument("--exclude-ends", action="store_true", help="keep the first and last convolution in float")
    parser.add_argument("--resnet-run", default=MODELS["resnet"]["model"],
                        help="a trained run with a ResNet generator (its images: --resnet-images)")
    parser.add_argument("--resnet-images", default=MODELS["resnet"]["images"])
    parser.add_argument("--unet-run", default=MODELS["unet"]["model"], help="a trained pix2pix run with a U-Net")
    parser.add_argument("--unet-images", default=MODELS["unet"]["images"], help="its A|B test pairs")
    parser.add_argument("--work", type=Path, default=Path("/tmp/i2i_bench_int8"))
    parser.add_argument("--calib", type=int, default=8, help="calibration images (the first N)")
    parser.add_argument("--eval", type=int, default=30, help="held-out images after the calibration ones")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--percentile", type=float, default=99.999)
    parser.add_argument("--ops", default="Conv,ConvTranspose", help="op types to quantize")
    parser.add_argument("--paths", default="torch_fp32,torch_bf16,ort_fp32,ort_int8",
                        help="speed: among torch_fp32, torch_bf16, torch_bf16_compiled, ort_fp32, ort_int8, pt2e_int8")
    args = parser.parse_args()
    for name in MODELS:
        MODELS[name].update(model=getattr(args, f"{name}_run"), images=getattr(args, f"{name}_images"))
    args.models = list(MODELS) if args.model == "all" else [args.model]
    args.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    stages = {"export": stage_export, "ref": stage_ref, "quant": stage_quant, "psnr": stage_psnr,
              "speed": stage_speed, "profile": stage_profile, "pt2e": stage_pt2e, "compiled": stage_compiled}
    if args.stage == "report":
        return stage_report(args.work, args)
    for name in args.models:
        if args.stage != "all":
            stages[args.stage](name, args.work, args)
            continue
        for st in ("export", "ref"):
            stages[st](name, args.work, args)
        base = vars(args).copy()
        for setting in SETTINGS:
            vars(args).update(base, **setting)
            stage_quant(name, args.work, args)
            stage_psnr(name, args.work, args)
        vars(args).update(base)
        for st in ("speed", "profile", "pt2e", "compiled"):
            stages[st](name, args.work, args)
    if args.stage == "all":
        stage_report(args.work, args)


if __name__ == "__main__":
    main()
