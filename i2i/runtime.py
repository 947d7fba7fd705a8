"""Where and how fast to run: device, precision, threads, and the fast layers that go with them.

``--precision auto`` picks the fastest path that stays close to fp32 on the device at hand:

- a CUDA GPU with bf16, or a CPU that computes bf16 natively (AMX or AVX512-BF16): bf16 (autocast
  for training, bf16 weights for inference), channels_last, and the fast layers (instance norm,
  and the bottleneck convolutions as matrix products);
- any other CPU (AVX2, where bf16 is emulated and measured hundreds of times slower): fp32 with the
  fast layers (a pix2pix step 1.17x faster, through the bottleneck's matrix products), and for
  inference stride-1 convolutions through NNPACK (Winograd and FFT kernels): 1.7x the images per
  second for resnet_9blocks here;
- MPS: fp32.

On a CPU with native bf16, bf16 is the first choice, not the last word: :mod:`i2i.autoprecision`
measures the workload both ways (its networks, at its shape) and keeps bf16 unless fp32 is clearly
faster, cached per machine.

``--precision fp32`` is the plain path, bit for bit what i2i computes without this module (and what
the reference computes); ``--precision bf16`` forces bf16 even where it is emulated.

Which precision a network computes in is decided once, when it is prepared (:meth:`Runtime.prepare`);
what it is fed is then read off the network itself (:func:`input_dtype`), so a network prepared for
training (fp32 weights, bf16 autocast) and one prepared for inference (bf16 weights) each get inputs
they accept, whatever the runtime that later calls them says.

``I2I_CPU_BF16=1`` (or ``0``) makes i2i treat this CPU as one with (or without) native bf16, so
``--precision auto`` and the test suite take the other kind of machine's path here.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from dataclasses import dataclass, replace
from functools import lru_cache

import torch
import torch.nn as nn

from .distributed import World
from .errors import UsageError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic in hardware (AMX or AVX512-BF16), read from /proc/cpuinfo;
    the environment variable ``I2I_CPU_BF16`` (``1`` or ``0``) overrides what the CPU says."""
    forced = os.environ.get("I2I_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return bool({"amx_bf16", "avx512_bf16"} & cpu_info()[1])


@lru_cache(maxsize=None)
def cpu_info() -> tuple[str, frozenset[str]]:
    """This CPU's model name and instruction-set flags, from the first processor of /proc/cpuinfo
    (``("", frozenset())`` where there is none to read, as on macOS or Windows)."""
    model, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = frozenset(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return model, flags


def pick_device(name: str = "auto") -> torch.device:
    if name not in DEVICES:
        raise UsageError(f"--device must be one of {', '.join(DEVICES)}, not {name!r}")
    cuda, mps = torch.cuda.is_available(), hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise UsageError(f"--device {name}: no {name.upper()} device is available here; use --device cpu")
    return torch.device(name)


def busy_cpus(samples: int = 5) -> int:
    """Runnable tasks besides this process right now: the median of a few snapshots of the running
    count in /proc/loadavg (the 1-minute load average would still count work that just ended)."""
    counts = []
    for _ in range(samples):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):
            try:
                return round(os.getloadavg()[0])
            except (OSError, AttributeError):
                return 0
        time.sleep(0.01)
    return sorted(counts)[len(counts) // 2]


def pick_threads(requested: int | None = None) -> int:
    """Compute threads for this process: ``requested``, or the CPUs not already busy.

    On a 2-core machine shared with another CPU-bound process, one thread ran a CycleGAN step 3.6x
    faster than two (the threads wait on each other while one is descheduled), so auto mode leaves
    out the CPUs that other running tasks occupy.
    """
    if requested is not None:
        if requested < 1:
            raise UsageError(f"--threads must be at least 1, not {requested}")
        return requested
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    local = World.from_env().local_size
    if local > 1:  # torchrun: the processes of this machine share its CPUs (and keep each other busy)
        return max(1, cpus // local)
    return max(1, min(cpus, cpus - busy_cpus()))


def input_dtype(net: nn.Module) -> torch.dtype:
    """The dtype to feed ``net``: that of its first floating-point parameter or buffer (float32 for a
    network with none). The one place that decides it: a network holds bf16 weights only when
    :meth:`Runtime.prepare` made it an inference network in bf16, and a training network keeps fp32
    weights (autocast computes in bf16 inside), so its inputs are fp32 whatever the runtime says."""
    for t in itertools.chain(net.parameters(), net.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


@dataclass(frozen=True)
class Runtime:
    """How a command runs: where, in what precision, and with which speed levers."""

    device: torch.device
    dtype: torch.dtype = torch.float32  # compute precision
    channels_last: bool = False
    fast_layers: bool = False  # FastInstanceNorm2d (see nets/fast_layers.py)
    nnpack: bool = False  # NNPACK convolutions (inference on CPU only)
    compile: bool = False
    threads: int | None = None
    # chosen by --precision auto from the CPU's flags alone, to be settled by a measurement of the
    # workload (i2i.autoprecision.settle): bf16 on a CPU with native bf16
    auto: bool = False

    @property
    def bf16(self) -> bool:
        return self.dtype == torch.bfloat16

    def describe(self) -> str:
        parts = [str(self.device), "bf16" if self.bf16 else "fp32"]
        parts += [p for p, on in (("channels_last", self.channels_last), ("nnpack", self.nnpack),
                                  ("compiled", self.compile)) if on]
        if self.threads and self.device.type == "cpu":
            parts.append(f"{self.threads} thread{'s' * (self.threads > 1)}")
        return ", ".join(parts)

    def settled(self) -> Runtime:
        """This runtime, no longer open to :func:`i2i.autoprecision.settle`'s measurement."""
        return replace(self, auto=False)

    def fp32_alternative(self, training: bool) -> Runtime:
        """What ``--precision auto`` runs in fp32 on this CPU: the fast layers, and for inference NNPACK."""
        return replace(self, dtype=torch.float32, channels_last=False, fast_layers=True,
                       nnpack=not training and self.device.type == "cpu", auto=False)

    def prepare(self, net: nn.Module, training: bool) -> nn.Module:
        """Apply the fast path to ``net`` in place (layers, memory format, and for inference the dtype)."""
        if self.fast_layers or self.nnpack:
            from .nets.fast_layers import use_fast_layers

            use_fast_layers(net, nnpack=self.nnpack and not training)
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
            if self.fast_layers:
                from .nets.fast_layers import keep_gemm_weights_contiguous

                keep_gemm_weights_contiguous(net)
        if self.bf16 and not training:
            net.to(torch.bfloat16)
        if self.compile:
            net.compile()  # in place: the state dict keeps its keys
        return net

    def prepare_mode(self, mode) -> None:
        """Apply the fast path to every network of a training mode built with this runtime (whose
        forward passes then run under :meth:`autocast`)."""
        for net in mode.nets.values():
            self.prepare(net, training=True)

    def autocast(self):
        """Context for training forward passes: bf16 autocast on the fast path, else nothing."""
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def resolve(device: str = "auto", precision: str = "auto", threads: int | None = None, compile: bool = False,
            training: bool = False) -> Runtime:
    """The :class:`Runtime` for these options; sets torch's thread count (CPU) and cudnn.benchmark (CUDA)."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    dev = pick_device(device)
    world = World.from_env()
    if dev.type == "cuda" and world.enabled:  # one GPU per process under torchrun
        dev = torch.device("cuda", world.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    if dev.type == "cpu":
        threads = pick_threads(threads)
        torch.set_num_threads(threads)
    elif threads is not None:
        pick_threads(threads)  # validate only
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    measure = False
    if precision == "auto":
        native = (dev.type == "cuda" and torch.cuda.is_bf16_supported()) or (dev.type == "cpu" and cpu_has_native_bf16())
        precision = "bf16" if native else "fp32"
        fast = native or dev.type == "cpu"
        measure = native and dev.type == "cpu"  # bf16 is not faster for every workload there
    else:
        fast = precision == "bf16"
    if precision == "bf16" and dev.type == "cpu" and not cpu_has_native_bf16():
        log.warning("this CPU has no native bf16 (AMX or AVX512-BF16); bf16 runs emulated and much slower "
                    "than fp32 here")
    if precision == "bf16" and dev.type == "mps":
        raise UsageError("--precision bf16 is not supported on MPS; use --precision fp32")
    bf16 = precision == "bf16"
    return Runtime(
        device=dev,
        dtype=torch.bfloat16 if bf16 else torch.float32,
        channels_last=bf16,
        fast_layers=fast,
        nnpack=fast and not bf16 and not training and dev.type == "cpu",
        compile=compile,
        threads=threads if dev.type == "cpu" else None,
        auto=measure,
    )
