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
    help="Image-to-image translation: train pix2pix (paired) or CycleGAN and DualGAN (unpaired), translate images, import reference generators, prepare datasets.",
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


@app.command()
@cli_errors
def train(
    mode: Optional[str] = typer.Option(None, help="Recipe: pix2pix (paired), cycle (CycleGAN) or dual (DualGAN) (unpaired), gan (DCGAN), vae (VAE, beta-VAE), vaegan (one folder). [default: pix2pix]"),
    a: Optional[Path] = typer.Option(None, "--a", help="pix2pix: a folder of A|B images, or of A/ and B/ folders. cycle, dual: the domain A folder."),
    b: Optional[Path] = typer.Option(None, "--b", help="cycle, dual: the domain B folder. pix2pix: the B folder when A and B are separate."),
    name: Optional[str] = typer.Option(None, help="Run name: the folder under --checkpoints-dir [default: DATA_MODE, the data folder's name and the mode, such as facades_pix2pix]."),
    checkpoints_dir: Path = typer.Option(Path("checkpoints"), help="Where run folders go."),
    direction: Optional[str] = typer.Option(None, help="AtoB or BtoA: which side is the input. [default: AtoB]"),
    net_g: Optional[str] = typer.Option(None, help="Generator: unet_256, unet_128, resnet_9blocks, ... [default: unet_256]"),
    net_d: Optional[str] = typer.Option(None, help="Discriminator: basic (70x70 PatchGAN), n_layers (depth from --n-layers-d), pixel (1x1 PixelGAN); gan, vae, vaegan: dcgan_discriminator. [default: basic; gan, vae, vaegan: dcgan_discriminator]"),
    n_layers_d: Optional[int] = typer.Option(None, help="Layers of the n_layers discriminator. [default: 3]"),
    ngf: Optional[int] = typer.Option(None, help="Generator width. [default: 64]"),
    ndf: Optional[int] = typer.Option(None, help="Discriminator width. [default: 64]"),
    norm: Optional[str] = typer.Option(None, help="batch, instance or none. [default: batch; cycle: instance]"),
    norm_d: Optional[str] = typer.Option(None, help="Discriminator norm, when it differs from --norm."),
    init: Optional[str] = typer.Option(None, help="Weight init: normal, xavier, kaiming, orthogonal. [default: normal]"),
    dropout: Optional[bool] = typer.Option(None, "--dropout/--no-dropout", help="Dropout in the generator. [default: on]"),
    gan_loss: Optional[str] = typer.Option(None, help="vanilla, minimax, lsgan, wgan, wgangp or hinge. [default: vanilla; cycle: lsgan; dual: wgangp]"),
    lambda_l1: Optional[float] = typer.Option(None, help="pix2pix: weight of the L1 term. [default: 100]"),
    lambda_cycle: Optional[float] = typer.Option(None, help="cycle, dual: weight of the round-trip L1, each way. [default: cycle 10, dual 500]"),
    lambda_identity: Optional[float] = typer.Option(None, help="cycle: identity L1 weight, times --lambda-cycle. [default: 0.5]"),
    pool_size: Optional[int] = typer.Option(None, help="cycle: fakes kept for the discriminators (0: none). [default: 50]"),
    n_critic: Optional[int] = typer.Option(None, help="Discriminator steps per generator step. [default: 1; dual: 5, or 4 with wgan]"),
    clip: Optional[float] = typer.Option(None, help="dual with --gan-loss wgan: clip critic weights to +-clip. [default: 0.01]"),
    epochs: Optional[int] = typer.Option(None, help="Epochs at the starting learning rate. [default: 100]"),
    epochs_decay: Optional[int] = typer.Option(None, help="Further epochs with linear decay to zero. [default: 100]"),
    batch_size: Optional[int] = typer.Option(None, help="Images per step in each process: under torchrun the global batch is this times the number of processes. [default: 1; gan, vae: 64]"),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate. [default: 0.0002]"),
    beta1: Optional[float] = typer.Option(None, help="Adam beta1. [default: 0.5]"),
    load_size: Optional[int] = typer.Option(None, help="Resize to this before cropping. [default: 286]"),
    crop_size: Optional[int] = typer.Option(None, help="Random crop size. [default: 256]"),
    preprocess: Optional[str] = typer.Option(None, help="resize_and_crop, crop, scale_width, scale_width_and_crop, none. scale_width and none keep each image's aspect ratio, so with images of mixed sizes they need --batch-size 1. Options under which a training step cannot run (images too small for the networks, say) are refused before training, naming what to change. [default: resize_and_crop]"),
    no_flip: bool = typer.Option(False, "--no-flip", help="No random horizontal flips."),
    serial_batches: bool = typer.Option(False, "--serial-batches", help="cycle, dual: take B images in order, not at random."),
    image_size: Optional[int] = typer.Option(None, help="gan: image size, 32, 64 or 128. [default: 64]"),
    z_dim: Optional[int] = typer.Option(None, help="gan: latent size. [default: 100]"),
    conditional: bool = typer.Option(False, "--conditional", help="gan, vae: class labels from the subfolder names of --a."),
    diff_augment: bool = typer.Option(False, "--diff-augment", help="gan: augment every image the discriminator sees (colour, shift, cutout; Zhao et al. 2020). Keeps D from memorising folders of a few thousand images or fewer."),
    beta: Optional[float] = typer.Option(None, help="vae: weight of the KL term; 1 is the VAE, others the beta-VAE. [default: 1]"),
    likelihood: Optional[str] = typer.Option(None, help="vae: gaussian, or bernoulli for binary images. [default: gaussian]"),
    sigma: Optional[float] = typer.Option(None, help="vae: the Gaussian's fixed standard deviation on [0, 1] pixels. [default: 0.1]"),
    learn_sigma: bool = typer.Option(False, "--learn-sigma", help="vae: learn the standard deviation (one per channel)."),
    gamma: Optional[float] = typer.Option(None, help="vaegan: weight of the feature-space reconstruction in the decoder's loss. [default: 0.01]"),
    holdout: Optional[float] = typer.Option(None, help="vae: fraction of images held out to report bits per dim. [default: 0.1]"),
    input_nc: Optional[int] = typer.Option(None, help="Input channels, 1 or 3. [default: 3]"),
    output_nc: Optional[int] = typer.Option(None, help="Output channels, 1 or 3. [default: 3]"),
    seed: Optional[int] = typer.Option(None, help="Random seed; the same seed repeats a run. [default: random, recorded]"),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many steps (smoke runs)."),
    save_every: Optional[int] = typer.Option(None, help="Save a checkpoint every N steps. [default: 1000]"),
    log_every: Optional[int] = typer.Option(None, help="Append the losses to log.jsonl every N steps. [default: 10]"),
    sample_every: Optional[int] = typer.Option(None, help="Write a sample grid every N steps. [default: 200]"),
    workers: Optional[int] = typer.Option(None, help="Data loading processes. [default: 2]"),
    val: Optional[Path] = typer.Option(None, help="Validation images: pix2pix pairs, or domain A for cycle and dual. Scores are logged and the best checkpoint kept in RUN/best."),
    val_b: Optional[Path] = typer.Option(None, help="cycle, dual: domain B validation images."),
    val_fraction: Optional[float] = typer.Option(None, help="Instead of --val: hold out this fraction of the training images (chosen by the seed)."),
    val_every: Optional[int] = typer.Option(None, help="Validate every N steps. [default: every epoch]"),
    best_metric: Optional[str] = typer.Option(None, help="Score that picks RUN/best: L1, PSNR, SSIM, cycle_L1, ... [default: L1; cycle, dual: cycle_L1]"),
    no_report: bool = typer.Option(False, "--no-report", help="Do not rewrite RUN/report.html after every epoch."),
    strict: bool = typer.Option(False, "--strict", help="Stop on unreadable, truncated or unmatched files, and A|B images of odd width, instead of skipping them."),
    max_pixels: Optional[int] = typer.Option(None, help=MAX_PIXELS_HELP),
    device: Optional[str] = typer.Option(None, help=DEVICE_HELP),
    precision: Optional[str] = typer.Option(None, help=PRECISION_HELP),
    threads: Optional[int] = typer.Option(None, help=THREADS_HELP),
    compile: bool = typer.Option(False, "--compile", help=COMPILE_HELP),
    resume: bool = typer.Option(False, "--resume", help="Continue the run --name from its last checkpoint."),
):
    """Train a model. Example: i2i train --a datasets/facades/train --direction BtoA --name facades_label2photo"""
    from .config import make_config
    from .errors import UsageError
    from .train import resume_config
    from .train import train as run_training
    from .train import use_command

    options = dict(
        a=None if a is None else str(a), b=None if b is None else str(b), direction=direction, net_g=net_g,
        net_d=net_d, n_layers_d=n_layers_d, ngf=ngf, ndf=ndf, norm=norm, norm_d=norm_d, init=init, dropout=dropout,
        gan_loss=gan_loss, lambda_l1=lambda_l1, lambda_cycle=lambda_cycle, lambda_identity=lambda_identity,
        pool_size=pool_size, n_critic=n_critic, clip=clip, serial_batches=True if serial_batches else None,
        image_size=image_size, z_dim=z_dim, conditional=True if conditional else None, beta=beta,
        diff_augment=True if diff_augment else None,
        likelihood=likelihood, sigma=sigma, learn_sigma=True if learn_sigma else None, gamma=gamma, holdout=holdout, epochs=epochs, epochs_decay=epochs_decay, batch_size=batch_size,
        lr=lr, beta1=beta1, load_size=load_size, crop_size=crop_size, preprocess=preprocess,
        flip=False if no_flip else None, input_nc=input_nc, output_nc=output_nc, seed=seed, max_steps=max_steps,
        save_every=save_every, sample_every=sample_every, log_every=log_every, workers=workers, device=device, precision=precision,
        threads=threads, compile=True if compile else None, strict=True if strict else None, max_pixels=max_pixels,
        val=None if val is None else str(val), val_b=None if val_b is None else str(val_b), val_fraction=val_fraction,
        val_every=val_every, best_metric=best_metric, report=False if no_report else None,
    )
    if resume:
        if name is None:
            raise UsageError("--resume needs --name: the run to continue")
        from .config import check_run_name

        check_run_name(name)
        cfg = resume_config(checkpoints_dir / name, mode=mode, **options)
    else:
        if a is None:
            raise UsageError("--a is required: the folder of training images (see datasets/README.md)")
        if name is None:
            folder = a.resolve()
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
):
    """Translate images with a trained generator, keeping names, formats and sizes."""
    from .distributed import World
    from .errors import UsageError
    from .runtime import resolve
    from .translate import load_translator, parse_shard, translate_files

    if direction not in (None, "AtoB", "BtoA"):
        raise UsageError(f"--direction must be AtoB or BtoA, not {direction!r}")
    if batch_size is not None and batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    from .data.images import set_max_pixels

    set_max_pixels(max_pixels)
    world = World.from_env()
    shard_of = parse_shard(shard) if shard is not None else (world.rank, world.size) if world.enabled else None
    runtime = resolve(device, precision, threads, compile)
    translator = load_translator(model, direction, checkpoints_dir, runtime, eval_mode=not no_eval)
    prefix = f"shard {shard_of[0]}/{shard_of[1]}: " if shard_of else ""
    if world.main:
        err.print(f"model: {translator.source} ({translator.spec['name']}"
                  f"{', ' + translator.direction if translator.direction else ''}); {runtime.describe()}", highlight=False)
    run_name = Path(translator.source).stem if Path(translator.source).is_file() else Path(translator.source).name
    with Progress(TextColumn(f"{prefix}translate"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, disable=not world.main) as bar:
        task = bar.add_task("translate", total=None)
        summary = translate_files(translator, inputs, out, run_name, size, batch_size, overwrite, ab,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total),
                                  shard=shard_of)
    console.print(f"{prefix}{summary.written} image(s) written to [bold]{summary.out}[/]"
                  + (f", {summary.existing} already there" if summary.existing else ""), highlight=False)
    for path, reason in summary.failed:
        err.print(f"[yellow]{prefix}skipped:[/] {reason}", highlight=False, soft_wrap=True)
    if summary.failed:
        raise I2IError(f"{prefix}{len(summary.failed)} image(s) could not be translated (listed above)")


@app.command("eval")
@cli_errors
def eval_command(
    run: Path = typer.Argument(..., help="A pix2pix, cycle or dual run folder."),
    a: str = typer.Option(..., "--a", help="pix2pix: test pairs (A|B images, or a folder of A/ and B/). cycle, dual: domain A test images."),
    b: Optional[str] = typer.Option(None, "--b", help="cycle, dual: domain B test images. pix2pix: the B folder when A and B are separate."),
    palette: Optional[Path] = typer.Option(None, help="Label colours, one 'R G B' per line: adds pixel and class accuracy and mean IoU for label-map outputs."),
    inception_weights: Optional[Path] = typer.Option(None, help="pytorch-fid's pt_inception-2015-12-05 weights: adds FID and KID."),
    device: str = typer.Option("auto", help=DEVICE_HELP, show_default=False),
    precision: str = typer.Option("fp32", help="auto, fp32 or bf16 (see i2i translate). [default: fp32, so scores do not depend on the machine]", show_default=False),
    threads: Optional[int] = typer.Option(None, help=THREADS_HELP),
):
    """Score a run on test images: a table, and eval.json in the run folder."""
    from rich.table import Table

    from .evaluate import evaluate
    from .runtime import resolve

    runtime = resolve(device, precision, threads)
    with Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err) as bar:
        task = bar.add_task("eval", total=None)
        record = evaluate(run, a, b, None if palette is None else str(palette),
                          None if inception_weights is None else str(inception_weights), runtime,
                          progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"{run} at step {record['step']}, {record['scores']['images']} images:", highlight=False)
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
def prepare_options(max_pixels: Optional[int] = typer.Option(None, help=MAX_PIXELS_HELP)):
    """Lay out datasets: combine A/ and B/ into A|B images, split them, make train/test splits."""
    from .data.images import set_max_pixels

    set_max_pixels(max_pixels)


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
