"""Training configuration: one flat dataclass, per-mode defaults, and a JSON round trip.

The config written to a run's ``config.json`` holds everything needed to rebuild the networks and
continue training, so no command ever asks the user to repeat an architecture flag.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
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
    init: str = "normal"
    init_gain: float = 0.02
    dropout: bool = True
    input_nc: int = 3
    output_nc: int = 3
    # losses
    gan_loss: str = "vanilla"
    lambda_l1: float = 100.0
    # optimisation
    epochs: int = 100
    epochs_decay: int = 100
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    # data
    load_size: int = 286
    crop_size: int = 256
    preprocess: str = "resize_and_crop"
    flip: bool = True
    workers: int = 2
    # run control
    seed: int | None = None
    max_steps: int | None = None
    save_every: int = 1000
    sample_every: int = 200
    log_every: int = 10
    extra: dict = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return Path(self.checkpoints_dir) / self.name

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


# What each mode changes from the dataclass defaults (the pix2pix paper's and reference's settings).
MODE_DEFAULTS: dict[str, dict] = {
    "pix2pix": {},
}


def make_config(mode: str, **options) -> TrainConfig:
    """Config for ``mode``: the dataclass defaults, then the mode's defaults, then ``options``
    (entries that are None mean "not given" and keep the default)."""
    if mode not in MODES:
        raise UsageError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    given = {k: v for k, v in options.items() if v is not None}
    cfg = TrainConfig.from_dict({**MODE_DEFAULTS.get(mode, {}), **given, "mode": mode})
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Reject option values and combinations that cannot work, before any work is done."""
    from . import nets
    from .nets.layers import INITS, NORMS

    def check(ok: bool, message: str):
        if not ok:
            raise UsageError(message)

    check(cfg.direction in ("AtoB", "BtoA"), f"--direction must be AtoB or BtoA, not {cfg.direction!r}")
    check(cfg.net_g in nets.names("generator"), f"--net-g {cfg.net_g!r} is unknown; choose from {', '.join(nets.names('generator'))}")
    check(cfg.net_d in nets.names("discriminator"), f"--net-d {cfg.net_d!r} is unknown; choose from {', '.join(nets.names('discriminator'))}")
    check(cfg.norm in NORMS, f"--norm must be one of {', '.join(NORMS)}")
    check(cfg.init in INITS, f"--init must be one of {', '.join(INITS)}")
    from .losses import GAN_LOSSES

    check(cfg.gan_loss in GAN_LOSSES, f"--gan-loss must be one of {', '.join(GAN_LOSSES)}")
    check(cfg.preprocess in PREPROCESS, f"--preprocess must be one of {', '.join(PREPROCESS)}")
    check(cfg.batch_size >= 1, "--batch-size must be at least 1")
    check(cfg.epochs >= 0 and cfg.epochs_decay >= 0 and cfg.epochs + cfg.epochs_decay > 0,
          "--epochs and --epochs-decay must be >= 0 with at least one epoch in total")
    check(cfg.lr > 0, "--lr must be positive")
    check(cfg.max_steps is None or cfg.max_steps >= 1, "--max-steps must be at least 1")
    check(cfg.save_every >= 1, "--save-every must be at least 1")
    check(cfg.input_nc in (1, 3) and cfg.output_nc in (1, 3), "--input-nc and --output-nc must be 1 or 3")
    check(bool(cfg.name) and "/" not in cfg.name and not cfg.name.startswith("."),
          "--name must be a plain folder name such as facades_label2photo")
    if cfg.preprocess in ("resize_and_crop", "scale_width_and_crop"):
        check(cfg.crop_size <= cfg.load_size, f"--crop-size {cfg.crop_size} is larger than --load-size {cfg.load_size}")
    if "crop" in cfg.preprocess:
        multiple = generator_multiple(cfg.net_g)
        check(cfg.crop_size % multiple == 0,
              f"--crop-size {cfg.crop_size} does not suit --net-g {cfg.net_g}, which needs a multiple of {multiple}")


def generator_multiple(net_g: str, **kwargs) -> int:
    """The number that a generator's input height and width must be a multiple of."""
    from . import nets

    net = nets.create(net_g, init=None, ngf=1, **kwargs)
    return net.size_multiple
