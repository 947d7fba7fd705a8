"""What ``--precision auto`` runs a workload in on a CPU with native bf16: whichever of bf16 and fp32
measured faster for that network at that shape on this machine.

Native bf16 (AVX512-BF16, AMX) is not faster for every workload: small images leave the bf16
kernels little work per call to pay for the casts and layout changes around them. On this
project's AVX512-BF16 CPU, pix2pix with unet_128 at 128x128 once trained at 1.98 steps/s in bf16
against 3.05 in fp32, while unet_256 at 256x256 was 1.5x faster in bf16 (since the bottleneck
layers became matrix products, bf16 measures faster in both there: 5.3 against 3.1 steps/s). So on
such a CPU the choice is a measurement of the workload itself, alternating between the two: for
training, whole steps of a copy of the recipe (every network, loss and optimiser step) on random
images of the shape it trains at; for translation, the generator's forward passes. Generators alone
misjudge training: on that CPU unet_128's forward and backward passes tied (0.137 against 0.134 s)
while whole pix2pix steps ran 0.16 s in bf16 and 0.24 s in fp32. bf16 stays unless fp32 is at least
10% faster. The answer is cached per CPU model, torch version, thread count, networks, shape and
recipe options in ``precision.json`` under the cache folder (``$I2I_CACHE_DIR``, else
``$XDG_CACHE_HOME/i2i``, else ``~/.cache/i2i``), so each workload is measured once per machine; the
log says what was chosen and why. Elsewhere auto needs no measurement: CUDA GPUs with bf16 take
bf16, CPUs without native bf16 fp32 (bf16 is emulated there, hundreds of times slower).

Measuring leaves the networks, their weights and torch's and Python's random states untouched.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from .runtime import Runtime, cpu_info, input_dtype

log = logging.getLogger(__name__)

# passes per precision, untimed (warm-up) then timed (medians): (fewest, most, seconds): a phase ends
# after its fewest passes once each precision has spent its seconds in it, at the latest after its
# most. bf16's first passes on the AVX512-BF16 CPU ran up to 2x slower than its later ones (oneDNN
# building kernels, the allocator growing): after one warm-up pass and three timed ones, a fresh
# machine cached fp32 for facades' pix2pix (bf16 0.283 s, fp32 0.188 s per pass), where whole steps
# ran 0.16 s in bf16 and 0.24 s in fp32. Long steps need fewer passes: with 3 + 5 passes for every
# workload the probe took 6 s for that pix2pix, 38 s for CycleGAN at 128 px and 144 s at 256 px; with
# these bounds (1 + 3 passes where a step takes seconds) 4, 25 and 72 s, each choosing bf16
PROBE_WARMUP = (1, 3, 2.0)
PROBE_RUNS = (3, 5, 5.0)
MARGIN = 0.1  # fp32 replaces the flags' choice of bf16 only when at least this much faster


def cache_path() -> Path:
    root = os.environ.get("I2I_CACHE_DIR") or (Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "i2i")
    return Path(root) / "precision.json"


def _key(runtime: Runtime, nets: dict[str, nn.Module], shape: tuple[int, ...], training: bool, step: bool,
         recipe: dict | None = None) -> str:
    parts = {"cpu": cpu_info()[0] or "unknown CPU", "torch": torch.__version__, "threads": runtime.threads,
             "training": training, "shape": list(shape), **({"probe": "step"} if step else {}),
             **({"recipe": recipe} if recipe else {}),
             "nets": {name: [type(net).__name__, sum(p.numel() for p in net.parameters())]
                      for name, net in sorted(nets.items())}}
    return json.dumps(parts, sort_keys=True)


def _read_cache() -> dict:
    try:
        cached = json.loads(cache_path().read_text())
        return cached if isinstance(cached, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, choice: dict) -> None:
    from .io import write_json

    cached = _read_cache()
    cached[key] = choice
    try:
        write_json(cache_path(), cached)
    except OSError as e:  # a read-only home: measure again next time
        log.debug("could not cache the precision choice in %s: %s", cache_path(), e)


def _one_pass(runtime: Runtime, nets: dict[str, nn.Module], shape: tuple[int, ...], training: bool):
    """A callable that runs one pass of every network in ``nets`` (copied, then prepared for
    ``runtime``) on a random ``shape`` input (N, C, H, W; C is each network's own first layer's):
    forward, and for ``training`` backward too, under the runtime's autocast."""
    prepared, inputs = {}, {}
    for name, net in nets.items():
        net = prepared[name] = runtime.prepare(copy.deepcopy(net), training=training).train(training)
        first = next(m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
        x = torch.rand(shape[0], first.in_channels, *shape[2:], device=runtime.device) * 2 - 1
        x = x.to(dtype=torch.float32 if training else input_dtype(net))
        inputs[name] = x.contiguous(memory_format=torch.channels_last) if runtime.channels_last else x

    def one_pass():
        for name, net in prepared.items():
            if training:
                with runtime.autocast():
                    out = net(inputs[name])
                out.float().square().mean().backward()
            else:
                with torch.inference_mode():
                    net(inputs[name])

    return one_pass


def probe_seconds(candidates: dict[str, Runtime], nets: dict[str, nn.Module], shape: tuple[int, ...],
                  training: bool, make_pass: Callable[[Runtime], Callable[[], object]] | None = None
                  ) -> dict[str, float]:
    """Median seconds of one pass for each of ``candidates`` (name -> runtime), over
    :data:`PROBE_RUNS` passes after :data:`PROBE_WARMUP` untimed ones, the candidates' passes
    alternating so that a change in the machine's load falls on all of them alike. A pass is
    ``make_pass(runtime)()`` (training: a whole step of a copy of the recipe, see
    :func:`i2i.train.step_probe`), by default :func:`_one_pass` of copies of ``nets``. Torch's and
    Python's random states are kept."""
    make_pass = make_pass or (lambda rt: _one_pass(rt, nets, shape, training))
    python_state = random.getstate()  # image pools draw from Python's stream
    try:
        with torch.random.fork_rng(devices=[]):  # random inputs and dropout leave torch's random state alone
            passes = {name: make_pass(rt) for name, rt in candidates.items()}
            for fewest, most, seconds in (PROBE_WARMUP, PROBE_RUNS):  # the last phase's times are kept
                spent = dict.fromkeys(passes, 0.0)
                times: dict[str, list[float]] = {name: [] for name in passes}
                for i in range(most):
                    if i >= fewest and min(spent.values()) >= seconds:
                        break
                    for name, one_pass in passes.items():
                        t = time.perf_counter()
                        one_pass()
                        times[name].append(time.perf_counter() - t)
                        spent[name] += times[name][-1]
    finally:
        random.setstate(python_state)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _valid(choice) -> bool:
    """Whether a cache entry is one that :func:`settle` wrote (anything else is measured again)."""
    return (isinstance(choice, dict) and choice.get("precision") in ("bf16", "fp32")
            and isinstance(choice.get("seconds"), dict)
            and all(type(choice["seconds"].get(k)) in (int, float) for k in ("bf16", "fp32")))  # not bool


def settle(runtime: Runtime, nets: dict[str, nn.Module], shape: tuple[int, ...], training: bool,
           make_pass: Callable[[Runtime], Callable[[], object]] | None = None, recipe: dict | None = None) -> Runtime:
    """The runtime to use for ``nets`` on inputs of ``shape``: ``runtime`` itself unless it is the
    CPU bf16 choice of ``--precision auto`` (``runtime.auto``), in which case the faster of it and
    its fp32 alternative, measured (:func:`probe_seconds`, with ``make_pass`` when given; fp32 must
    be :data:`MARGIN` faster) or read from the cache, whose key holds the CPU, torch, threads, shape,
    networks and ``recipe`` (the options that change what a pass computes; JSON values)."""
    if not runtime.auto:
        return runtime
    fp32 = runtime.fp32_alternative(training)
    key = _key(runtime, nets, shape, training, step=make_pass is not None, recipe=recipe)
    choice = _read_cache().get(key)
    if not _valid(choice):
        log.info("precision auto: measuring bf16 against fp32 on %s at %s (the answer is cached)",
                 "whole training steps" if make_pass else "the network", "x".join(map(str, shape)))
        try:
            seconds = probe_seconds({"bf16": runtime, "fp32": fp32}, nets, shape, training, make_pass)
        except (RuntimeError, ValueError) as e:  # a speed measurement never stops the work it is for
            log.warning("precision auto: bf16 (measuring at %s failed: %s)", "x".join(map(str, shape)),
                        str(e).splitlines()[0] if str(e) else type(e).__name__)
            return runtime.settled()
        # bf16 stays unless fp32 is clearly faster: a near tie is noise, and the choice is cached
        choice = {"precision": "fp32" if seconds["fp32"] < (1 - MARGIN) * seconds["bf16"] else "bf16",
                  "seconds": seconds}
        _write_cache(key, choice)
        how = "measured"
    else:
        how = "measured earlier, cached in " + str(cache_path())
    s = choice["seconds"]
    what = f"{'training' if training else 'inference'} of {', '.join(sorted(nets))} at {'x'.join(map(str, shape))}"
    detail = f"bf16 {s['bf16']:.3f} s, fp32 {s['fp32']:.3f} s per pass"
    log.info("precision auto: %s for %s (%s: %s)", choice["precision"], what, how, detail)
    return runtime.settled() if choice["precision"] == "bf16" else fp32
