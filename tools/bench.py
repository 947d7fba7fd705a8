"""Speed benchmark: training steps and translation, at fp32 and at the fast (auto) setting.

    python tools/bench.py             # the reference's defaults: 256x256, batch 1; about 5 minutes on 2 cores
    python tools/bench.py --quick     # 128x128 and fewer runs: under two minutes
    python tools/bench.py --only cycle --precision fp32 --runs 3

Prints one table: seconds per step for pix2pix (unet_256), CycleGAN (2 x resnet_9blocks), CUT and
FastCUT (one resnet_9blocks_antialias, the PatchNCE head), images
per second for translating a folder of JPEGs with resnet_9blocks and unet_256 (reading, the network
and writing included), and each measurement's peak resident memory. Every cell runs in its own
process (so peak memory is its own), times several runs after a warm-up and reports the median.
Training steps use random tensors (data loading excluded); weights are random.

For comparison, the issue that asked for this quotes the reference code on a 2-core machine with AMX:
10.6 s per CycleGAN step, 0.75-0.89 s per pix2pix step, 1.8 images/s translating with
resnet_9blocks, 4.2 GB peak memory in CycleGAN training.
"""

from __future__ import annotations

import argparse
import json
import os
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


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def bench_train(mode_name: str, net_g: str, precision: str, size: int, runs: int, warmup: int, threads: int | None) -> dict:
    import torch

    from i2i import modes
    from i2i.runtime import resolve

    cfg = modes.make_config(mode_name, a=".", b=".", name="bench", crop_size=size, load_size=size, net_g=net_g)
    runtime = resolve("cpu", precision, threads, training=True)
    torch.manual_seed(0)
    mode = modes.create(cfg, runtime=runtime)
    batch = {"A": torch.rand(1, 3, size, size) * 2 - 1, "B": torch.rand(1, 3, size, size) * 2 - 1}
    times = []
    for i in range(warmup + runs):
        t = time.perf_counter()
        mode.train_step(batch)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return {"value": statistics.median(times), "runs": times, "runtime": runtime.describe()}


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
        times = []
        for i in range(warmup + runs):
            t = time.perf_counter()
            summary = translate_files(translator, [str(src)], tmp / f"out{i}")
            elapsed = time.perf_counter() - t
            assert summary.written == images, summary.failed
            if i >= warmup:
                times.append(images / elapsed)
    return {"value": statistics.median(times), "runs": times, "runtime": translator.runtime.describe()}


def run_cell(args) -> None:
    kind, net, _ = CELLS[args.cell]
    net = net.replace("_N", f"_{args.size}")
    if kind == "train":
        result = bench_train(args.cell, net, args.precision, args.size, args.runs, args.warmup, args.threads)
    else:
        result = bench_translate(net, args.precision, args.size, args.runs, args.warmup, args.threads, args.images)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128x128, 2 runs, 8 images: under two minutes")
    parser.add_argument("--only", action="append", choices=sorted(CELLS), help="run only these rows (repeatable)")
    parser.add_argument("--precision", action="append", choices=["fp32", "auto", "bf16"],
                        help="columns (repeatable) [default: fp32 and auto]")
    parser.add_argument("--runs", type=int, help="timed runs per cell [default: 3, quick: 2]")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--size", type=int, help="image size [default: 256, quick: 128]")
    parser.add_argument("--images", type=int, help="images per translate run [default: 24, quick: 8]")
    parser.add_argument("--threads", type=int, help="CPU threads [default: i2i's auto choice]")
    parser.add_argument("--cell", choices=sorted(CELLS), help=argparse.SUPPRESS)  # one measurement, in a subprocess
    args = parser.parse_args()
    args.runs = args.runs or (2 if args.quick else 3)
    args.size = args.size or (128 if args.quick else 256)
    args.images = args.images or (8 if args.quick else 24)
    if args.cell:
        args.precision = args.precision[-1]
        return run_cell(args)

    import torch

    from i2i.runtime import cpu_has_native_bf16

    precisions = args.precision or ["fp32", "auto"]
    rows = args.only or list(CELLS)
    print(f"i2i benchmark: {args.size}x{args.size} (unet_{args.size}), batch 1, median of {args.runs} runs after {args.warmup} warm-up;\n"
          f"torch {torch.__version__}, {os.cpu_count()} CPUs, native bf16: {'yes' if cpu_has_native_bf16() else 'no'}",
          flush=True)
    results: dict[tuple[str, str], dict] = {}
    for row in rows:
        for precision in precisions:
            cmd = [sys.executable, __file__, "--cell", row, "--precision", precision, "--runs", str(args.runs),
                   "--warmup", str(args.warmup), "--size", str(args.size), "--images", str(args.images)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{row} at {precision} failed:\n{done.stderr.strip()}")
            results[row, precision] = json.loads(done.stdout.strip().splitlines()[-1])
            r = results[row, precision]
            print(f"  {row} @ {precision} ({r['runtime']}): {r['value']:.3f} {CELLS[row][2]}; "
                  f"runs {' '.join(f'{v:.3f}' for v in r['runs'])}", flush=True)

    head = f"{'work':<26}{'unit':<10}" + "".join(f"{p:>10}{'peak MB':>9}" for p in precisions)
    if len(precisions) > 1:
        head += f"{'speed-up':>10}"
    print("\n" + head + "\n" + "-" * len(head))
    for row in rows:
        unit = CELLS[row][2]
        line = f"{row:<26}{unit:<10}"
        for p in precisions:
            r = results[row, p]
            line += f"{r['value']:>10.3f}{r['peak_rss_mb']:>9.0f}"
        if len(precisions) > 1:
            a, b = results[row, precisions[0]]["value"], results[row, precisions[-1]]["value"]
            line += f"{(a / b if unit == 's/step' else b / a):>9.2f}x"
        print(line)


if __name__ == "__main__":
    main()
