"""Speed against this machine's own limits: a roofline benchmark of training and translation.

    python tools/bench.py             # the reference's defaults: 256x256, batch 1; about 8 minutes on 2 cores
    python tools/bench.py --quick     # 128x128, fewer rows and runs: under two minutes
    python tools/bench.py --only pix2pix --precision fp32 --precision auto --runs 16
    python tools/bench.py --only pix2pix --precision bf16 --breakdown   # where a step's time goes

First the machine: its CPU model and the instruction sets that matter (AVX2, AVX512, AVX512-BF16,
VNNI, AMX), memory bandwidth (copying 256 MB), and the convolution ceilings measured on the
networks' own layer shapes (a ResNet block's 3x3 256-channel convolution at 64x64, the PatchGAN's
4x4 256->512 one at 32x32, a 4x4 stride-2 128->256 down-sampling at 64x64), at batch 1: GFLOP/s
forward and forward+backward in fp32 and, where the CPU computes it natively, bf16; and int8
forward (torch's x86 quantized convolution) where it has VNNI or AMX. A ceiling is the best of
those shapes.

Then each workload, in its own process (so peak memory is its own), median of several runs after a
warm-up: seconds per training step of pix2pix (unet_256 + PatchGAN), CycleGAN (2 x resnet_9blocks),
CUT and FastCUT on random tensors (data loading excluded), and images per second translating a
folder of JPEGs (reading and writing included). Beside each time: the work's GFLOP, counted by
torch's FlopCounterMode on one step or image (never typed in), the GFLOP/s achieved, and the
fraction of the relevant ceiling (forward+backward for training, forward for translation, at the
precision the row ran in). The fp32 column is the plain eager NCHW path, which is how the
reference runs the same networks; the auto column is what ``--precision auto`` picks here.

How to read it: a fraction near 100% means the work runs at the speed of the machine's best
convolution and only less arithmetic could make it faster; a low one means time goes elsewhere
(memory-bound layers, norms, copies, the optimiser) and a profile is the next step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

CELLS = {  # name -> (kind, network, unit); unet_N is unet_256 at 256x256, unet_128 at 128x128
    "pix2pix": ("train", "unet_N", "s/step"),
    "cycle": ("train", "resnet_9blocks", "s/step"),
    "cut": ("train", "resnet_9blocks_antialias", "s/step"),
    "fastcut": ("train", "resnet_9blocks_antialias", "s/step"),
    "translate resnet_9blocks": ("translate", "resnet_9blocks", "images/s"),
    "translate unet": ("translate", "unet_N", "images/s"),
}
QUICK_ROWS = ["pix2pix", "cycle", "translate resnet_9blocks", "translate unet"]
# (what, in, out, kernel, stride, padding, size): the heaviest layer shapes of the networks above
CONV_SHAPES = [
    ("resnet block 3x3 256ch @64", 256, 256, 3, 1, 1, 64),
    ("patchgan 4x4 256->512 @32", 256, 512, 4, 1, 1, 32),
    ("down 4x4/2 128->256 @64", 128, 256, 4, 2, 1, 64),
]
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_model() -> tuple[str, list[str]]:
    """The CPU's model name and which of CPU_FLAGS it has (:func:`i2i.runtime.cpu_info`)."""
    from i2i.runtime import cpu_info

    model, flags = cpu_info()
    return model or platform.processor() or platform.machine(), [f for f in CPU_FLAGS if f in flags]


def count_flops(fn) -> float:
    """FLOPs of ``fn()`` as torch's FlopCounterMode counts them (a multiply-add is 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def network_flops(name: str, size: int, **kw) -> float:
    """Forward FLOPs of registered network ``name`` (default width) on one ``size`` x ``size`` input,
    counted on the meta device (shapes only: nothing is computed or allocated)."""
    import torch

    from i2i import nets

    with torch.device("meta"):
        net = nets.create(name, init=None, **kw)
        channels = kw.get("in_channels", 3)
        with torch.no_grad():
            return count_flops(lambda: net(torch.zeros(1, channels, size, size)))


def timed(fn, runs: int, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``runs`` calls after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def memory_bandwidth(runs: int) -> float:
    """GB/s copying 256 MB (bytes read plus bytes written)."""
    import torch

    a = torch.ones(64 * 2**20)
    b = torch.empty_like(a)
    return 2 * a.numel() * 4 / timed(lambda: b.copy_(a), runs) / 1e9


def conv_ceilings(runs: int, native_bf16: bool, int8: bool) -> dict[str, dict]:
    """Best GFLOP/s over CONV_SHAPES per (precision, pass): {"fp32 fwd": {"value", "shape"}, ...}."""
    import warnings

    import torch
    import torch.nn as nn

    best: dict[str, dict] = {}

    def keep(key, flops, seconds, shape):
        rate = flops / seconds / 1e9
        if rate > best.get(key, {}).get("value", 0):
            best[key] = {"value": rate, "shape": shape}

    for shape, cin, cout, k, stride, pad, size in CONV_SHAPES:
        for dtype in [torch.float32] + [torch.bfloat16] * native_bf16:
            name = "fp32" if dtype == torch.float32 else "bf16"
            formats = [torch.contiguous_format, torch.channels_last] if name == "fp32" else [torch.channels_last]
            for fmt in formats:
                conv = nn.Conv2d(cin, cout, k, stride, pad, bias=False).to(dtype=dtype, memory_format=fmt)
                x = torch.randn(1, cin, size, size, dtype=dtype).contiguous(memory_format=fmt)
                with torch.no_grad():
                    fwd = count_flops(lambda: conv(x))
                    keep(f"{name} fwd", fwd, timed(lambda: conv(x), runs), shape)
                xg = x.clone().requires_grad_()

                def step():
                    conv(xg).sum().backward()

                keep(f"{name} fwd+bwd", count_flops(step), timed(step, runs), shape)
        if int8:
            import torch.ao.nn.quantized as nnq

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.backends.quantized.engine = "x86"
                qconv = nnq.Conv2d(cin, cout, k, stride, pad)
                qx = torch.quantize_per_tensor(torch.randn(1, cin, size, size), 0.05, 64, torch.quint8)
                qx = qx.contiguous(memory_format=torch.channels_last)
                flops = count_flops(lambda: nn.functional.conv2d(torch.zeros(1, cin, size, size),
                                                                 torch.zeros(cout, cin, k, k), None, stride, pad))
                keep("int8 fwd", flops, timed(lambda: qconv(qx), runs), shape)
    return best


# op-name fragments -> where a training step's time goes (torch.profiler's self CPU time per op)
TIME_KINDS = {
    "convolutions and matrix products": ("convolution", "aten::mm", "aten::addmm", "aten::bmm", "im2col", "col2im"),
    "dtype casts and copies": ("aten::copy_", "aten::_to_copy", "aten::clone", "aten::contiguous"),
    "optimiser": ("adam", "optimizer", "aten::_foreach"),
    "norms and activations": ("norm", "relu", "tanh", "threshold", "sigmoid"),
}


def time_breakdown(step, steps: int = 3) -> dict[str, float]:
    """Seconds per ``step()`` by kind of op (TIME_KINDS, the rest as "other"), from torch.profiler's
    self CPU times: the profile that says what a faster step would have to cut."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    kinds = dict.fromkeys([*TIME_KINDS, "other"], 0.0)
    for event in prof.key_averages():
        name = event.key.lower()
        kind = next((k for k, parts in TIME_KINDS.items() if any(part.lower() in name for part in parts)), "other")
        kinds[kind] += event.self_cpu_time_total / 1e6 / steps
    return kinds


def bench_train(mode_name: str, net_g: str, precision: str, size: int, runs: int, warmup: int, threads: int | None,
                breakdown: bool = False) -> dict:
    import torch

    from i2i import modes
    from i2i.runtime import resolve

    from i2i.distributed import World
    from i2i.train import settle_training_precision

    cfg = modes.make_config(mode_name, a=".", b=".", name="bench", crop_size=size, load_size=size, net_g=net_g)
    runtime = resolve("cpu", precision, threads, training=True)
    torch.manual_seed(0)
    mode = modes.mode_class(mode_name)(cfg, runtime=runtime)
    runtime = settle_training_precision(cfg, mode, runtime, World())  # as i2i train decides auto
    runtime.prepare_mode(mode)
    batch = {"A": torch.rand(1, 3, size, size) * 2 - 1, "B": torch.rand(1, 3, size, size) * 2 - 1}
    flops = count_flops(lambda: mode.train_step(batch))
    times = []
    for i in range(warmup + runs):
        t = time.perf_counter()
        mode.train_step(batch)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return {"value": statistics.median(times), "runs": times, "runtime": runtime.describe(), "flops": flops,
            "rate": flops / statistics.median(times) / 1e9, "ceiling": ("bf16" if runtime.bf16 else "fp32") + " fwd+bwd",
            "breakdown": time_breakdown(lambda: mode.train_step(batch)) if breakdown else None}


def bench_translate(net_g: str, precision: str, size: int, runs: int, warmup: int, threads: int | None,
                    images: int) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from i2i import nets
    from i2i.runs import save_weights
    from i2i.runtime import resolve
    from i2i.translate import translate_files
    from i2i.translator import load_translator

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "in"
        src.mkdir()
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:size, 0:size] / size
        for i in range(images):  # smooth colour fields with noise: photo-like JPEG sizes
            base = np.stack([np.sin(6 * xx + i), np.cos(5 * yy - i), np.sin(4 * (xx + yy) + 2 * i)], -1)
            arr = (127 + 100 * base + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8)
            Image.fromarray(arr).save(src / f"{i:04d}.jpg", quality=90)
        norm = "instance" if net_g.startswith("resnet") else "batch"
        spec = {"name": net_g, "in_channels": 3, "out_channels": 3, "ngf": 64, "norm": norm, "dropout": False}
        torch.manual_seed(0)
        save_weights(tmp / "G.safetensors", nets.create(**spec), spec)
        translator = load_translator(tmp / "G.safetensors", runtime=resolve("cpu", precision, threads))
        flops = network_flops(net_g, size, norm=norm)
        times = []
        for i in range(warmup + runs):
            t = time.perf_counter()
            summary = translate_files(translator, [str(src)], tmp / f"out{i}")
            elapsed = time.perf_counter() - t
            assert summary.written == images, summary.failed
            if i >= warmup:
                times.append(images / elapsed)
    rate = statistics.median(times)
    return {"value": rate, "runs": times, "runtime": translator.runtime.describe(), "flops": flops,
            "rate": flops * rate / 1e9, "ceiling": ("bf16" if translator.runtime.bf16 else "fp32") + " fwd"}


def run_cell(args) -> None:
    if args.cell == "machine":
        from i2i.runtime import cpu_has_native_bf16, pick_threads

        import torch

        torch.set_num_threads(pick_threads(args.threads))
        model, flags = cpu_model()
        runs = 3 if args.quick else 7
        result = {"model": model, "flags": flags, "threads": torch.get_num_threads(),
                  "bandwidth": memory_bandwidth(runs),
                  "ceilings": conv_ceilings(runs, cpu_has_native_bf16(),
                                            bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)))}
    else:
        kind, net, _ = CELLS[args.cell]
        net = net.replace("_N", f"_{args.size}")
        if kind == "train":
            result = bench_train(args.cell, net, args.precision, args.size, args.runs, args.warmup, args.threads,
                                 args.breakdown)
        else:
            result = bench_translate(net, args.precision, args.size, args.runs, args.warmup, args.threads, args.images)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def subprocess_cell(args, cell: str, precision: str) -> dict:
    runs = args.runs
    if runs is None:  # pix2pix's short steps swing over 8 runs; over 16 they settle
        runs = 2 if args.quick else 16 if cell == "pix2pix" else 5
    cmd = [sys.executable, __file__, "--cell", cell, "--precision", precision, "--runs", str(runs),
           "--warmup", str(args.warmup), "--size", str(args.size), "--images", str(args.images)]
    cmd += ["--threads", str(args.threads)] if args.threads else []
    cmd += ["--quick"] if args.quick else []
    cmd += ["--breakdown"] if args.breakdown else []
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{cell} at {precision} failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_breakdown(row: str, precision: str, r: dict, ceiling: float | None) -> None:
    """Where one step's time goes (profiled, so a little slower than the timed runs), and the bound it
    sets: were everything but the convolutions free, the step would reach ``bound`` of the ceiling."""
    kinds = r["breakdown"]
    total = sum(kinds.values())
    print(f"\n{row} @ {precision}: one profiled step, {1000 * total:.0f} ms")
    for kind, seconds in kinds.items():
        print(f"  {kind:<34}{1000 * seconds:>7.1f} ms {100 * seconds / total:>4.0f}%")
    conv = kinds["convolutions and matrix products"]
    if not ceiling:
        print("  (no ceiling measured, so no bound: drop --no-machine to have one)")
    elif conv:
        print(f"  convolutions alone: {r['flops'] / conv / 1e9:.0f} GFLOP/s; with every other op free the step would "
              f"reach {100 * r['flops'] / conv / 1e9 / ceiling:.0f}% of the {r['ceiling']} ceiling")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128x128, four rows, 2 runs, 8 images: under two minutes")
    parser.add_argument("--only", action="append", choices=sorted(CELLS), help="run only these rows (repeatable)")
    parser.add_argument("--precision", action="append", choices=["fp32", "auto", "bf16"],
                        help="columns (repeatable) [default: fp32 and auto]")
    parser.add_argument("--runs", type=int, help="timed runs per cell, as given [default: 5 (pix2pix 16), quick: 2]")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--size", type=int, help="image size [default: 256, quick: 128]")
    parser.add_argument("--images", type=int, help="images per translate run [default: 24, quick: 8]")
    parser.add_argument("--threads", type=int, help="CPU threads for every cell [default: i2i's auto choice, made once]")
    parser.add_argument("--no-machine", action="store_true", help="skip the ceilings (their columns stay empty)")
    parser.add_argument("--breakdown", action="store_true",
                        help="profile each training row: where a step's time goes, and the best fraction of the "
                             "ceiling its convolutions allow")
    parser.add_argument("--cell", choices=sorted(CELLS) + ["machine"], help=argparse.SUPPRESS)  # one measurement
    args = parser.parse_args()
    args.size = args.size or (128 if args.quick else 256)
    args.images = args.images or (8 if args.quick else 24)
    if args.cell:
        args.precision = (args.precision or ["auto"])[-1]
        args.runs = args.runs or 5
        return run_cell(args)

    import torch

    from i2i.runtime import pick_threads

    # one thread count for every cell, chosen once: per cell, i2i's auto choice would follow whatever
    # else is running at that moment, and the columns would compare different machines
    args.threads = pick_threads(args.threads)
    precisions = args.precision or ["fp32", "auto"]
    rows = args.only or (QUICK_ROWS if args.quick else list(CELLS))
    model, flags = cpu_model()
    runs = args.runs or ("2" if args.quick else "5 (pix2pix 16)")
    print(f"i2i roofline benchmark: {args.size}x{args.size} (unet_{args.size}), batch 1, median of {runs} runs "
          f"after {args.warmup} warm-up, {args.threads} thread(s)\nCPU: {model}; {os.cpu_count()} CPUs; {' '.join(flags) or 'none of'} "
          f"{'' if flags else ' '.join(CPU_FLAGS)}\ntorch {torch.__version__}", flush=True)
    ceilings = {}
    if not args.no_machine:
        machine = subprocess_cell(args, "machine", "fp32")
        ceilings = machine["ceilings"]
        print(f"\nmachine ({machine['threads']} threads): memory bandwidth {machine['bandwidth']:.1f} GB/s (copy, read + write)")
        for key, c in ceilings.items():
            print(f"  ceiling {key:<13} {c['value']:7.0f} GFLOP/s   ({c['shape']})")
        if not any(k.startswith("bf16") for k in ceilings):
            print("  bf16: not measured, this CPU has no native bf16 (it would be emulated)")
        print(flush=True)

    results: dict[tuple[str, str], dict] = {}
    for row in rows:
        for precision in precisions:
            r = results[row, precision] = subprocess_cell(args, row, precision)
            print(f"  {row} @ {precision} ({r['runtime']}): {r['value']:.3f} {CELLS[row][2]}; "
                  f"runs {' '.join(f'{v:.3f}' for v in r['runs'])}", flush=True)

    head = f"{'work':<25}{'GFLOP':>7}  " + "".join(f"{p:>10}{'GFLOP/s':>8}{'ceil%':>6}{'MB':>6}  " for p in precisions)
    if len(precisions) > 1:
        head += f"{'speed-up':>8}"
    print("\n" + head + "\n" + "-" * len(head))
    for row in rows:
        unit = CELLS[row][2]
        line = f"{row:<25}{results[row, precisions[0]]['flops'] / 1e9:>7.1f}  "
        for p in precisions:
            r = results[row, p]
            ceiling = ceilings.get(r["ceiling"], {}).get("value")
            frac = f"{100 * r['rate'] / ceiling:>5.0f}%" if ceiling else f"{'-':>6}"
            line += f"{r['value']:>10.3f}{r['rate']:>8.0f}{frac}{r['peak_rss_mb']:>6.0f}  "
        if len(precisions) > 1:
            a, b = results[row, precisions[0]]["value"], results[row, precisions[-1]]["value"]
            line += f"{(a / b if unit == 's/step' else b / a):>7.2f}x"
        print(line)
    if args.breakdown and not any(CELLS[row][0] == "train" for row in rows):
        print("\n--breakdown profiles training rows; none was run")
    for (row, p), r in results.items():
        if r.get("breakdown"):
            print_breakdown(row, p, r, ceilings.get(r["ceiling"], {}).get("value"))
    print("\ntimes: s/step (training) or images/s (translate); GFLOP: per step or image (FlopCounterMode); ceil%: "
          "of the forward+backward (training) or forward (translate) ceiling at the row's precision; MB: peak memory")


if __name__ == "__main__":
    main()
