"""The ``i2i`` command line: thin commands that parse options and call library functions.

Only this module prints. Errors from the library (:class:`~i2i.errors.I2IError`) become one red
line and an exit code: 2 for a usage error, 1 for a failed run. torch is imported inside commands,
so ``i2i --help`` is fast.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import __version__
from .errors import I2IError

app = typer.Typer(
    help="Image-to-image translation: train pix2pix (paired) or CycleGAN, DualGAN, CUT and FastCUT (unpaired), translate images, import reference generators, prepare datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",  # help texts say "[default: ...]" literally (rich markup would eat it)
    context_settings={"help_option_names": ["-h", "--help"]},
)
prepare_app = typer.Typer(help="Lay out datasets: combine A/ and B/ into A|B images, split them, make train/test splits.",
                          no_args_is_help=True, rich_markup_mode="markdown")
app.add_typer(prepare_app, name="prepare")

console = Console()
err = Console(stderr=True)


def cli_errors(fn):
    """Turn library errors into one line and an exit code, never a traceback (I2I_DEBUG=1 shows it)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except I2IError as e:
            err.print(f"[bold red]{_rank_prefix()}error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err.print("[bold red]interrupted[/]")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except OSError as e:
            from .errors import os_error_message

            err.print(f"[bold red]{_rank_prefix()}error:[/] {os_error_message(e)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except Exception as e:  # noqa: BLE001
            if os.environ.get("I2I_DEBUG"):
                raise
            err.print(f"[bold red]{_rank_prefix()}error:[/] unexpected {type(e).__name__}: {e} (rerun with I2I_DEBUG=1 for the "
                      "traceback and report it)", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def _rank_prefix() -> str:
    """"rank 1: " in the messages of a process started by torchrun (which interleaves their output)."""
    from .distributed import World

    world = World.from_env()
    return f"rank {world.rank}: " if world.enabled else ""


def _version(value: bool):
    if value:
        console.print(f"i2i {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug messages."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Show warnings and errors only."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    from .distributed import World

    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    if not World.from_env().main:  # under torchrun, rank 0 speaks for the run
        level = max(level, logging.WARNING)
    logger = logging.getLogger("i2i")
    logger.handlers[:] = [RichHandler(console=err, show_path=False, show_time=False, markup=False)]
    logger.setLevel(level)
    logger.propagate = False


DEVICE_HELP = "auto, cpu, cuda or mps. [default: auto: a GPU when there is one]"
PRECISION_HELP = ("auto, fp32 or bf16. auto: bf16 where the GPU or CPU computes it natively (AMX, AVX512-BF16), "
                  "else fp32 with faster kernels for inference; fp32: the plain reference path. [default: auto]")
THREADS_HELP = "CPU threads. [default: the CPUs not busy with other work]"
MAX_PIXELS_HELP = "Refuse images larger than this many pixels (a decompression-bomb guard). [default: 89478485]"
GENERATE_PRECISION_HELP = ("auto, fp32 or bf16 (see i2i translate). [default: fp32, so the same seed gives the same "
                           "images on every machine]")
COMPILE_HELP = "torch.compile the networks (slow to start; pays off on long GPU runs)."


def scope_max_pixels(ctx: typer.Context, max_pixels: int | None) -> None:
    """--max-pixels for the rest of the running command (and its subcommands), put back when it ends:
    the command's process often ends with it, but tests and notebooks run commands in one process."""
    from .data.images import max_pixels_scope

    ctx.with_resource(max_pixels_scope(max_pixels))


class TrainProgress:
    """Rich progress bar for the training loop (an :class:`i2i.train.Observer`)."""

    def __init__(self):
        self.bar = Progress(TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("[cyan]{task.fields[rate]}"),
                            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
                            console=err, transient=False)
        self.task = None

    def start(self, total_steps, step):
        self.bar.start()
        self.task = self.bar.add_task("train", total=total_steps, completed=step, epoch="-", losses="", rate="")

    def plan(self, total_steps):
        self.bar.update(self.task, total=total_steps)

    def step(self, step, epoch, losses):
        fields = {"epoch": epoch}
        speed = self.bar.tasks[0].speed
        if speed:
            fields["rate"] = f"{speed:.2f} it/s" if speed >= 1 else f"{1 / speed:.2f} s/it"
        if losses:
            fields["losses"] = " ".join(f"{k} {v:.3g}" for k, v in losses.items())
        self.bar.update(self.task, completed=step, **fields)

    def stop(self):
        self.bar.stop()


class TrainCommand(typer.core.TyperCommand):
    """``i2i train``, whose options are :class:`~i2i.config.TrainConfig`'s fields: their help, with the
    defaults of every recipe and which recipes read them, is filled in when --help is shown (it asks the
    recipes, which import torch; running the command or ``i2i --help`` does not need it)."""

    def format_help(self, ctx, formatter):
        from .modes import option_help

        for param in self.params:
            if param.name in CONFIG_OPTIONS:
                param.help = option_help(param.name)
                if param.secondary_opts:  # "--no-x" in the text: a column of its own would squeeze the help
                    text, _, default = param.help.partition(" [default:")
                    param.help = f"{text} ({param.secondary_opts[0]}: off)" + (f" [default:{default}" if default else "")
                    param.secondary_opts = []
        return super().format_help(ctx, formatter)


def _config_options() -> dict[str, tuple[type, dict]]:
    """TrainConfig field -> (the option's Python type, typer.Option arguments), from the fields' metadata."""
    import dataclasses
    import typing

    from .config import TrainConfig, flag

    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for field in dataclasses.fields(TrainConfig):
        if not field.metadata.get("cli", True):
            continue
        hint = hints[field.name]
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        decls = [f"{flag(field.name, True)}/{flag(field.name, False)}"] if base is bool else [flag(field.name)]
        out[field.name] = (Optional[base], dict(param_decls=decls, help=field.metadata["help"], show_default=False))
    return out


CONFIG_OPTIONS = _config_options()


def _train_signature(fn):
    """Give ``fn(**options)`` one keyword parameter per config option (Typer reads the signature)."""
    import inspect

    params = []
    for key, (kind, info) in CONFIG_OPTIONS.items():
        default = typer.Option(None, *info["param_decls"], help=info["help"], show_default=False)
        params.append(inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind))
    params.append(inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=typer.Option(
        False, "--resume", help="Continue the run --name from its last checkpoint.")))
    fn.__signature__ = inspect.Signature(params)
    fn.__annotations__ = {p.name: p.annotation for p in params}
    return fn


@app.command(cls=TrainCommand)
@cli_errors
@_train_signature
def train(**options):
    """Train a model. Example: i2i train --a datasets/facades/train --direction BtoA --name facades_label2photo"""
    import dataclasses

    from .config import TrainConfig
    from .errors import UsageError
    from .modes import make_config, use_command
    from .train import resume_config
    from .train import train as run_training

    resume = options.pop("resume")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for key, value in options.items():  # folders as the path strings config.json has always held
        if value is not None and fields[key].metadata.get("path"):
            options[key] = str(Path(value))
    mode, name = options.pop("mode"), options.pop("name")
    checkpoints_dir = Path(options.pop("checkpoints_dir") or "checkpoints")
    if resume:
        if name is None:
            raise UsageError("--resume needs --name: the run to continue")
        from .config import check_run_name

        check_run_name(name)
        cfg = resume_config(checkpoints_dir / name, mode=mode, **options)
    else:
        if options["a"] is None:
            raise UsageError("--a is required: the folder of training images (see datasets/README.md)")
        if name is None:
            folder = Path(options["a"]).resolve()
            folder = folder.parent if folder.name in ("train", "A", "trainA") else folder
            name = f"{folder.name}_{mode or 'pix2pix'}"
        cfg = make_config(mode or "pix2pix", name=name, checkpoints_dir=str(checkpoints_dir), **options)
    from .distributed import World

    main_rank = World.from_env().main
    observer = TrainProgress() if main_rank else None
    try:
        run_dir = run_training(cfg, resume=resume, observer=observer)
    finally:
        if observer:
            observer.stop()
    if not main_rank:
        return
    use = use_command(cfg.mode, run_dir)
    console.print(f"run saved in [bold]{run_dir}[/]; use it with: {use}", highlight=False)


@app.command()
@cli_errors
def translate(
    ctx: typer.Context,
    inputs: List[str] = typer.Argument(..., help="Image files, folders (recursive) or glob patterns."),
    model: Optional[str] = typer.Option(None, help="Run folder, .safetensors file or reference .pth generator [default: newest run]."),
    out: Optional[Path] = typer.Option(None, help="Output folder [default: a new folder INPUT_RUN beside the input, the input folder's name and the run's, such as photos_horse2zebra]."),
    direction: Optional[str] = typer.Option(None, help="AtoB or BtoA, for runs that translate both ways."),
    size: Optional[int] = typer.Option(None, help="Resize to NxN instead of keeping each image's own size."),
    batch_size: Optional[int] = typer.Option(None, help="Images per batch (same-size images are batched). [default: 1 on CPU, where larger batches measured slower per image; 8 on a GPU]"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo outputs that already exist."),
    ab: bool = typer.Option(False, "--ab", help="Inputs are side-by-side A|B pairs (like facades/test): translate the half the model takes."),
    no_eval: bool = typer.Option(False, "--no-eval", help="Keep dropout and batch statistics on, like the reference's test.py without --eval."),
    checkpoints_dir: Path = typer.Option(Path("checkpoints"), help="Where to look for the newest run."),
    max_pixels: Optional[int] = typer.Option(None, help=MAX_PIXELS_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP, show_default=False),
    precision: str = typer.Option("auto", help=PRECISION_HELP, show_default=False),
    threads: Optional[int] = typer.Option(None, help=THREADS_HELP),
    compile: bool = typer.Option(False, "--compile", help=COMPILE_HELP),
    shard: Optional[str] = typer.Option(None, help="I/N: convert only shard I (0 to N-1) of N, chosen by file name, so N machines given the same folders share the work. [default: under torchrun, one shard per process]"),
    tile: str = typer.Option("auto", help="Translate images larger than this many pixels a side in overlapping tiles, read and written by regions, in bounded memory; auto tiles only images that would not fit --max-memory whole (tiles of 1024 where memory allows)."),
    overlap: Optional[int] = typer.Option(None, help="Pixels by which neighbouring tiles overlap; they are blended across it (at most half the tile). [default: 64, or half a smaller tile]", show_default=False),
    max_memory: Optional[str] = typer.Option(None, help="Memory for the network's work on one image, such as 4G (the process needs about 0.5-1G more for itself): larger images are tiled under --tile auto. [default: a quarter of the machine's memory; on a GPU half its free memory]", show_default=False),
    exact_stats: bool = typer.Option(False, "--exact-stats", help="For instance-norm generators, measure a tiled image's whole-image statistics exactly, a tile at a time (about ten times the work), where it is too large for one pass; without it they are estimated on the largest thumbnail --max-memory holds."),
):
    """Translate images with a trained generator, keeping names, formats and sizes; huge images are
    translated in tiles in bounded memory (--tile)."""
    from .distributed import World
    from .errors import UsageError
    from .runtime import resolve
    from .tiling import parse_memory, parse_tile
    from .translate import Tiling, parse_shard, translate_files
    from .translator import load_translator

    tiling = Tiling(parse_tile(tile), overlap, parse_memory(max_memory) if max_memory is not None else None,
                    exact_stats)
    if direction not in (None, "AtoB", "BtoA"):
        raise UsageError(f"--direction must be AtoB or BtoA, not {direction!r}")
    if batch_size is not None and batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    scope_max_pixels(ctx, max_pixels)
    world = World.from_env()
    shard_of = parse_shard(shard) if shard is not None else (world.rank, world.size) if world.enabled else None
    runtime = resolve(device, precision, threads, compile)
    translator = load_translator(model, direction, checkpoints_dir, runtime, eval_mode=not no_eval)
    prefix = f"shard {shard_of[0]}/{shard_of[1]}: " if shard_of else ""
    if world.main:
        err.print(f"model: {translator.source} ({translator.spec['name']}"
                  f"{', ' + translator.direction if translator.direction else ''}); {translator.runtime.describe()}", highlight=False)
    run_name = Path(translator.source).stem if Path(translator.source).is_file() else Path(translator.source).name
    with Progress(TextColumn(f"{prefix}{{task.description}}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, disable=not world.main) as bar:
        task = bar.add_task("translate", total=None)
        tiles = None

        def tile_progress(done: int, total: int) -> None:
            nonlocal tiles
            if tiles is None:
                tiles = bar.add_task("tiles", total=total)
            bar.update(tiles, completed=done, total=total, visible=done < total)

        summary = translate_files(translator, inputs, out, run_name, size, batch_size, overwrite, ab,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total),
                                  shard=shard_of, tiling=tiling, tile_progress=tile_progress)
    console.print(f"{prefix}{summary.written} image(s) written to [bold]{summary.out}[/]"
                  + (f", {summary.existing} already there" if summary.existing else ""), highlight=False)
    for path, reason in summary.failed:
        err.print(f"[yellow]{prefix}skipped:[/] {reason}", highlight=False, soft_wrap=True)
    if summary.failed:
        raise I2IError(f"{prefix}{len(summary.failed)} image(s) could not be translated (listed above)")


@app.command("eval")
@cli_errors
def eval_command(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="A run folder of a translation recipe: paired (pix2pix) or unpaired (cycle, dual, cut, fastcut)."),
    a: str = typer.Option(..., "--a", help="Paired runs: test pairs (A|B images, or a folder of A/ and B/). Unpaired runs: domain A test images."),
    b: Optional[str] = typer.Option(None, "--b", help="Unpaired runs: domain B test images. Paired runs: the B folder when A and B are separate."),
    palette: Optional[Path] = typer.Option(None, help="Label colours, one 'R G B' per line: adds pixel and class accuracy and mean IoU for label-map outputs."),
    inception_weights: Optional[Path] = typer.Option(None, help="pytorch-fid's pt_inception-2015-12-05 weights: adds FID and KID."),
    device: str = typer.Option("auto", help=DEVICE_HELP, show_default=False),
    precision: str = typer.Option("fp32", help="auto, fp32 or bf16 (see i2i translate). [default: fp32, so scores do not depend on the machine]", show_default=False),
    threads: Optional[int] = typer.Option(None, help=THREADS_HELP),
    size: Optional[int] = typer.Option(None, help="Resize test images to SIZE x SIZE (11 or more) before scoring; 0: their own size. [default: the run's --crop-size when it trained with --preprocess resize_and_crop, as the reference's test.py does; else their own size]", show_default=False),
    no_eval: bool = typer.Option(False, "--no-eval", help="Keep dropout and batch statistics on, like the reference's test.py without --eval."),
    max_pixels: Optional[int] = typer.Option(None, help=MAX_PIXELS_HELP),
):
    """Score a run on test images: a table, and eval.json in the run folder."""
    from rich.table import Table

    from .evaluate import check_scoring_size, evaluate
    from .runtime import resolve

    scope_max_pixels(ctx, max_pixels)
    check_scoring_size(size)  # before the progress bar shows
    runtime = resolve(device, precision, threads)
    with Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err) as bar:
        task = bar.add_task("eval", total=None)
        record = evaluate(run, a, b, None if palette is None else str(palette),
                          None if inception_weights is None else str(inception_weights), runtime,
                          progress=lambda done, total: bar.update(task, completed=done, total=total), size=size,
                          eval_mode=not no_eval)
    step = f" at step {record['step']}" if record["step"] is not None else ""  # imported runs have no log
    at = f" resized to {record['size']}x{record['size']}" if record["size"] else " at their own size"
    console.print(f"{run}{step}, {record['scores']['images']} images{at}:", highlight=False)
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in record["scores"].items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)
    if not inception_weights:
        from .inception import HOW_TO_GET

        err.print(f"no FID/KID: {HOW_TO_GET}", highlight=False, soft_wrap=True)
    console.print(f"written to [bold]{Path(run) / 'eval.json'}[/]", highlight=False)


@app.command("export")
@cli_errors
def export_command(
    model: str = typer.Argument(..., help="Run folder, .safetensors file or reference .pth generator."),
    format: str = typer.Option(..., "--format", help="onnx or pt2 (torch.export)."),
    out: Path = typer.Option(..., help="The file to write."),
    direction: Optional[str] = typer.Option(None, help="AtoB or BtoA, for runs that translate both ways."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
):
    """Export a generator to ONNX or torch.export, then run the file and check it against i2i.

    The graph takes float32 NCHW images in [0, 1] and returns the same; batch, height and width are
    dynamic (height and width in multiples of the generator's size multiple, which is printed)."""
    from .export import TOLERANCE, export

    _refuse_existing(out, overwrite)
    report = export(model, format, out, direction)
    console.print(f"{report['generator']} ({report['direction']}) written to [bold]{out}[/] as {format}; "
                  f"input and output float32 NCHW in [0, 1], height and width multiples of {report['size_multiple']}",
                  highlight=False)
    for check in report["checks"]:
        console.print(f"  check {tuple(check['shape'])}: max |difference| from i2i {check['max_abs_diff']:.2e} "
                      f"(limit {TOLERANCE:g})", highlight=False)


@app.command()
@cli_errors
def serve(
    model: str = typer.Argument(..., help="Run folder, .safetensors file or reference .pth generator."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 exposes the page to your network)."),
    port: int = typer.Option(7860, help="Port."),
    example: Optional[Path] = typer.Option(None, help="Open the page with this image already translated."),
    device: str = typer.Option("auto", help=DEVICE_HELP, show_default=False),
    precision: str = typer.Option("auto", help=PRECISION_HELP, show_default=False),
    max_pixels: Optional[int] = typer.Option(None, help=MAX_PIXELS_HELP),
):
    """A local web page to try a model: upload an image, pick the direction, download the result (needs i2i[ui])."""
    from .serve import serve as start

    if example is not None and not example.is_file():
        from .errors import UsageError

        raise UsageError(f"--example {example}: no such file")
    console.print(f"serving {model} on http://{host}:{port} (Ctrl-C stops)", highlight=False)
    start(model, host, port, example, device=device, precision=precision, max_pixels=max_pixels)


@app.command()
@cli_errors
def report(run: Path = typer.Argument(..., help="A run folder.")):
    """Write RUN/report.html: config, loss and validation curves, a gallery, the eval table."""
    from .report import write_report

    page = write_report(run)
    console.print(f"report written to [bold]{page}[/]; open it in a browser", highlight=False)


@app.command()
@cli_errors
def sample(
    run: Path = typer.Argument(..., help="A GAN or VAE run folder."),
    n: int = typer.Option(64, help="How many images."),
    out: Path = typer.Option(Path("samples.png"), help="The grid image to write."),
    seed: int = typer.Option(0, help="The same seed gives the same images."),
    label: Optional[str] = typer.Option(None, help="Class name, for conditional runs [default: the classes in turn]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
    device: str = typer.Option("auto", help=DEVICE_HELP, show_default=False),
    precision: str = typer.Option("fp32", help=GENERATE_PRECISION_HELP, show_default=False),
):
    """Write a grid of images generated by a GAN or VAE run."""
    from .data.images import save_image
    from .generate import sample as make_samples
    from .runtime import resolve

    _refuse_existing(out, overwrite)
    save_image(make_samples(run, n, seed, label, resolve(device, precision)), out)
    console.print(f"{n} samples written to [bold]{out}[/]", highlight=False)


@app.command()
@cli_errors
def interpolate(
    run: Path = typer.Argument(..., help="A GAN or VAE run folder."),
    steps: int = typer.Option(8, help="Images along the way, ends included."),
    seeds: tuple[int, int] = typer.Option((0, 1), help="The two seeds whose latent vectors are the ends."),
    images: Optional[tuple[Path, Path]] = typer.Option(None, help="VAE runs: two image files whose encodings are the ends, instead of seeds."),
    out: Path = typer.Option(Path("interpolation.png"), help="The image to write."),
    label: Optional[str] = typer.Option(None, help="Class name, for conditional runs."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
    device: str = typer.Option("auto", help=DEVICE_HELP, show_default=False),
    precision: str = typer.Option("fp32", help=GENERATE_PRECISION_HELP, show_default=False),
):
    """Walk the latent space between two seeds (or two images, for a VAE) and write the images as one row."""
    from .data.images import save_image
    from .generate import interpolate as make_row
    from .runtime import resolve

    _refuse_existing(out, overwrite)
    save_image(make_row(run, steps, seeds, label, images, resolve(device, precision)), out)
    console.print(f"interpolation written to [bold]{out}[/]", highlight=False)


@app.command()
@cli_errors
def reconstruct(
    run: Path = typer.Argument(..., help="A VAE run folder."),
    inputs: List[str] = typer.Argument(..., help="Image files, folders (recursive) or glob patterns."),
    out: Path = typer.Option(..., help="Folder for the input | reconstruction images (PNG)."),
    label: Optional[str] = typer.Option(None, help="Class name, for conditional runs."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo outputs that already exist."),
    device: str = typer.Option("auto", help=DEVICE_HELP, show_default=False),
    precision: str = typer.Option("fp32", help=GENERATE_PRECISION_HELP, show_default=False),
):
    """Encode and decode images with a VAE run, writing input | reconstruction side by side."""
    from .generate import reconstruct as run_reconstruct
    from .runtime import resolve

    written, failed = run_reconstruct(run, inputs, out, label, overwrite, resolve(device, precision))
    console.print(f"{written} reconstruction(s) written to [bold]{out}[/]", highlight=False)
    for reason in failed:
        err.print(f"[yellow]skipped:[/] {reason}", highlight=False, soft_wrap=True)
    if failed:
        raise I2IError(f"{len(failed)} image(s) could not be reconstructed (listed above)")


def _refuse_existing(out: Path, overwrite: bool):
    from .errors import UsageError

    if out.exists() and not overwrite:
        raise UsageError(f"--out {out} exists; choose another name or add --overwrite")


@app.command("import")
@cli_errors
def import_(
    file: Path = typer.Argument(..., help="A generator .pth written by pytorch-CycleGAN-and-pix2pix (e.g. latest_net_G.pth)."),
    name: str = typer.Option(..., help="Name of the new run folder."),
    direction: str = typer.Option("AtoB", help="The direction this generator translates, for --direction in translate."),
    checkpoints_dir: Path = typer.Option(Path("checkpoints"), help="Where run folders go."),
):
    """Turn a reference generator file into an i2i run (architecture read from the file)."""
    from .errors import UsageError
    from .reference import import_generator

    if direction not in ("AtoB", "BtoA"):
        raise UsageError(f"--direction must be AtoB or BtoA, not {direction!r}")
    from .config import check_run_name

    check_run_name(name)  # the one check of run names, as train's: nothing may leave --checkpoints-dir
    run_dir = import_generator(file, checkpoints_dir / name, direction)
    console.print(f"imported {file} as [bold]{run_dir}[/]; translate with: i2i translate IMAGES --model {run_dir}")


def _report(report, what: str):
    """Print what a prepare step did; skipped files make it exit 1 (after the rest was done), as
    translate does."""
    console.print(f"{report.written} {what} written to [bold]{report.out}[/]", highlight=False)
    for path, reason in report.skipped:
        err.print(f"[yellow]skipped:[/] {path}: {reason}", highlight=False, soft_wrap=True)
    for rel in report.unmatched:
        err.print(f"[yellow]no partner:[/] {rel}", highlight=False, soft_wrap=True)
    if report.skipped:
        raise I2IError(f"{len(report.skipped)} file(s) could not be used (listed above); the rest was written to "
                       f"{report.out}")


@prepare_app.callback()
def prepare_options(ctx: typer.Context, max_pixels: Optional[int] = typer.Option(None, help=MAX_PIXELS_HELP)):
    """Lay out datasets: combine A/ and B/ into A|B images, split them, make train/test splits."""
    scope_max_pixels(ctx, max_pixels)


@prepare_app.command("combine")
@cli_errors
def prepare_combine(
    a: Path = typer.Option(..., "--a", help="Folder of A images."),
    b: Path = typer.Option(..., "--b", help="Folder of B images, same relative names as A."),
    out: Path = typer.Option(..., help="New folder for the A|B images."),
):
    """Combine A/ and B/ folders into side-by-side A|B images (the paired layout)."""
    from .prepare import combine

    _report(combine(a, b, out), "A|B image(s)")


@prepare_app.command("split-ab")
@cli_errors
def prepare_split_ab(
    src: Path = typer.Argument(..., help="Folder of A|B images."),
    out: Path = typer.Option(..., help="New folder; gets A/ and B/."),
):
    """Split A|B images back into A/ and B/ folders."""
    from .prepare import split_ab

    _report(split_ab(src, out), "pair(s)")


@prepare_app.command("split")
@cli_errors
def prepare_split(
    src: Path = typer.Argument(..., help="Folder of images (A|B images or any other)."),
    out: Path = typer.Option(..., help="New folder; gets train/, val/ and test/."),
    val: float = typer.Option(0.1, help="Fraction for val/."),
    test: float = typer.Option(0.1, help="Fraction for test/."),
    seed: int = typer.Option(0, help="Shuffle seed."),
):
    """Split a folder into train/val/test (copies; the source is not touched)."""
    from .prepare import split

    _report(split(src, out, val, test, seed), "image(s)")


@prepare_app.command("unpaired")
@cli_errors
def prepare_unpaired(
    a: Path = typer.Option(..., "--a", help="Folder of domain A images."),
    b: Path = typer.Option(..., "--b", help="Folder of domain B images."),
    out: Path = typer.Option(..., help="New folder; gets trainA/, trainB/, testA/, testB/."),
    test: float = typer.Option(0.1, help="Fraction of each domain for testA/ and testB/."),
    seed: int = typer.Option(0, help="Shuffle seed."),
):
    """Lay out an unpaired dataset (trainA/trainB/testA/testB) from two folders."""
    from .prepare import unpaired

    _report(unpaired(a, b, out, test, seed), "image(s)")


@app.command()
@cli_errors
def demo(
    out: Path = typer.Option(Path("i2i_demo"), help="Folder for the demo's data, run and results page."),
    steps: int = typer.Option(400, help="Training steps (about a minute on 2 CPU cores)."),
):
    """Train pix2pix on a built-in toy problem (outlines -> filled shapes) and show the results."""
    from .demo import run_demo

    observer = TrainProgress()
    try:
        page = run_demo(out, steps=steps, observer=observer)
    finally:
        observer.stop()
    console.print(f"results: [bold]{page}[/] (open it in a browser)")


def main():
    app()


if __name__ == "__main__":
    main()
