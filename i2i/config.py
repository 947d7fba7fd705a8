"""Training configuration: one flat dataclass, per-mode defaults, and a JSON round trip.

The config written to a run's ``config.json`` holds everything needed to rebuild the networks and
continue training, so no command ever asks the user to repeat an architecture flag.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

MODES = ("pix2pix", "cycle", "dual", "gan", "vae", "vaegan")
PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


@dataclass
class TrainConfig:
    mode: str = "pix2pix"
    a: str = ""
    b: str | None = None
    name: str = ""
    checkpoints_dir: str = "checkpoints"
    direction: str = "AtoB"
    # networks
    net_g: str = "unet_256"
    net_d: str = "basic"
    n_layers_d: int = 3
    ngf: int = 64
    ndf: int = 64
    norm: str = "batch"
    norm_d: str | None = None  # the discriminators' norm when it differs from the generators'
    init: str = "normal"
    init_gain: float = 0.02
    dropout: bool = True
    input_nc: int = 3
    output_nc: int = 3
    z_dim: int = 100  # gan: latent size
    image_size: int = 64  # gan: 32, 64 or 128
    conditional: bool = False  # gan, vae: class labels from subfolder names
    classes: list[str] | None = None  # the class names found in the data (conditional runs)
    # losses
    gan_loss: str = "vanilla"
    lambda_l1: float = 100.0  # pix2pix: weight of L1 to the target
    lambda_cycle: float = 10.0  # cycle/dual: weight of the reconstruction L1, each direction
    lambda_identity: float = 0.5  # cycle: identity L1, as a fraction of lambda_cycle
    pool_size: int = 0  # cycle: image history for the discriminators (0: none)
    n_critic: int = 1  # discriminator updates per generator update
    beta: float = 1.0  # vae: weight of the KL term (1: the VAE; other values: the beta-VAE)
    likelihood: str = "gaussian"  # vae: gaussian or bernoulli (binary images)
    sigma: float = 0.1  # vae: the Gaussian's standard deviation, on pixel values in [0, 1]
    learn_sigma: bool = False  # vae: learn sigma (one per channel) instead
    gamma: float = 0.01  # vaegan: weight of the feature-space reconstruction in the decoder's loss
    holdout: float = 0.1  # vae: fraction of the images kept out of training to measure bits per dim
    clip: float = 0.01  # dual with --gan-loss wgan: critic weights are clipped to +-clip
    diff_augment: bool = False  # gan: augment every image D sees (DiffAugment), for small folders
    # optimisation
    epochs: int = 100
    epochs_decay: int = 100
    batch_size: int = 1
    optimizer: str = "adam"  # adam or rmsprop
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    # data
    load_size: int = 286
    crop_size: int = 256
    preprocess: str = "resize_and_crop"
    flip: bool = True
    serial_batches: bool = False  # unpaired: take B in order instead of at random
    workers: int = 2
    strict: bool = False  # bad or unmatched files are an error instead of being skipped
    # validation (see i2i/validation.py)
    val: str | None = None  # pix2pix: pairs; cycle/dual: domain A
    val_b: str | None = None  # cycle/dual: domain B
    val_fraction: float = 0.0  # or hold out this fraction of the training images
    val_every: int | None = None  # steps between validations (None: every epoch)
    best_metric: str | None = None  # the score that picks the best checkpoint
    report: bool = True  # rewrite <run>/report.html after every epoch
    max_pixels: int | None = None  # images above this many pixels are refused (None: Pillow's 89M)
    # run control
    seed: int | None = None
    max_steps: int | None = None
    save_every: int = 1000
    sample_every: int = 200
    log_every: int = 10
    # where and how fast (see i2i/runtime.py); may change on resume
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    compile: bool = False

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
                want = " or ".join(names.get(getattr(a, "__name__", ""), str(a)) if a is not type(None) else "null"
                                   for a in (typing.get_args(hint) if typing.get_origin(hint) is not list and
                                             typing.get_args(hint) else (hint,)))
                want = want.replace("list[str]", "a list of strings")
                fail(f.name, f"is {describe(d[f.name])}, not {want}")
            values[f.name] = value
        return cls(**values)


# What each mode changes from the dataclass defaults (which are pix2pix's: the paper's and reference's).
MODE_DEFAULTS: dict[str, dict] = {
    "pix2pix": {},
    # the reference's CycleGAN options
    "cycle": dict(net_g="resnet_9blocks", norm="instance", dropout=False, gan_loss="lsgan", pool_size=50),
    # DualGAN (Yi et al. 2017): U-Nets whose dropout is the noise source, Wasserstein critics
    "dual": dict(net_g="unet_256", norm="batch", dropout=True, gan_loss="wgangp", lambda_cycle=500.0),
    # DCGAN (Radford et al. 2016): its batch size of 128 halved for CPUs, 25 epochs at a constant rate
    "gan": dict(net_g="dcgan_generator", net_d="dcgan_discriminator", norm="batch", dropout=False,
                batch_size=64, epochs=25, epochs_decay=0),
    # a convolutional VAE at DCGAN's sizes; Adam 1e-3, the usual rate for VAEs
    "vae": dict(net_g="conv_vae", net_d="dcgan_discriminator", norm="batch", dropout=False, z_dim=128, ngf=32, batch_size=64, epochs=25,
                epochs_decay=0, lr=1e-3, beta1=0.9, beta2=0.999),
    # VAE-GAN: the VAE's networks and DCGAN's discriminator and optimiser settings
    "vaegan": dict(net_g="conv_vae", net_d="dcgan_discriminator", norm="batch", dropout=False, z_dim=128, ngf=32,
                   batch_size=64, epochs=25, epochs_decay=0, lr=2e-4, beta1=0.5, beta2=0.999),
}

# Defaults that follow from the mode and the GAN loss together: DualGAN's two recipes.
LOSS_PRESETS: dict[tuple[str, str], dict] = {
    # the paper's: weight clipping, RMSProp
    ("dual", "wgan"): dict(optimizer="rmsprop", lr=5e-5, n_critic=4, clip=0.01),
    # the gradient penalty instead (Gulrajani et al. 2017), with its Adam settings; batch norm in a
    # critic would couple the samples whose gradients the penalty constrains, so the critics use
    # instance norm
    ("dual", "wgangp"): dict(optimizer="adam", lr=1e-4, beta1=0.5, beta2=0.9, n_critic=5, norm_d="instance"),
    # WGAN-GP's own settings for image GANs, with a critic free of batch norm
    ("gan", "wgangp"): dict(lr=1e-4, beta1=0.0, beta2=0.9, n_critic=5, norm_d="none"),
}

# the registry kinds of (generator, discriminator) that each mode builds
NET_KINDS = {"gan": ("latent_generator", "image_critic"), "vae": ("vae", "image_critic"),
             "vaegan": ("vae", "image_critic")}


def make_config(mode: str, **options) -> TrainConfig:
    """Config for ``mode``: the dataclass defaults, then the mode's defaults, then ``options``
    (entries that are None mean "not given" and keep the default)."""
    if mode not in MODES:
        raise UsageError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    given = {k: v for k, v in options.items() if v is not None}
    defaults = dict(MODE_DEFAULTS.get(mode, {}))
    defaults.update(LOSS_PRESETS.get((mode, given.get("gan_loss", defaults.get("gan_loss", "vanilla"))), {}))
    cfg = TrainConfig.from_dict({**defaults, **given, "mode": mode})
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Reject option values and combinations that cannot work, before any work is done: a
    :class:`UsageError` naming the option. What also depends on the data (the image sizes that reach
    the networks, the batch) is checked by :func:`i2i.preflight.check_training` once the images are
    scanned, before the networks are built."""
    from . import nets
    from .losses import GAN_LOSSES
    from .nets.layers import INITS, NORMS

    def check(ok: bool, message: str):
        if not ok:
            raise UsageError(message)

    check(cfg.direction in ("AtoB", "BtoA"), f"--direction must be AtoB or BtoA, not {cfg.direction!r}")
    kind_g, kind_d = NET_KINDS.get(cfg.mode, ("generator", "discriminator"))
    check(cfg.net_g in nets.names(kind_g), f"--net-g {cfg.net_g!r} does not suit --mode {cfg.mode}; choose from {', '.join(nets.names(kind_g))}")
    check(cfg.net_d in nets.names(kind_d), f"--net-d {cfg.net_d!r} does not suit --mode {cfg.mode}; choose from {', '.join(nets.names(kind_d))}")
    check(cfg.norm in NORMS, f"--norm must be one of {', '.join(NORMS)}")
    check(cfg.norm_d in (None, *NORMS), f"--norm-d must be one of {', '.join(NORMS)}")
    check(cfg.optimizer in ("adam", "rmsprop"), "optimizer must be adam or rmsprop")
    check(cfg.n_critic >= 1, "--n-critic must be at least 1")
    check(cfg.clip > 0, "--clip must be positive")
    check(cfg.pool_size >= 0, "--pool-size must be 0 or more")
    check(cfg.lambda_cycle >= 0 and cfg.lambda_identity >= 0 and cfg.lambda_l1 >= 0, "loss weights must be >= 0")
    if cfg.mode in ("cycle", "dual"):
        check(cfg.b is not None, f"--mode {cfg.mode} needs two folders: --a DOMAIN_A/ --b DOMAIN_B/")
    if cfg.mode == "cycle" and cfg.lambda_identity > 0:
        check(cfg.input_nc == cfg.output_nc,
              f"the identity loss needs as many input as output channels ({cfg.input_nc} vs {cfg.output_nc}); "
              "add --lambda-identity 0")
    check(cfg.init in INITS, f"--init must be one of {', '.join(INITS)}")
    check(cfg.gan_loss in GAN_LOSSES, f"--gan-loss must be one of {', '.join(GAN_LOSSES)}")
    check(cfg.preprocess in PREPROCESS, f"--preprocess must be one of {', '.join(PREPROCESS)}")
    check(cfg.batch_size >= 1, "--batch-size must be at least 1")
    check(cfg.load_size >= 1, "--load-size must be at least 1")
    check(cfg.crop_size >= 1, "--crop-size must be at least 1")
    check(cfg.ngf >= 1, "--ngf must be at least 1")
    check(cfg.ndf >= 1, "--ndf must be at least 1")
    check(cfg.n_layers_d >= 1, "--n-layers-d must be at least 1")
    from .data.images import DEFAULT_MAX_PIXELS

    limit = cfg.max_pixels or DEFAULT_MAX_PIXELS
    for option, side in (("--load-size", cfg.load_size if cfg.preprocess == "resize_and_crop" else 0),
                         ("--crop-size", cfg.crop_size if "crop" in cfg.preprocess else 0)):
        check(side * side <= limit, f"{option} {side} makes {side}x{side} training images, {side * side:,} pixels, over "
              f"the limit of {limit:,}; choose a smaller {option} (or raise --max-pixels)")
    check(cfg.workers >= 0, "--workers must be 0 or more")
    check(0 <= cfg.beta1 < 1, "--beta1 must be at least 0 and below 1")
    check(0 <= cfg.beta2 < 1, "beta2 must be at least 0 and below 1")
    check(cfg.epochs >= 0 and cfg.epochs_decay >= 0 and cfg.epochs + cfg.epochs_decay > 0,
          "--epochs and --epochs-decay must be >= 0 with at least one epoch in total")
    check(cfg.lr > 0, "--lr must be positive")
    check(cfg.max_steps is None or cfg.max_steps >= 1, "--max-steps must be at least 1")
    check(cfg.save_every >= 1 and cfg.sample_every >= 1 and cfg.log_every >= 1,
          "--save-every, --sample-every and --log-every must be at least 1")
    check(cfg.input_nc in (1, 3) and cfg.output_nc in (1, 3), "--input-nc and --output-nc must be 1 or 3")
    check_run_name(cfg.name)
    if cfg.preprocess in ("resize_and_crop", "scale_width_and_crop"):
        check(cfg.crop_size <= cfg.load_size, f"--crop-size {cfg.crop_size} is larger than --load-size {cfg.load_size}")
    check(cfg.likelihood in ("gaussian", "bernoulli"), "--likelihood must be gaussian or bernoulli")
    check(cfg.sigma > 0 and cfg.beta >= 0, "--sigma must be positive and --beta at least 0")
    check(not cfg.diff_augment or cfg.mode == "gan", f"--diff-augment is for --mode gan, not {cfg.mode}")
    check(cfg.b is None or cfg.mode in ("pix2pix", "cycle", "dual"),
          f"--b is for the translation modes (pix2pix, cycle, dual); --mode {cfg.mode} learns from one folder, "
          "--a: drop --b")
    check(0 <= cfg.holdout < 1, "--holdout must be at least 0 and below 1")
    check(0 <= cfg.val_fraction < 1, "--val-fraction must be at least 0 and below 1")
    check(not (cfg.val and cfg.val_fraction), "give --val or --val-fraction, not both")
    check(cfg.val_every is None or cfg.val_every >= 1, "--val-every must be at least 1")
    if cfg.val or cfg.val_fraction or cfg.val_every:
        check(cfg.mode in ("pix2pix", "cycle", "dual"), f"--val options score translation runs, not {cfg.mode} runs "
              "(vae runs report held-out bits per dim with --holdout)")
        check(bool(cfg.val or cfg.val_fraction), "--val-every needs held-out images: --val DIR or --val-fraction F")
    if cfg.mode in ("gan", "vae", "vaegan"):
        from .nets.dcgan import IMAGE_SIZES

        check(cfg.image_size in IMAGE_SIZES, f"--image-size must be one of {', '.join(map(str, IMAGE_SIZES))}")
        check(cfg.z_dim >= 1, "--z-dim must be at least 1")
    elif "crop" in cfg.preprocess:
        multiple = generator_multiple(cfg.net_g)
        check(cfg.crop_size % multiple == 0,
              f"--crop-size {cfg.crop_size} does not suit --net-g {cfg.net_g}, which needs a multiple of {multiple}")


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
