"""What every recipe shares: the adversarial training step, written once, and small builders.

A step runs the generators once, then updates the discriminators on real vs. (detached) fake
``n_critic`` times and the generators once with the discriminators frozen. pix2pix updates D first,
CycleGAN G first (as the reference does); a recipe says which with ``d_first``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .. import nets
from ..config import generator_multiple
from ..data.transforms import Augment
from ..distributed import World
from ..errors import UsageError


def adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fused kernel: the same update as the reference's Adam, about 10x faster on CPU
    (0.03 s against 0.28 s per step for unet_256's 54M parameters on this project's machines)."""
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):  # a device or dtype without a fused kernel
        return torch.optim.Adam(params, lr=lr, betas=betas)


def set_requires_grad(nets, flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def generator_spec(cfg, in_channels: int, out_channels: int) -> dict:
    """``nets.create`` arguments for a generator of this config (also stored with its weights)."""
    return {"name": cfg.net_g, "in_channels": in_channels, "out_channels": out_channels,
            "ngf": cfg.ngf, "norm": cfg.norm, "dropout": cfg.dropout}


def build_generator(cfg, spec: dict, device) -> nn.Module:
    return nets.create(**spec, init=cfg.init, init_gain=cfg.init_gain).to(device)


def build_discriminator(cfg, in_channels: int, device) -> nn.Module:
    return nets.create(cfg.net_d, in_channels=in_channels, ndf=cfg.ndf, n_layers=cfg.n_layers_d,
                       norm=cfg.norm_d or cfg.norm, init=cfg.init, init_gain=cfg.init_gain).to(device)


def build_image_critic(cfg, device) -> nn.Module:
    """The one-score-per-image discriminator of the GAN and VAE-GAN modes (label-conditional when the
    data has classes)."""
    return nets.create(cfg.net_d, in_channels=cfg.output_nc, image_size=cfg.image_size, ndf=cfg.ndf,
                       n_classes=len(cfg.classes or []), norm=cfg.norm_d or cfg.norm, init=cfg.init,
                       init_gain=cfg.init_gain).to(device)


def augment(cfg) -> Augment:
    return Augment(cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip, generator_multiple(cfg.net_g))


# config fields that every recipe reads: the data, the run, the optimiser, the generator and where it runs
COMMON_OPTIONS = frozenset({
    "a", "name", "checkpoints_dir", "net_g", "ngf", "norm", "init", "init_gain", "output_nc", "epochs", "epochs_decay",
    "batch_size", "lr", "beta1", "beta2", "flip", "workers", "strict", "report", "max_pixels", "seed", "max_steps",
    "steps", "minutes", "save_every", "sample_every", "log_every", "device", "precision", "threads", "compile",
})
# and those of the image-to-image recipes (a folder of inputs, crops, a PatchGAN, validation)
TRANSLATION_OPTIONS = COMMON_OPTIONS | frozenset({
    "direction", "input_nc", "dropout", "load_size", "crop_size", "preprocess", "net_d", "n_layers_d", "ndf",
    "norm_d", "gan_loss", "n_critic", "clip",
})
VALIDATION_OPTIONS = frozenset({"val", "val_fraction", "val_every", "best_metric"})


class Mode:
    """A training recipe: what it is (class attributes, read before anything is built) and how it
    trains (an instance holds its networks and optimisers).

    The contract of a recipe class:

    - ``name``: its ``--mode``; ``title``: a few words for ``--help``.
    - ``task``: "paired" (A and B images of the same scene), "unpaired" (two folders) or "folder"
      (one folder of images, generated from noise: ``i2i sample`` uses the run, not translate).
    - ``defaults``: what it changes from :class:`~i2i.config.TrainConfig`'s defaults;
      ``loss_presets``: further defaults for one ``--gan-loss`` (e.g. DualGAN's two recipes).
    - ``reads``: the config fields it reads. A field it does not read is refused when given
      (:func:`i2i.modes.refuse_unread`), never silently ignored. ``notes``: field -> what the field
      means for this recipe, added to that option's help.
    - ``net_kinds``: the registry kinds (:func:`i2i.nets.register`) its ``--net-g`` and ``--net-d``
      must be (None: it has no discriminator).
    - ``default_metric``: the validation score that picks ``RUN/best`` (None: it cannot be validated;
      it then does not read the ``--val`` options); ``validation_metrics``: the scores its
      validation gives, which ``--best-metric`` may name.
    - ``sample_columns``: what each row of its sample grid shows, left to right.
    - :meth:`check`: its own checks of a config (after the common ones).

    An instance sets ``nets`` (name -> module, all saved in checkpoints), ``optimizers``,
    ``translators`` (direction -> generator name, what ``i2i translate`` may use) and ``specs``
    (name of each net that commands load -> ``nets.create`` arguments), and implements
    ``make_dataset``, ``train_step`` and ``sample_rows``. ``runtime`` (device, precision; see
    :mod:`i2i.runtime`) and ``world`` (the processes training together; see
    :mod:`i2i.distributed`) are given to the constructor.
    """

    name: str = ""
    title: str = ""
    task: str = "paired"
    defaults: dict = {}
    loss_presets: dict[str, dict] = {}
    reads: frozenset[str] = COMMON_OPTIONS
    notes: dict[str, str] = {}
    net_kinds: tuple[str, str | None] = ("generator", "discriminator")
    default_metric: str | None = None
    validation_metrics: tuple[str, ...] = ()
    sample_columns: tuple[str, ...] = ("input", "output", "target")

    nets: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    translators: dict[str, str]
    specs: dict[str, dict]

    def __init__(self, cfg, device="cpu", *, runtime=None, world=None):
        from ..runtime import Runtime

        self.cfg = cfg
        self.runtime = runtime if runtime is not None else Runtime(torch.device(device))
        self.device = self.runtime.device
        # context for forward passes and losses (backward runs outside it): bf16 autocast on the fast path
        self.autocast = self.runtime.autocast
        self.world = world if world is not None else World()

    def use_runtime(self, runtime) -> None:
        """Run on ``runtime`` instead of the one given to the constructor (before any training step:
        the networks are then prepared for it, see :meth:`i2i.runtime.Runtime.prepare_mode`)."""
        self.runtime, self.device, self.autocast = runtime, runtime.device, runtime.autocast

    @classmethod
    def check(cls, cfg) -> None:
        """Raise :class:`~i2i.errors.UsageError` for a config this recipe cannot train (called after
        :func:`i2i.config.check_common`). The base checks the network kinds and the task's needs."""
        from .. import nets

        def check(ok: bool, message: str):
            if not ok:
                raise UsageError(message)

        if cfg.best_metric is not None and cls.validation_metrics:
            check(cfg.best_metric in cls.validation_metrics, f"--best-metric {cfg.best_metric}: not a validation "
                  f"score of --mode {cls.name}; choose from {', '.join(cls.validation_metrics)}")
        kind_g, kind_d = cls.net_kinds
        check(cfg.net_g in nets.names(kind_g),
              f"--net-g {cfg.net_g!r} does not suit --mode {cls.name}; choose from {', '.join(nets.names(kind_g))}")
        if kind_d is not None:
            check(cfg.net_d in nets.names(kind_d), f"--net-d {cfg.net_d!r} does not suit --mode {cls.name}; "
                  f"choose from {', '.join(nets.names(kind_d))}")
        if cls.task == "unpaired":
            check(cfg.b is not None, f"--mode {cls.name} needs two folders: --a DOMAIN_A/ --b DOMAIN_B/")
        if cls.task == "folder":
            from ..nets.dcgan import IMAGE_SIZES

            check(cfg.image_size in IMAGE_SIZES, f"--image-size must be one of {', '.join(map(str, IMAGE_SIZES))}")
            check(cfg.z_dim >= 1, "--z-dim must be at least 1")
        elif "crop" in cfg.preprocess:
            multiple = generator_multiple(cfg.net_g)
            check(cfg.crop_size % multiple == 0,
                  f"--crop-size {cfg.crop_size} does not suit --net-g {cfg.net_g}, which needs a multiple of {multiple}")

    @staticmethod
    def make_dataset(cfg) -> torch.utils.data.Dataset:
        raise NotImplementedError

    @staticmethod
    def set_epoch(cfg, dataset, decaying: bool) -> None:
        """Called with the training dataset before each epoch, ``decaying`` when the epoch starts in
        the learning rate's decay (:meth:`i2i.schedule.Schedule.decaying`): a recipe whose data
        change during training changes them here (CUT). The base changes nothing."""

    def train_step(self, batch: dict) -> tuple[dict, dict]:
        """One optimisation step; returns (losses as detached tensors, outputs for sample_rows)."""
        raise NotImplementedError

    def sample_rows(self, batch: dict, out: dict) -> list[list[torch.Tensor]]:
        """Images for the periodic sample grid: one row per example, ``sample_columns`` left to right."""
        raise NotImplementedError

    def optimizer_step(self, name: str) -> None:
        """Update with optimiser ``name``: its gradients are first averaged over the ranks of a
        distributed run, so every rank applies the same update."""
        opt = self.optimizers[name]
        self.world.average_gradients(p for group in opt.param_groups for p in group["params"])
        opt.step()

    def evaluate(self) -> dict[str, float]:
        """Metrics on held-out data, logged at the start, after every epoch and at the end ({}: none)."""
        return {}

    def extra_state(self) -> dict:
        """Training state beyond nets and optimizers (image pools), saved for resume."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def train(self, flag: bool = True) -> None:
        for net in self.nets.values():
            net.train(flag)


def clip_weights(critics, clip: float) -> None:
    """Clip every weight of ``critics`` to [-clip, clip]: the WGAN critic's Lipschitz constraint
    (Arjovsky et al. 2017), after each of its updates under ``--gan-loss wgan``."""
    with torch.no_grad():
        for critic in critics:
            for p in critic.parameters():
                p.clamp_(-clip, clip)


class AdversarialMode(Mode):
    """Base class of GAN recipes: ``train_step`` is the shared adversarial step.

    Besides what :class:`Mode` asks, subclasses set ``optimizers`` "G" and "D" and ``discriminators``
    (the modules frozen during the G step), and implement ``forward``, ``d_loss`` and ``g_loss``.
    """

    d_first = True  # update D before G (pix2pix) or after (CycleGAN)
    reads = TRANSLATION_OPTIONS
    discriminators: list[nn.Module]

    def __init__(self, cfg, device="cpu", *, runtime=None, world=None):
        super().__init__(cfg, device, runtime=runtime, world=world)
        self.n_critic = cfg.n_critic  # D updates per G update

    def forward(self, batch: dict) -> dict:
        """Generator outputs for a batch (kept for both updates)."""
        raise NotImplementedError

    def d_loss(self, batch: dict, out: dict) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def g_loss(self, batch: dict, out: dict) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def after_d_step(self) -> None:
        """Called after every discriminator update: under ``--gan-loss wgan`` the critics' weights
        are clipped to ``--clip``, whatever the recipe."""
        if self.cfg.gan_loss == "wgan":
            clip_weights(self.discriminators, self.cfg.clip)

    def _update_d(self, batch, out) -> dict:
        set_requires_grad(self.discriminators, True)
        for _ in range(self.n_critic):
            self.optimizers["D"].zero_grad(set_to_none=True)
            with self.autocast():
                loss, parts = self.d_loss(batch, out)
            loss.backward()
            self.optimizer_step("D")
            self.after_d_step()
        return {"D": loss.detach(), **parts}

    def _update_g(self, batch, out) -> dict:
        set_requires_grad(self.discriminators, False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        with self.autocast():
            loss, parts = self.g_loss(batch, out)
        loss.backward()
        self.optimizer_step("G")
        set_requires_grad(self.discriminators, True)
        return {"G": loss.detach(), **parts}

    def train_step(self, batch: dict) -> tuple[dict, dict]:
        """One training step; returns (losses as detached tensors, generator outputs)."""
        batch = self.to_device(batch)
        with self.autocast():
            out = self.forward(batch)
        if self.d_first:
            losses = {**self._update_d(batch, out), **self._update_g(batch, out)}
        else:
            losses = {**self._update_g(batch, out), **self._update_d(batch, out)}
        return losses, {k: v.detach() for k, v in out.items()}
