"""``i2i report``: one HTML page per run, ``<run>/report.html``, that opens offline from the folder.

It shows the config, the loss curves and the validation (or held-out) curves as PNG plots, a
gallery of input | output | target rows for validation images (the latest training sample grid
when the run has none), and the ``i2i eval`` table when there is one. All paths are relative, so
the folder can be copied or zipped. Training rewrites it after every epoch.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

from .data.images import save_image
from .io import atomic_write, write_text
from .runs import Run

log = logging.getLogger(__name__)

ASSETS = "report_files"
SKIP_KEYS = {"step", "epoch", "lr", "time", "eval", "val", "images"}


def _plot(rows: list[dict], path: Path, title: str) -> bool:
    """One small plot per numeric key, against the step; False when there is nothing to plot."""
    keys = sorted({k for r in rows for k, v in r.items() if k not in SKIP_KEYS and isinstance(v, (int, float))})
    if not rows or not keys:
        return False
    from matplotlib.figure import Figure  # not pyplot: no backend chosen, none of the process's figures touched

    cols = min(3, len(keys))
    nrows = -(-len(keys) // cols)
    fig = Figure(figsize=(4 * cols, 2.6 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False)
    for ax, key in zip(axes.flat, keys):
        points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 30 else None, lw=1)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    return True


def _columns(doc: dict) -> str:
    """": input | output | target", what each row of a recipe's sample grid shows ("" if unknown)."""
    from . import modes

    mode = doc.get("mode")
    return f": {' | '.join(modes.mode_class(mode).sample_columns)}" if mode in modes.names() else ""


def _gallery(run: Run, doc: dict, path: Path, n: int, runtime) -> str | None:
    """Rows for the first ``n`` validation images of a run that validates (input | output | target for
    paired recipes, real | translated | round trip for unpaired ones); returns the caption, or None
    when there is no gallery."""
    import torch

    from .config import TrainConfig
    from .data.codecs import image_grid
    from .translator import load_translator
    from .validation import redo_hold_out, validation_data

    from . import modes

    if doc.get("mode") not in modes.names() or not (doc.get("val") or doc.get("val_fraction")):
        return None
    task = modes.mode_class(doc["mode"]).task
    if task == "folder":
        return None
    weights = [run.path / g["file"] for g in (doc.get("generators") or {}).values() if isinstance(g, dict) and "file" in g]
    if not weights or not all(path.is_file() for path in weights):
        return None  # no weights yet: the run's first checkpoint writes them
    cfg = TrainConfig.from_dict(doc)
    data = validation_data(cfg, redo_hold_out(cfg))
    rows = []
    if task == "paired":
        caption = "input | output | target"
        translator = load_translator(run.path, runtime=runtime)
        for i in range(min(n, len(data))):
            item = data[(i, 0)]
            rows.append([item["A"], translator(item["A"][None])[0], item["B"]])
    else:
        from .data.images import read_tensor

        caption = "real | translated | round trip"
        forward, backward = load_translator(run.path, "AtoB", runtime=runtime), load_translator(run.path, "BtoA", runtime=runtime)
        for f in data[0][:n]:
            x = read_tensor(f, forward.in_channels)[None]
            fake = forward(x)
            rows.append([x[0], fake[0], backward(fake)[0]])  # real | translated | round trip
    if not rows:
        return None
    size = rows[0][0].shape[-2:]
    rows = [[torch.nn.functional.interpolate(t[None].float(), size=tuple(size), mode="bilinear")[0] for t in r]
            for r in rows]
    save_image(image_grid(rows, max_rows=n), path)
    return caption


def write_report(run_dir: str | Path, gallery_size: int = 4, runtime=None) -> Path:
    """Write ``<run>/report.html`` and its images in ``<run>/report_files/``; returns the page's path.

    The gallery's generators run on ``runtime`` (default: fp32 on the CPU, so the page shows the
    same images on every machine).
    """
    import torch

    from .runtime import Runtime

    runtime = runtime or Runtime(torch.device("cpu"))
    run = Run(run_dir)
    doc = run.read_config()
    rows = run.read_log()
    assets = run.path / ASSETS
    assets.mkdir(exist_ok=True)
    parts = [f"<h1>{html.escape(run.path.name)}</h1>",
             f"<p>{html.escape(str(doc.get('mode')))} run, {len([r for r in rows if 'eval' not in r and 'val' not in r])} "
             f"log records, last step {max((r.get('step', 0) for r in rows), default=0)}.</p>"]

    def figure(name: str, title: str, caption: str):
        parts.append(f"<h2>{title}</h2><figure><img src=\"{ASSETS}/{name}\" alt=\"{title}\">"
                     f"<figcaption>{caption}</figcaption></figure>")

    if _plot([r for r in rows if "eval" not in r and "val" not in r], assets / "losses.png", "training losses"):
        figure("losses.png", "Losses", "Training losses against the step (as logged, every --log-every steps).")
    held = [r for r in rows if r.get("val") or r.get("eval")]
    if _plot(held, assets / "validation.png", "held-out scores"):
        figure("validation.png", "Validation", "Scores on held-out images.")
    best = None
    if (run.path / "best" / "config.json").is_file():
        best = json.loads((run.path / "best" / "config.json").read_text()).get("best")
        if best:
            parts.append(f"<p>Best checkpoint: step {best['step']}, {html.escape(str(best['metric']))} "
                         f"{best['value']:.4g}, in <code>best/</code>.</p>")
    try:
        caption = _gallery(run, doc, assets / "gallery.png", gallery_size, runtime)
    except Exception as e:  # noqa: BLE001  (a report must not fail a training run)
        log.warning("report gallery skipped: %s", e)
        caption = None
    if caption:
        figure("gallery.png", "Gallery", f"Validation images: {caption} (latest weights).")
    else:
        samples = sorted(run.samples_dir.glob("step_*.png")) if run.samples_dir.is_dir() else []
        if samples:
            rel = samples[-1].relative_to(run.path).as_posix()
            parts.append(f"<h2>Samples</h2><figure><img src=\"{rel}\" alt=\"latest samples\">"
                         f"<figcaption>Training samples at {samples[-1].stem.replace('_', ' ')}{_columns(doc)}."
                         "</figcaption></figure>")
    eval_file = run.path / "eval.json"
    if eval_file.is_file():
        record = json.loads(eval_file.read_text())
        table = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" if isinstance(v, float)
                        else f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in record["scores"].items())
        parts.append(f"<h2>Evaluation</h2><p>i2i eval on {html.escape(str(record.get('a')))} at step "
                     f"{record.get('step')}:</p><table>{table}</table>")
    config = json.dumps({k: v for k, v in doc.items() if k != "generators"}, indent=2, sort_keys=True)
    parts.append(f"<h2>Config</h2><pre>{html.escape(config)}</pre>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(run.path.name)} - i2i report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
img{{max-width:100%;border:1px solid #ddd}} figcaption{{color:#666;font-size:90%}}
table{{border-collapse:collapse}} td{{border:1px solid #ddd;padding:2px 8px}} td+td{{text-align:right}}
pre{{background:#f6f6f6;padding:1em;overflow:auto;font-size:85%}}</style></head>
<body>
{chr(10).join(parts)}
<script>
// for automated checks: how many images failed to load
window.addEventListener("load", () => {{
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length;
  document.body.dataset.brokenImages = broken;
  document.body.dataset.images = document.images.length;
}});
</script>
</body></html>
"""
    return write_text(run.path / "report.html", page)
