"""Seconds per training step at the pix2pix defaults (unet_256, 256x256, batch 1), data loading excluded.

    python tools/bench_train_step.py [--steps 20] [--threads 2] [--net-g unet_256] [--size 256]

Prints each step's time and the median after warm-up. The reference code takes 0.75-0.89 s per step
on this project's 2-core CPU machines (issue 2).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from i2i.config import make_config
from i2i.modes.pix2pix import Pix2Pix


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--net-g", default="unet_256")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=1)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = make_config("pix2pix", a=".", name="bench", net_g=args.net_g, crop_size=args.size,
                      load_size=args.size, batch_size=args.batch_size)
    mode = Pix2Pix(cfg, "cpu")
    batch = {"A": torch.rand(args.batch_size, 3, args.size, args.size) * 2 - 1,
             "B": torch.rand(args.batch_size, 3, args.size, args.size) * 2 - 1}
    times = []
    for i in range(args.warmup + args.steps):
        t = time.perf_counter()
        mode.train_step(batch)
        dt = time.perf_counter() - t
        if i >= args.warmup:
            times.append(dt)
    print(f"pix2pix {args.net_g} {args.size}x{args.size} batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print("step times (s): " + " ".join(f"{t:.3f}" for t in times))
    print(f"median {statistics.median(times):.3f} s/step, min {min(times):.3f}, max {max(times):.3f}")


if __name__ == "__main__":
    main()
