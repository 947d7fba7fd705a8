"""Time to quality: one score against training minutes, from tools/bench_quality.py's results.

    python tools/plot_quality.py "3 + 3 epochs=runs/results.json" "--minutes=budget/results.json" \\
        --score pixel_accuracy --reference "reference, 800 steps:5.6:0.382" --out time_to_quality.png

Each ``LABEL=PATH`` is a results.json; every variant in it is a line (named ``LABEL`` alone when
the file has one variant, ``--join``: all its variants one line, such as runs of ``minutes=3`` and
``minutes=6``, their points in order of minutes): at each scored step, the mean over the seeds of the minutes (x) and of
the score (y), with the seeds' standard deviation as an error bar. ``--reference NAME:MINUTES:SCORE``
adds a single measured point, such as a figure measured with the reference code (one run: no bar).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import textwrap
from pathlib import Path


def series(records: list[dict], score: str) -> dict[str, list[tuple[float, float, float, float]]]:
    """variant -> [(minutes mean, minutes sd, score mean, score sd)] by scored step, for records that
    have ``score``."""
    out: dict[str, list] = {}
    for variant in dict.fromkeys(r["variant"] for r in records):
        points = []
        for step in sorted({r["step"] for r in records if r["variant"] == variant}):
            group = [r for r in records if r["variant"] == variant and r["step"] == step and score in r["scores"]]
            if not group:
                continue
            minutes = [r["seconds"] / 60 for r in group]
            values = [r["scores"][score] for r in group]
            sd = (lambda v: statistics.stdev(v) if len(v) > 1 else 0.0)
            points.append((statistics.mean(minutes), sd(minutes), statistics.mean(values), sd(values)))
        if points:
            out[variant] = points
    return out


def parse_source(text: str) -> tuple[str, Path]:
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LABEL=PATH, such as 'bf16=quality_runs/results.json'")
    return label, Path(path)


def parse_reference(text: str) -> tuple[str, float, float]:
    name, minutes, score = (text.rsplit(":", 2) + ["", ""])[:3]
    try:
        return name, float(minutes), float(score)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME:MINUTES:SCORE, such as 'reference:6:0.406'") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("sources", nargs="+", type=parse_source, metavar="LABEL=PATH",
                        help="a results.json of tools/bench_quality.py, and the name of its line(s)")
    parser.add_argument("--score", default="pixel_accuracy", help="the score to plot [default: pixel_accuracy]")
    parser.add_argument("--reference", action="append", type=parse_reference, default=[], metavar="NAME:MINUTES:SCORE",
                        help="a single measured point (repeatable)")
    parser.add_argument("--join", action="store_true",
                        help="draw each file's variants as one line, in order of minutes (one recipe at several lengths)")
    parser.add_argument("--title", default=None, help="[default: the score's name]")
    parser.add_argument("--out", type=Path, default=Path("time_to_quality.png"), help="the PNG to write")
    args = parser.parse_args(argv)

    lines = {}
    for label, path in args.sources:
        try:
            records = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            sys.exit(f"{path}: not a readable results.json of tools/bench_quality.py ({e})")
        found = series(records, args.score)
        if not found:
            sys.exit(f"{path}: no {args.score!r} scores; the protocols' scores are listed by tools/bench_quality.py")
        if args.join:
            lines[label] = sorted(p for points in found.values() for p in points)
            continue
        for variant, points in found.items():
            lines[label if len(found) == 1 else f"{label}: {variant}"] = points

    from matplotlib.figure import Figure

    from i2i.io import atomic_write

    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    for name, points in lines.items():
        x, xerr, y, yerr = zip(*points)
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, marker="o", ms=4, capsize=2, lw=1.2, label=name)
    for name, minutes, score in args.reference:
        ax.plot([minutes], [score], marker="D", ls="none", ms=7, label=name)
    ax.set_xlabel("training minutes")
    ax.set_ylabel(args.score)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(textwrap.fill(args.title or args.score, 80), fontsize=9)
    fig.tight_layout()
    atomic_write(args.out, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
