"""Training configuration: one flat dataclass whose fields are the ``train`` command's options.

Each field carries its help text in its metadata (:func:`option`); the CLI builds ``i2i train``'s
options from the fields, and each recipe (:mod:`i2i.modes`) says which fields it reads and what
defaults it changes, so an option is written once. The config written to a run's ``config.json``
holds everything needed to rebuild the networks and continue training, so no command ever asks
the user to repeat an architecture flag.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

MAX_MINUTES = 525_600  # --minutes: a year
PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


def option(default, help: str, *, cli: bool = True, default_help: str | None = None, path: bool = False,
           read_when: tuple = (), unset: str | None = None):
    """A config field that is also a ``train`` option: ``help`` is its help text, without its default
    (the CLI adds the defaults, the dataclass's and each recipe's); ``default_help`` replaces that
    generated default (e.g. "random, recorded"); ``path`` marks a folder (the CLI passes it as a
    string); ``cli=False`` keeps it off the command line (set by i2i itself); ``read_when``: the
    conditions (:class:`only_with`, :class:`either`; all must hold) under which the option is read at all, for the recipes that read
    it (given otherwise, it is refused by :func:`check_read`); ``unset``: what a None default
    means, for the help ("as --norm")."""
    return dataclasses.field(default=default, metadata={"help": help, "cli": cli, "default_help": default_help,
                                                        "path": path, "read_when": read_when, "unset": unset})


def flag(key: str, value=True) -> str:
    """How the command line sets field ``key`` to ``value``: ``--gan-loss wgan``, ``--learn-sigma``,
    ``--no-learn-sigma``."""
    name = key.replace("_", "-")
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no-{name}"
    return f"--{name} {value}"


def typed_flag(key: str, value) -> str:
    """The option that sets field ``key`` to ``value``, as the user typed it: ``--lambda-l1``, or
    ``--no-flip`` for a false boolean."""
    return flag(key, value) if isinstance(value, bool) else f"--{key.replace('_', '-')}"


class only_with:  # noqa: N801  (reads as a phrase in the field list)
    """A ``read_when`` condition: the option is read only when field ``key`` is one of ``values``
    (``values`` empty: when it is given and not 0; ``what`` then says so, e.g. "a --lambda-cycle
    above 0")."""

    def __init__(self, key: str, *values, what: str | None = None):
        self.key, self.values, self.what = key, values, what

    @property
    def text(self) -> str:
        if not self.values:
            return f"only with {self.what or '--' + self.key.replace('_', '-')}"
        return "only with " + " or ".join(flag(self.key, v) for v in self.values)

    def __call__(self, cfg) -> str | None:
        """None when ``cfg`` reads the option, else why not ("only with ... (here ...)")."""
        value = getattr(cfg, self.key)
        if (value in self.values) if self.values else (value is not None and value != 0):
            return None
        here = f"no --{self.key.replace('_', '-')}" if value is None else flag(self.key, value)
        return f"{self.text} (here {here})"


class either:  # noqa: N801
    """A ``read_when`` condition that holds when any of ``conditions`` does."""

    def __init__(self, *conditions: only_with):
        self.conditions = conditions

    @property
    def text(self) -> str:
        return "only with " + " or ".join(c.text.removeprefix("only with ") for c in self.conditions)

    def __call__(self, cfg) -> str | None:
        if any(c(cfg) is None for c in self.conditions):
            return None
        return f"{self.text} (here neither)"


CYCLE_ON = only_with("lambda_cycle", what="a --lambda-cycle above 0")
NCE_ON = only_with("lambda_nce", what="a --lambda-nce above 0")


@dataclass
class TrainConfig:
    mode: str = option("pix2pix", "The recipe.")
    a: str = option("", "The training images.", path=True)
    b: str | None = option(None, "The second folder.", path=True)
    name: str = option("", "Run name: the folder under --checkpoints-dir.",
                       default_help="DATA_MODE, the data folder's name and the mode, such as facades_pix2pix")
    checkpoints_dir: str = option("checkpoints", "Where run folders go.", path=True)
    direction: str = option("AtoB", "AtoB or BtoA: which side is the input.")
    # networks
    net_g: str = option("unet_256", "Generator: unet_256, unet_128, resnet_9blocks, resnet_6blocks, "
                                    "resnet_9blocks_antialias, ... (a wrong name lists them all).")
    net_d: str = option("basic", "Discriminator: basic (70x70 PatchGAN), n_layers (depth from --n-layers-d), "
                                 "pixel (1x1 PixelGAN), dcgan_discriminator (one score per image).")
    n_layers_d: int = option(3, "Layers of the n_layers discriminator.", read_when=(only_with("net_d", "n_layers"),))
    ngf: int = option(64, "Generator width.")
    ndf: int = option(64, "Discriminator width.")
    norm: str = option("batch", "batch, instance or none.")
    norm_d: str | None = option(None, "Discriminator norm, when it differs from --norm.", unset="as --norm")
    init: str = option("normal", "Weight init: normal, xavier, kaiming, orthogonal.")
    init_gain: float = option(0.02, "Scale of the normal, xavier and orthogonal inits.",
                              read_when=(only_with("init", "normal", "xavier", "orthogonal"),))
    dropout: bool = option(True, "Dropout in the generator.")
    input_nc: int = option(3, "Input channels, 1 or 3.")
    output_nc: int = option(3, "Output channels, 1 or 3.")
    z_dim: int = option(100, "Latent size.")
    image_size: int = option(64, "Image size: 32, 64 or 128.")
    conditional: bool = option(False, "Class labels from the subfolder names of --a.")
    classes: list[str] | None = option(None, "The class names found in the data (conditional runs).", cli=False)
    # losses
    gan_loss: str = option("vanilla", "vanilla, minimax, lsgan, wgan, wgangp or hinge.")
    lambda_l1: float = option(100.0, "Weight of the L1 term to the target.")
    lambda_cycle: float = option(10.0, "Weight of the round-trip L1, each way.")
    lambda_identity: float = option(0.5, "Identity L1 weight, times --lambda-cycle.", read_when=(CYCLE_ON,))
    lambda_nce: float = option(1.0, "Weight of the PatchNCE loss.")
    nce_idt: bool = option(False, "Also the identity PatchNCE loss on domain B images (G(b) against b).",
                           read_when=(NCE_ON,))
    nce_layers: str = option("0,4,8,12,16", "Generator layers whose features the PatchNCE loss compares, "
                                            "comma-separated.", read_when=(NCE_ON,))
    num_patches: int = option(256, "Patches sampled per layer for the PatchNCE loss.", read_when=(NCE_ON,))
    nce_t: float = option(0.07, "Temperature of the PatchNCE loss.", read_when=(NCE_ON,))
    flip_equivariance: bool = option(False, "Flip half the inputs, and the PatchNCE features back "
                                            "(FastCUT's regulariser).")
    pool_size: int = option(0, "Fakes kept for the discriminators (0: none).")
    n_critic: int = option(1, "Discriminator steps per generator step.")
    beta: float = option(1.0, "Weight of the KL term; 1 is the VAE, others the beta-VAE.")
    likelihood: str = option("gaussian", "gaussian, or bernoulli for binary images.")
    sigma: float = option(0.1, "The Gaussian's fixed standard deviation on [0, 1] pixels.",
                          read_when=(only_with("likelihood", "gaussian"), only_with("learn_sigma", False)))
    learn_sigma: bool = option(False, "Learn the standard deviation (one per channel).",
                               read_when=(only_with("likelihood", "gaussian"),))
    gamma: float = option(0.01, "Weight of the feature-space reconstruction in the decoder's loss.")
    holdout: float = option(0.1, "Fraction of images held out to report bits per dim.")
    clip: float = option(0.01, "Clip critic weights to +-clip (the WGAN critic's Lipschitz bound).",
                         read_when=(only_with("gan_loss", "wgan"),))
    diff_augment: bool = option(False, "Augment every image the discriminator sees (colour, shift, cutout; Zhao "
                                       "et al. 2020). Keeps D from memorising folders of a few thousand images or "
                                       "fewer.")
    # optimisation
    epochs: int = option(100, "Epochs at the starting learning rate.")
    epochs_decay: int = option(100, "Further epochs with linear decay to zero.")
    batch_size: int = option(1, "Images per step in each process: under torchrun the global batch is this times "
                                "the number of processes.")
    optimizer: str = option("adam", "adam or rmsprop.")
    lr: float = option(2e-4, "Learning rate.")
    beta1: float = option(0.5, "Adam beta1.", read_when=(only_with("optimizer", "adam"),))
    beta2: float = option(0.999, "Adam beta2.", read_when=(only_with("optimizer", "adam"),))
    # data
    load_size: int = option(286, "Resize to this before cropping.")
    crop_size: int = option(256, "Random crop size.")
    preprocess: str = option("resize_and_crop", "resize_and_crop, crop, scale_width, scale_width_and_crop, none. "
                             "scale_width and none keep each image's aspect ratio, so with images of mixed sizes "
                             "they need --batch-size 1. Options under which a training step cannot run (images too "
                             "small for the networks, say) are refused before training, naming what to change.")
    flip: bool = option(True, "Random horizontal flips.")
    serial_batches: bool = option(False, "Take the images in order, not shuffled: A in file order, B[i] beside A[i] "
                                         "(modulo the shorter folder), as the reference's --serial_batches.")
    workers: int = option(2, "Data loading processes.")
    strict: bool = option(False, "Stop on unreadable, truncated or unmatched files, and A|B images of odd width, "
                                 "instead of skipping them.")
    # validation (see i2i/validation.py)
    val: str | None = option(None, "Validation images: pairs, or domain A for unpaired recipes. Scores are logged "
                                   "and the best checkpoint kept in RUN/best.", path=True)
    val_b: str | None = option(None, "Domain B validation images.", path=True, read_when=(only_with("val"),))
    val_fraction: float = option(0.0, "Instead of --val: hold out this fraction of the training images (chosen by "
                                      "the seed).")
    val_every: int | None = option(None, "Validate every N steps.", default_help="every epoch")
    best_metric: str | None = option(None, "Score that picks RUN/best: L1, PSNR, SSIM, cycle_L1, ...",
                                     read_when=(either(only_with("val"), only_with("val_fraction")),))
    report: bool = option(True, "Rewrite RUN/report.html after every epoch.")
    max_pixels: int | None = option(None, "Refuse images larger than this many pixels (a decompression-bomb "
                                          "guard).", default_help="89478485")
    # run control
    seed: int | None = option(None, "Random seed; the same seed repeats a run.", default_help="random, recorded")
    steps: int | None = option(None, "Train this many steps in all, the learning rate's schedule fitted to them: "
                                     "constant, then decaying linearly to zero every step, the two phases in the "
                                     "ratio of --epochs to --epochs-decay. (--max-steps instead stops a run "
                                     "part-way through its schedule.)",
                               default_help="--epochs + --epochs-decay epochs")
    minutes: float | None = option(None, "Train for about this many minutes, counted from the first step: the "
                                         "steps that fit are measured while the learning rate is constant, then "
                                         "set as --steps before it decays and recorded in config.json (--resume "
                                         "continues that schedule, or what is left of the minutes when stopped "
                                         "before it), and the log says how to repeat the run.")
    max_steps: int | None = option(None, "Stop after this many steps (smoke runs).")
    save_every: int = option(1000, "Save a checkpoint every N steps.")
    sample_every: int = option(200, "Write a sample grid every N steps.")
    log_every: int = option(10, "Append the losses to log.jsonl every N steps.")
    # where and how fast (see i2i/runtime.py); may change on resume
    device: str = option("auto", "auto, cpu, cuda or mps.", default_help="auto: a GPU when there is one")
    precision: str = option("auto", "auto, fp32 or bf16. auto: bf16 where the GPU or CPU computes it natively "
                                    "(AMX, AVX512-BF16), else fp32; fp32: the plain reference path.")
    threads: int | None = option(None, "CPU threads.", default_help="the CPUs not busy with other work")
    compile: bool = option(False, "torch.compile the networks (slow to start; pays off on long GPU runs).")

    @property
    def run_dir(self) -> Path:
        return Path(self.checkpoints_dir) / self.name

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict, source: str | Path | None = None) -> "TrainConfig":
        """A config from a dict of field values; keys that are not fields are ignored.

        Each value must have its field's annotated type (an int where a float is due is taken; a
        bool is not an int; floats must be finite; None only where the annotation allows it).
        With ``source`` (the config.json the dict was read from) the fields that every i2i has
        written must be present, and a wrong field is an :class:`I2IError` naming the field and the
        file; without it missing fields take their defaults and a wrong one is a :class:`UsageError`
        naming the option.
        """
        import math
        import typing

        from .errors import I2IError

        def fail(key: str, problem: str):
            if source is None:
                raise UsageError(f"--{key.replace('_', '-')}: {problem}")
            default = next(f.default for f in dataclasses.fields(cls) if f.name == key)
            default = "" if default is dataclasses.MISSING else f" (i2i's default: {json.dumps(default)})"
            raise I2IError(f"{source}: field {key!r} {problem}; the file is damaged: put back a copy from a "
                           f"backup, or write in the value the run was trained with{default}")

        def describe(value) -> str:
            text = json.dumps(value) if isinstance(value, (str, int, float, list, dict, type(None))) else repr(value)
            return text if len(text) <= 40 else text[:37] + "..."

        def fits(value, hint) -> tuple[bool, object]:
            if hint is bool:
                return isinstance(value, bool), value
            if hint is int:
                return isinstance(value, int) and not isinstance(value, bool), value
            if hint is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                return ok, float(value) if ok else value
            if hint is str:
                return isinstance(value, str), value
            origin, args = typing.get_origin(hint), typing.get_args(hint)
            if origin is list:
                if not isinstance(value, list):
                    return False, value
                items = [fits(v, args[0]) for v in value]
                return all(ok for ok, _ in items), [v for _, v in items]
            if type(None) in args:  # X | None
                if value is None:
                    return True, None
                return fits(value, next(a for a in args if a is not type(None)))
            return True, value

        names = {"bool": "true or false", "int": "an integer", "float": "a finite number", "str": "a string"}
        if not isinstance(d, dict):
            raise I2IError(f"{source}: not an i2i config (expected a JSON object)")
        hints = typing.get_type_hints(cls)
        # the fields that every i2i has written to config.json (later ones default when missing)
        always_written = ("mode", "a", "b", "name", "checkpoints_dir", "direction", "net_g", "net_d", "n_layers_d",
                          "ngf", "ndf", "norm", "init", "init_gain", "dropout", "input_nc", "output_nc", "gan_loss",
                          "lambda_l1", "epochs", "epochs_decay", "batch_size", "lr", "beta1", "load_size",
                          "crop_size", "preprocess", "flip", "workers", "seed", "max_steps", "save_every",
                          "sample_every", "log_every")
        if source is not None:
            for key in always_written:
                if key not in d:
                    fail(key, "is missing")
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            hint = hints[f.name]
            ok, value = fits(d[f.name], hint)
            if not ok:
                kinds = typing.get_args(hint) if typing.get_origin(hint) is not list and typing.get_args(hint) else (hint,)
                if source is None:  # an option: "not given" is no value a user types
                    kinds = [a for a in kinds if a is not type(None)]
                want = " or ".join(names.get(getattr(a, "__name__", ""), str(a)) if a is not type(None) else "null"
                                   for a in kinds)
                want = want.replace("list[str]", "a list of strings")
                fail(f.name, f"is {describe(d[f.name])}, not {want}")
            values[f.name] = value
        return cls(**values)


def check_read(cfg: TrainConfig, given: dict) -> None:
    """:class:`UsageError` for a ``given`` option (field -> value) that ``cfg`` would not read because of the other
    options (``--clip`` without ``--gan-loss wgan``, say): one line naming it, why, and to drop it.
    (Which recipes read an option at all is the recipe's to say: :func:`i2i.modes.refuse_unread`.)"""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for key, value in given.items():
        conditions = fields[key].metadata.get("read_when", ()) if key in fields else ()
        reason = next((r for r in (c(cfg) for c in conditions) if r), None)
        if reason:
            name = typed_flag(key, value)
            raise UsageError(f"{name} is read {reason}: drop {name}")


def check_common(cfg: TrainConfig) -> None:
    """Reject option values that cannot work whatever the recipe: a :class:`UsageError` naming the
    option. The recipe adds its own checks (:meth:`i2i.modes.base.Mode.check`), and what also depends
    on the data (the image sizes that reach the networks, the batch) is checked by
    :func:`i2i.preflight.check_training` once the images are scanned, before the networks are built."""
    from .data.images import DEFAULT_MAX_PIXELS, check_side
    from .losses import GAN_LOSSES
    from .nets.layers import INITS, NORMS

    def check(ok: bool, message: str):
        if not ok:
            raise UsageError(message)

    check(cfg.direction in ("AtoB", "BtoA"), f"--direction must be AtoB or BtoA, not {cfg.direction!r}")
    check(cfg.norm in NORMS, f"--norm must be one of {', '.join(NORMS)}")
    check(cfg.norm_d in (None, *NORMS), f"--norm-d must be one of {', '.join(NORMS)}")
    check(cfg.optimizer in ("adam", "rmsprop"), "--optimizer must be adam or rmsprop")
    check(cfg.n_critic >= 1, "--n-critic must be at least 1")
    check(cfg.clip > 0, "--clip must be positive")
    check(cfg.pool_size >= 0, "--pool-size must be 0 or more")
    for key in ("lambda_l1", "lambda_cycle", "lambda_identity", "lambda_nce"):
        check(getattr(cfg, key) >= 0, f"--{key.replace('_', '-')} must be at least 0 (loss weights are >= 0)")
    check(cfg.num_patches >= 1, "--num-patches must be at least 1")
    check(cfg.nce_t > 0, "--nce-t must be positive")
    check(cfg.init in INITS, f"--init must be one of {', '.join(INITS)}")
    check(cfg.gan_loss in GAN_LOSSES, f"--gan-loss must be one of {', '.join(GAN_LOSSES)}")
    check(cfg.preprocess in PREPROCESS, f"--preprocess must be one of {', '.join(PREPROCESS)}")
    check(cfg.batch_size >= 1, "--batch-size must be at least 1")
    check(cfg.load_size >= 1, "--load-size must be at least 1")
    check(cfg.crop_size >= 1, "--crop-size must be at least 1")
    check(cfg.ngf >= 1, "--ngf must be at least 1")
    check(cfg.ndf >= 1, "--ndf must be at least 1")
    check(cfg.n_layers_d >= 1, "--n-layers-d must be at least 1")
    check_side("--load-size", cfg.load_size if cfg.preprocess == "resize_and_crop" else 0,
               cfg.max_pixels or DEFAULT_MAX_PIXELS)
    check_side("--crop-size", cfg.crop_size if "crop" in cfg.preprocess else 0, cfg.max_pixels or DEFAULT_MAX_PIXELS)
    check(cfg.workers >= 0, "--workers must be 0 or more")
    check(0 <= cfg.beta1 < 1, "--beta1 must be at least 0 and below 1")
    check(0 <= cfg.beta2 < 1, "--beta2 must be at least 0 and below 1")
    check(cfg.epochs >= 0 and cfg.epochs_decay >= 0 and cfg.epochs + cfg.epochs_decay > 0,
          "--epochs and --epochs-decay must be >= 0 with at least one epoch in total")
    check(cfg.lr > 0, "--lr must be positive")
    check(cfg.max_steps is None or cfg.max_steps >= 1, "--max-steps must be at least 1")
    check(cfg.steps is None or cfg.steps >= 1, "--steps must be at least 1")
    check(cfg.minutes is None or 0 < cfg.minutes <= MAX_MINUTES,
          f"--minutes must be above 0 and at most {MAX_MINUTES} (a year)")
    check(cfg.save_every >= 1 and cfg.sample_every >= 1 and cfg.log_every >= 1,
          "--save-every, --sample-every and --log-every must be at least 1")
    check(cfg.input_nc in (1, 3) and cfg.output_nc in (1, 3), "--input-nc and --output-nc must be 1 or 3")
    check_run_name(cfg.name)
    if cfg.preprocess in ("resize_and_crop", "scale_width_and_crop"):
        check(cfg.crop_size <= cfg.load_size, f"--crop-size {cfg.crop_size} is larger than --load-size {cfg.load_size}")
    check(cfg.likelihood in ("gaussian", "bernoulli"), "--likelihood must be gaussian or bernoulli")
    check(cfg.sigma > 0 and cfg.beta >= 0, "--sigma must be positive and --beta at least 0")
    check(0 <= cfg.holdout < 1, "--holdout must be at least 0 and below 1")
    check(0 <= cfg.val_fraction < 1, "--val-fraction must be at least 0 and below 1")
    check(not (cfg.val and cfg.val_fraction), "give --val or --val-fraction, not both")
    check(cfg.val_every is None or cfg.val_every >= 1, "--val-every must be at least 1")
    if cfg.val_every:
        check(bool(cfg.val or cfg.val_fraction), "--val-every needs held-out images: --val DIR or --val-fraction F")

def check_run_name(name: str) -> None:
    """Run names are plain folder names: nothing that could escape --checkpoints-dir or that some file
    system cannot hold. The one check for every command that takes a run name (train, train
    --resume, import); :class:`UsageError` (exit 2) otherwise.

    Refused: non-strings, the empty name, slashes, backslashes, colons, control characters (NUL
    included), a leading dot (".", "..", hidden folders), leading or trailing spaces, a trailing dot,
    and names over 255 bytes in UTF-8.
    """
    def plain(text: str) -> bool:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeError:  # lone surrogates from undecodable command-line bytes
            return False
        return (0 < size <= 255 and not any(c in "/\\:" or ord(c) < 32 or ord(c) == 127 for c in text)
                and not text.startswith(".") and text == text.strip() and not text.endswith("."))

    if not isinstance(name, str) or not plain(name):
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise UsageError(f"--name {shown}: must be a plain folder name such as facades_label2photo (no slashes, "
                         "backslashes, colons or control characters, no leading dot, at most 255 bytes)")


def generator_multiple(net_g: str, **kwargs) -> int:
    """The number that a generator's input height and width must be a multiple of."""
    from . import nets

    net = nets.create(net_g, init=None, ngf=1, **kwargs)
    return net.size_multiple
