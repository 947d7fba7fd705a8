"""Tiled translation against whole-image translation: accuracy, seams, speed and peak memory.

Part 1 (``--part accuracy``): on a 2048 x 1536 image that fits whole, for a ResNet/instance-norm
generator and a U-Net/batch-norm one, the PSNR of the tiled output against the whole-image output,
with the whole image's statistics (what ``i2i translate`` uses when the image fits
``--max-memory``), with thumbnail statistics at 1/2 and 1/4 of the size (what it uses when even
the statistics pass must shrink), and with naive per-tile normalisation; and the seam score: the
mean absolute difference between neighbouring pixels across tile borders over that inside tiles
(1.00: no seam). Two images: a collage of 48 dataset photos at their own resolution (detail
everywhere) and one photo enlarged 8x (a smooth, "real photo enlarged").

Part 2 (``--part memory``): ``i2i translate`` of a W x H JPEG (default 12000 x 9000) made by
enlarging a dataset photo, through resnet_9blocks (random weights: speed and memory do not depend
on them), in a child process: its peak RSS, pixels per second, and the whole-image path's pixels
per second on a 2048 x 1536 image in the same kind of child, as a ratio.

    python tools/bench_tiles.py --part accuracy --in-model RUN_OR_PTH --bn-model RUN_OR_PTH
    python tools/bench_tiles.py --part accuracy ... --image-size 1024x768 --tile 384 --exact
    python tools/bench_tiles.py --part memory --size 12000x9000 --max-memory 2G

Prints a table; every figure is one run (the network is deterministic). Needs
``../shared/datasets`` (horse2zebra, facades).
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def collage(folder: str, size=(2048, 1536)):
    from PIL import Image

    files = sorted(glob.glob(str(DATA / folder / "*.jpg")))
    canvas = Image.new("RGB", size)
    k = 0
    for y in range(0, size[1], 256):
        for x in range(0, size[0], 256):
            img = Image.open(files[k % len(files)]).convert("RGB")
            if img.width == 2 * img.height:  # an A|B pair: its right half (facades' label maps)
                img = img.crop((img.width // 2, 0, img.width, img.height))
            canvas.paste(img.resize((256, 256)), (x, y))
            k += 1
    return canvas


def enlarged(folder: str, size=(2048, 1536)):
    from PIL import Image

    img = Image.open(sorted(glob.glob(str(DATA / folder / "*.jpg")))[0]).convert("RGB")
    if img.width == 2 * img.height:
        img = img.crop((img.width // 2, 0, img.width, img.height))
    return img.resize(size, Image.BICUBIC)


def psnr(a, b) -> float:
    mse = ((a - b) ** 2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(4 / mse)  # values in [-1, 1]


def seam_score(y, plan) -> float:
    """Mean |neighbour difference| across the tiles' edges over that elsewhere."""
    import torch

    H, W = y.shape[1:]
    dx = (y[:, :, 1:] - y[:, :, :-1]).abs().mean(dim=(0, 1))  # difference between column x and x+1
    dy = (y[:, 1:, :] - y[:, :-1, :]).abs().mean(dim=(0, 2))
    def edges(n):
        size, starts = plan.axis(n)
        cut = set()
        for s in starts:
            cut |= {s - 1, s + size - 1}
        return sorted(c for c in cut if 0 <= c < n - 1)
    ex, ey = edges(W), edges(H)
    inside_x = torch.ones(W - 1, dtype=torch.bool)
    inside_x[ex] = False
    inside_y = torch.ones(H - 1, dtype=torch.bool)
    inside_y[ey] = False
    across = torch.cat([dx[ex], dy[ey]]).mean()
    inside = torch.cat([dx[inside_x], dy[inside_y]]).mean()
    return (across / inside).item()


def naive(t, x, plan):
    """Each tile translated on its own (its own statistics), blended the same way."""
    import torch

    from i2i import tiling

    H, W = x.shape[1:]
    (th, ys), (tw, xs) = plan.axis(H), plan.axis(W)
    wy, wx = tiling.ramps(ys, th, H), tiling.ramps(xs, tw, W)
    out = torch.zeros(3, H, W)
    for i, a in enumerate(ys):
        for j, b in enumerate(xs):
            out[:, a: a + th, b: b + tw] += t(x[None, :, a: a + th, b: b + tw])[0] * wy[i][:, None] * wx[j][None]
    return out / (tiling.weight_sum(ys, wy, H)[:, None] * tiling.weight_sum(xs, wx, W)[None])


def accuracy(args) -> None:
    import numpy as np
    import torch

    from i2i import tiling
    from i2i.data.regions import TensorSource
    from i2i.nets.norm_stats import self_normalising
    from i2i.runtime import resolve
    from i2i.translator import load_translator

    runtime = resolve("cpu", args.precision, None)
    print(f"precision {args.precision}; {runtime.describe()}")
    print(f"{'generator':<34} {'image':<9} {'tile':>5} {'stats':<14} {'PSNR dB':>8} {'seam':>6} {'s':>6}")
    for label, model, folder, tile in (("instance norm: " + Path(args.in_model).name, args.in_model, "horse2zebra/testA", 1024),
                                       ("batch norm: " + Path(args.bn_model).name, args.bn_model, "facades/test", 0)):
        t = load_translator(model, args.bn_direction if "batch" in label else None, runtime=runtime)
        tile = args.tile if args.tile and "batch" not in label else tile or tiling.min_tile(t)
        plan = tiling.TilePlan(tile, args.overlap, None, t.multiple, tiling.min_tile(t))
        size = tuple(int(v) for v in args.image_size.lower().split("x"))
        for name, img in (("collage", collage(folder, size)), ("enlarged", enlarged(folder, size))):
            x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 127.5 - 1
            start = time.perf_counter()
            whole = t(x[None])[0]
            print(f"{label:<34} {name:<9} {'-':>5} {'whole image':<14} {'-':>8} {'-':>6} {time.perf_counter() - start:6.1f}")
            src = TensorSource(x)
            kinds = [("whole image", None)]
            if self_normalising(t.net):
                kinds += [("thumbnail 1/2", x.shape[1] * x.shape[2] // 4), ("thumbnail 1/4", x.shape[1] * x.shape[2] // 16)]
                kinds += [("exact streaming", "exact")] if args.exact else []
            for kind, pixels in kinds:
                start = time.perf_counter()
                if pixels == "exact":
                    stats = tiling.exact_stats(t, src, plan)
                else:
                    stats = tiling.thumbnail_stats(t, src, pixels)
                y = torch.cat([r for _, r in tiling.tiled_rows(t, src, plan, stats=stats)], 1)
                took = time.perf_counter() - start
                print(f"{label:<34} {name:<9} {tile:>5} {kind:<14} {psnr(y, whole):8.2f} {seam_score(y, plan):6.3f} {took:6.1f}")
                if args.save and kind == "whole image":
                    from i2i.data.codecs import tensor_to_image

                    tensor_to_image(y).save(Path(args.save) / f"{Path(model).stem}_{name}_tiled.jpg", quality=95)
            if self_normalising(t.net):
                y = naive(t, x, plan)
                print(f"{label:<34} {name:<9} {tile:>5} {'naive per tile':<14} {psnr(y, whole):8.2f} {seam_score(y, plan):6.3f}")
            print(f"{label:<34} {name:<9} {'':>5} {'(whole output seam score at the same lines)':<14} {seam_score(whole, plan):.3f}")


def child(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; (seconds, peak RSS in GB of that child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    took = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        print("(peak RSS of this child not above an earlier one's; figure is a bound)")
    return took, peak / 1024 / 1024


def memory(args) -> None:
    import torch
    from PIL import Image

    from i2i.nets.resnet import resnet_9blocks

    w, h = (int(v) for v in args.size.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="bench_tiles_"))
    torch.manual_seed(0)
    torch.save(resnet_9blocks(ngf=64).state_dict(), work / "resnet_9blocks.pth")
    photo = sorted(glob.glob(str(DATA / "horse2zebra/testA/*.jpg")))[0]
    Image.MAX_IMAGE_PIXELS = None  # this script's own process only: it makes the test image
    for name, size in (("huge", (w, h)), ("fits", (2048, 1536)), ("tiny", (64, 64))):
        (work / name).mkdir()
        Image.open(photo).convert("RGB").resize(size, Image.BICUBIC).save(work / name / "photo.jpg", quality=92)
    base = [sys.executable, "-m", "i2i", "translate", "--model", str(work / "resnet_9blocks.pth"),
            "--precision", args.precision, "--overlap", str(args.overlap), "--max-pixels", str(w * h)]
    startup, _ = child(base + [str(work / "tiny"), "--out", str(work / "out_tiny")])
    fits, fits_rss = child(base + [str(work / "fits"), "--out", str(work / "out_fits"), "--max-memory", "64G"])
    huge, huge_rss = child(base + [str(work / "huge"), "--out", str(work / "out_huge")]
                           + (["--max-memory", args.max_memory] if args.max_memory else []))
    out = Image.open(work / "out_huge" / "photo.jpg")
    whole_rate = 2048 * 1536 / (fits - startup)
    huge_rate = w * h / (huge - startup)
    print(f"startup (load, a 64x64 image): {startup:.1f} s")
    print(f"whole path, 2048x1536: {fits - startup:.1f} s, {whole_rate / 1e6:.3f} Mpx/s, peak RSS {fits_rss:.2f} GB")
    print(f"tiled, {w}x{h} -> {out.size[0]}x{out.size[1]} (--max-memory {args.max_memory or 'default'}): "
          f"{huge - startup:.1f} s, {huge_rate / 1e6:.3f} Mpx/s ({huge_rate / whole_rate:.0%} of whole), peak RSS {huge_rss:.2f} GB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("accuracy", "memory"), required=True)
    p.add_argument("--in-model", help="an instance-norm generator (run folder, .safetensors or .pth)")
    p.add_argument("--bn-model", help="a batch-norm U-Net generator")
    p.add_argument("--bn-direction", default=None)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--size", default="12000x9000")
    p.add_argument("--max-memory", default=None)
    p.add_argument("--save", default=None, help="folder for the tiled outputs (whole-image statistics)")
    p.add_argument("--image-size", default="2048x1536", help="the accuracy part's image size")
    p.add_argument("--tile", type=int, default=None, help="the instance-norm generator's tile [default: 1024]")
    p.add_argument("--exact", action="store_true", help="also exact streaming statistics (about ten times the work)")
    args = p.parse_args()
    accuracy(args) if args.part == "accuracy" else memory(args)


if __name__ == "__main__":
    main()
