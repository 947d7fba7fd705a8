"""Quality against training time: train a recipe on a real dataset with several seeds, score it with
``i2i eval`` along the way, and print means, spreads and time-to-quality.

    python tools/bench_quality.py facades-label --steps 800 --eval-every 200 --seeds 3
    python tools/bench_quality.py facades-label --steps 400 --seeds 3 --precision fp32 --precision bf16
    python tools/bench_quality.py facades-photo --steps 800 --seeds 3
    python tools/bench_quality.py horse2zebra --steps 400 --seeds 3 --inception-weights pt_inception.pth

Protocols (PROTOCOLS below): the options i2i trains with, the test split, and the scores.

- ``facades-label``: pix2pix photo -> label map on the 400 facades pairs, unet_128, load 143 / crop
  128, batch 1; scored on the 106 test photos at 128 px by palette pixel accuracy, class accuracy
  and mean IoU (``datasets/facades_palette.txt``, each pixel taking the nearest of the 12 colours),
  as the pix2pix and CycleGAN papers score photo -> label.
- ``facades-photo``: the paper's direction, label map -> photo, the same sizes; L1, PSNR, SSIM.
- ``horse2zebra``: CycleGAN at reduced size (resnet_9blocks, load 143 / crop 128); the round-trip
  and identity L1 on the test folders, and FID/KID with ``--inception-weights``.

Each (variant, seed) run trains in segments of ``--eval-every`` steps (resuming its own run, which
continues exactly as one uninterrupted run would) and is scored after each segment, so one run
gives a curve of score against training time: the loop's own seconds from the run's log, which
leave out start-up and scoring. Variants are the ``--precision`` values and the ``--variant``
recipes (``--variant lr4e-4:lr=0.0004``); ``--option`` sets an option for all of them.

With several seeds the summary gives the mean and the sample standard deviation of each score, and
for two variants the difference of their means with Welch's t-test: a difference is real (at the
5% level) only when its p-value is below 0.05. With 3 seeds a side that takes a difference of about
3.5 standard errors; smaller ones are the seeds' noise.

Results go to ``--out`` (default ``quality_runs/``): the run folders and ``results.json``, one record
per scoring (variant, seed, step, seconds, scores), which a later call with ``--summary`` reprints.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("I2I_DATASETS", ROOT.parent / "shared" / "datasets"))
PROTOCOLS = {
    "facades-label": {
        "data": "facades", "test": "test", "palette": ROOT / "datasets" / "facades_palette.txt",
        "options": {"mode": "pix2pix", "direction": "AtoB", "net_g": "unet_128", "load_size": 143, "crop_size": 128},
        "scores": ("pixel_accuracy", "class_accuracy", "mean_iou"),
    },
    "facades-photo": {
        "data": "facades", "test": "test", "palette": None,
        "options": {"mode": "pix2pix", "direction": "BtoA", "net_g": "unet_128", "load_size": 143, "crop_size": 128},
        "scores": ("L1", "PSNR", "SSIM"),
    },
    "horse2zebra": {
        "data": "horse2zebra", "test": ("testA", "testB"), "palette": None,
        "options": {"mode": "cycle", "net_g": "resnet_9blocks", "load_size": 143, "crop_size": 128},
        "scores": ("cycle_L1", "identity_L1_A", "identity_L1_B", "AtoB_FID", "BtoA_FID"),
    },
}
RESULTS = "results.json"


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def welch(a: list[float], b: list[float]) -> dict[str, float]:
    """Welch's unequal-variance t-test of mean(b) - mean(a): the difference, its standard error, t,
    the Welch-Satterthwaite degrees of freedom and the two-sided p-value (scipy's t distribution).
    NaN where a side has fewer than two values or both have no spread."""
    from scipy import stats

    diff = statistics.fmean(b) - statistics.fmean(a)
    if len(a) < 2 or len(b) < 2:
        return {"diff": diff, "se": math.nan, "t": math.nan, "df": math.nan, "p": math.nan}
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return {"diff": diff, "se": 0.0, "t": math.nan, "df": math.nan, "p": math.nan}
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    t = diff / se
    return {"diff": diff, "se": se, "t": t, "df": df, "p": float(2 * stats.t.sf(abs(t), df))}


def data_paths(protocol: dict, data_root: Path) -> tuple[dict, tuple[str, str | None]]:
    """(training data options, test folders) of ``protocol`` under ``data_root``."""
    root = data_root / protocol["data"]
    if not root.is_dir():
        sys.exit(f"{root}: no such dataset folder; give --data-root DIR (the folder holding {protocol['data']}/)")
    if protocol["options"]["mode"] == "pix2pix":
        return {"a": str(root / "train")}, (str(root / protocol["test"]), None)
    test_a, test_b = protocol["test"]
    return {"a": str(root / "trainA"), "b": str(root / "trainB")}, (str(root / test_a), str(root / test_b))


def parse_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, such as ngf=32")
    for kind in (int, float):
        try:
            return key.replace("-", "_"), kind(value)
        except ValueError:
            pass
    return key.replace("-", "_"), {"true": True, "false": False}.get(value.lower(), value)


def loop_seconds(run: Path) -> float:
    """Seconds the run's training loop has taken so far: the last logged ``time`` of each segment
    (each resume restarts that clock), summed."""
    total, last = 0.0, None
    for line in (run / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "time" not in record:
            continue
        if last is not None and record["time"] < last:
            total += last
        last = record["time"]
    return total + (last or 0.0)


def steps_trained(run: Path) -> int:
    """The last step the run's log records: below a segment's end when the run reached the end of
    its own schedule first (``--option minutes=M`` plans its own length)."""
    steps = [json.loads(line).get("step", 0) for line in (run / "log.jsonl").read_text().splitlines()]
    return max(steps, default=0)


def parse_variant(text: str) -> tuple[str, dict]:
    """``"NAME:KEY=VALUE,KEY=VALUE"`` -> (NAME, {KEY: VALUE, ...})."""
    name, sep, rest = text.partition(":")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME:KEY=VALUE[,KEY=VALUE], such as lr4e-4:lr=0.0004")
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", name):
        raise argparse.ArgumentTypeError(f"{name!r}: a variant's name becomes part of its run folders' names; use "
                                         "letters, digits and . _ + - only, such as lr4e-4")
    return name, dict(parse_option(item) for item in rest.split(","))


def run_config(name: str, protocol: dict, variant: tuple[str, dict], seed: int, args, out: Path):
    """The i2i training config of one (variant, seed) run; i2i's own UsageError for a bad option."""
    from i2i import modes

    data, _ = data_paths(protocol, Path(args.data_root))
    label, variant_options = variant
    options = {**protocol["options"], **data, **dict(args.option or []), **variant_options, "seed": seed,
               "checkpoints_dir": str(out), "name": f"{name}_{label}_seed{seed}", "report": False,
               "save_every": 10**9, "sample_every": 10**9}
    if args.threads:
        options["threads"] = args.threads
    mode = options.pop("mode")
    return modes.make_config(mode, **options)


def train_and_score(name: str, protocol: dict, variant: tuple[str, dict], seed: int, args, out: Path) -> list[dict]:
    """Train one (variant, seed) run in segments; score it after each. Returns the records."""
    from i2i.evaluate import evaluate
    from i2i.runtime import resolve
    from i2i.train import resume_config, train

    _, (test_a, test_b) = data_paths(protocol, Path(args.data_root))
    cfg = run_config(name, protocol, variant, seed, args, out)
    variant = variant[0]
    run = out / cfg.name
    if run.exists():
        sys.exit(f"{run}: exists from an earlier call; give another --out, or delete it")
    eval_runtime = resolve("cpu", "fp32", args.threads)  # scores do not depend on the machine
    records = []
    for stop in range(args.eval_every, args.steps + args.eval_every, args.eval_every):
        stop = min(stop, args.steps)
        if not records:  # the first segment starts the run; the others resume it
            cfg.max_steps = stop
            train(cfg)
        else:
            train(resume_config(run, max_steps=stop), resume=True)
        scores = evaluate(run, test_a, test_b, str(protocol["palette"]) if protocol["palette"] else None,
                          args.inception_weights, eval_runtime)["scores"]
        trained = steps_trained(run)
        record = {"protocol": name, "variant": variant, "seed": seed, "step": stop, "steps_trained": trained,
                  "seconds": loop_seconds(run), "scores": {k: v for k, v in scores.items() if k in protocol["scores"]}}
        records.append(record)
        print(f"  {variant} seed {seed} step {trained}: {record['seconds'] / 60:.1f} min; "
              + ", ".join(f"{k} {v:.4f}" for k, v in record["scores"].items()), flush=True)
        if stop >= args.steps or trained < stop:  # the end of --steps, or of the run's own schedule
            break
    return records


def write_grid(run: Path, protocol: dict, test: tuple[str, str | None], path: Path, rows: int = 4) -> Path:
    """A picture of the first ``rows`` test images through ``run``'s generator at the scoring size:
    input | output | target (paired), or input | translated | round trip (CycleGAN, A to B)."""
    import torch

    from i2i.data.codecs import image_grid
    from i2i.data.images import save_image
    from i2i.evaluate import paired_data, scoring_size
    from i2i.runs import Run
    from i2i.runtime import resolve
    from i2i.translator import load_translator

    doc = Run(run).read_config()
    size = scoring_size(doc.get("preprocess"), doc.get("crop_size"))
    runtime = resolve("cpu", "fp32")
    grid = []
    with torch.no_grad():
        if protocol["options"]["mode"] == "pix2pix":
            g = load_translator(run, runtime=runtime)
            data = paired_data(test[0], None, doc["direction"], g.in_channels, g.spec.get("out_channels", 3), size)
            for i in range(min(rows, len(data))):
                item = data[(i, 0)]
                grid.append([item["A"], g(item["A"][None])[0], item["B"]])
        else:
            from i2i.data.images import list_images
            from i2i.evaluate import read_scored

            g_ab, g_ba = load_translator(run, "AtoB", runtime=runtime), load_translator(run, "BtoA", runtime=runtime)
            for f in list_images(test[0])[:rows]:
                x = read_scored(f, g_ab.in_channels, size)
                fake = g_ab(x)
                grid.append([x[0], fake[0], g_ba(fake)[0]])
    return save_image(image_grid(grid), path)


def summary(records: list[dict]) -> str:
    """Per protocol, variant and step (a segment's end: runs that plan their own length, such as
    ``minutes=M``, may stop short of it, and ``trained`` gives their mean steps): mean +- sd of each
    score over the seeds, and of the training minutes; then, at the last step, each variant against
    the first with Welch's test."""
    lines = []
    for name in dict.fromkeys(r["protocol"] for r in records):
        mine = [r for r in records if r["protocol"] == name]
        variants = list(dict.fromkeys(r["variant"] for r in mine))
        keys = list(dict.fromkeys(k for r in mine for k in r["scores"]))
        width = max(10, *(len(v) + 2 for v in variants))
        head = (f"{'variant':<{width}}{'step':>6}{'trained':>9}{'seeds':>6}{'minutes':>16}"
                + "".join(f"{k:>22}" for k in keys))
        lines += [f"\n{name}", head, "-" * len(head)]
        for variant in variants:
            for step in sorted({r["step"] for r in mine if r["variant"] == variant}):
                group = [r for r in mine if r["variant"] == variant and r["step"] == step]
                m, s = mean_sd([r["seconds"] / 60 for r in group])
                trained = statistics.mean(r.get("steps_trained", step) for r in group)
                line = f"{variant:<{width}}{step:>6}{trained:>9.0f}{len(group):>6}{m:>9.2f} +- {s:<4.2f}"
                for k in keys:
                    values = [r["scores"][k] for r in group if k in r["scores"]]
                    line += f"{mean_sd(values)[0]:>12.4f} +- {mean_sd(values)[1]:<6.4f}" if values else f"{'-':>22}"
                lines.append(line)
        last = max(r["step"] for r in mine)
        for variant in variants[1:]:
            for k in keys:
                a = [r["scores"][k] for r in mine if r["variant"] == variants[0] and r["step"] == last and k in r["scores"]]
                b = [r["scores"][k] for r in mine if r["variant"] == variant and r["step"] == last and k in r["scores"]]
                if not a or not b:
                    continue
                w = welch(a, b)
                line = f"  step {last}, {k}: {variant} - {variants[0]} = {w['diff']:+.4f}"
                if math.isnan(w["p"]):
                    lines.append(f"{line}; testing it needs two seeds a side with some spread")
                    continue
                verdict = "real at the 5% level" if w["p"] < 0.05 else "within the seeds' noise"
                lines.append(f"{line} (standard error {w['se']:.4f}, t {w['t']:.2f}, p {w['p']:.3f}): {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("protocol", choices=sorted(PROTOCOLS))
    parser.add_argument("--steps", type=int, default=800, help="training steps per run [default: 800]")
    parser.add_argument("--eval-every", type=int, help="score every N steps [default: only at the end]")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per variant [default: 3]")
    parser.add_argument("--precision", action="append", choices=["fp32", "bf16", "auto"],
                        help="a variant training at this precision (repeatable) [default: auto, without --variant]")
    parser.add_argument("--variant", action="append", type=parse_variant, metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                        help="a variant with its own options (repeatable), such as lr4e-4:lr=0.0004; it trains at "
                             "--precision auto unless it sets precision=")
    parser.add_argument("--option", action="append", type=parse_option, metavar="KEY=VALUE",
                        help="a training option for every run (repeatable), such as lr=0.0004 or batch_size=4")
    parser.add_argument("--data-root", default=str(DATASETS), help=f"the folder holding the datasets [default: {DATASETS}]")
    parser.add_argument("--inception-weights", help="pytorch-fid's Inception weights: adds FID/KID (horse2zebra)")
    parser.add_argument("--threads", type=int, help="CPU threads [default: i2i's choice]")
    parser.add_argument("--out", default="quality_runs", help="run folders and results.json [default: quality_runs/]")
    parser.add_argument("--summary", action="store_true", help="reprint the summary of --out's results.json and stop")
    parser.add_argument("--grid", help="also write a picture (PNG) of four test images through the first variant's "
                                       "seed-0 run: input | output | target, or input | translated | round trip")
    args = parser.parse_args(argv)
    out = Path(args.out)
    results_file = out / RESULTS
    if args.summary:
        if not results_file.is_file():
            sys.exit(f"{results_file}: no results yet; run without --summary first")
        print(summary(json.loads(results_file.read_text())))
        return
    if args.steps < 1 or args.seeds < 1 or (args.eval_every is not None and args.eval_every < 1):
        sys.exit("--steps, --seeds and --eval-every must be at least 1")
    args.eval_every = min(args.eval_every or args.steps, args.steps)
    protocol = PROTOCOLS[args.protocol]
    variants = [(p, {"precision": p}) for p in args.precision or []] + (args.variant or [])
    variants = variants or [("auto", {"precision": "auto"})]
    from i2i.errors import I2IError
    from i2i.io import write_json

    for variant in variants:  # a missing dataset or a bad option is said before anything is made
        try:
            run_config(args.protocol, protocol, variant, 0, args, out)
        except I2IError as e:
            sys.exit(f"{variant[0]}: {e}")
    out.mkdir(parents=True, exist_ok=True)
    records = json.loads(results_file.read_text()) if results_file.is_file() else []
    started = time.perf_counter()
    for variant in variants:
        for seed in range(args.seeds):
            try:
                records += train_and_score(args.protocol, protocol, variant, seed, args, out)
            except I2IError as e:  # what only training finds, said as i2i train would say it
                sys.exit(f"{variant[0]}, seed {seed}: {e}")
            write_json(results_file, records)  # atomically: a killed call keeps every finished run
    print(summary([r for r in records if r["protocol"] == args.protocol]))
    if args.grid:
        _, test = data_paths(protocol, Path(args.data_root))
        print(f"picture: {write_grid(out / f'{args.protocol}_{variants[0][0]}_seed0', protocol, test, Path(args.grid))}")
    print(f"\n{len(variants) * args.seeds} run(s) in {(time.perf_counter() - started) / 60:.1f} min; "
          f"records in {results_file}")


if __name__ == "__main__":
    main()
