"""Seconds per training step of a mode at its defaults (batch 1), data loading excluded.

    python tools/bench_train_step.py --mode pix2pix     # unet_256, 256x256
    python tools/bench_train_step.py --mode cycle       # 2 x resnet_9blocks, 256x256
    python tools/bench_train_step.py --mode dual --steps 5 --size 128

Prints each step's time and the median after warm-up. The reference code, on this project's 2-core
CPU machines (2 threads, idle), takes 0.75-0.89 s per pix2pix step and 10.6 s per CycleGAN step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from i2i import modes
from i2i.config import make_config


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="pix2pix", choices=sorted(modes.IMPLEMENTED))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--net-g", default=None, help="default: the mode's")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=1)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = make_config(args.mode, a=".", b=".", name="bench", net_g=args.net_g, crop_size=args.size,
                      load_size=args.size, batch_size=args.batch_size)
    torch.manual_seed(0)
    mode = modes.create(cfg, "cpu")
    shape = (args.batch_size, 3, args.size, args.size)
    batch = {"A": torch.rand(shape) * 2 - 1, "B": torch.rand(shape) * 2 - 1}
    times = []
    for i in range(args.warmup + args.steps):
        t = time.perf_counter()
        mode.train_step(batch)
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
    print(f"{args.mode}: {cfg.net_g} {args.size}x{args.size} batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print("step times (s): " + " ".join(f"{t:.3f}" for t in times))
    print(f"median {statistics.median(times):.3f} s/step, min {min(times):.3f}, max {max(times):.3f}")


if __name__ == "__main__":
    main()
