"""Several processes training one model: torch.distributed as launched by ``torchrun``.

``torchrun --nproc_per_node=N -m i2i train ...`` starts N copies of the command with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` set; :func:`World.from_env` reads them and a
single process is simply a world of one. Each process trains on its own slice of every epoch (see
``EpochSampler``) and, after every backward pass, the gradients of the parameters about to be
updated are averaged over all processes before the optimiser steps, so every rank applies the same
update to the same weights.

Why averaging by hand rather than wrapping each net in ``DistributedDataParallel``: DDP syncs through
hooks on ``forward()``, and two recipes do not go through it: the VAE calls ``encode``/``decode``
(DDP would sync nothing) and VAE-GAN takes its gradients from ``torch.autograd.grad``, which DDP
does not support. One all-reduce of the flattened gradients per optimiser step is the same
arithmetic for every recipe, so the step code is the same in one process and in many; what it gives
up is DDP's overlap of communication with the backward pass, which matters on GPUs only.

Batch-norm running statistics are broadcast from rank 0 before every save (DDP's
``broadcast_buffers`` does it at every step; training uses batch statistics, so only what is saved
depends on them), so checkpoints hold rank 0's, as DDP's would; on CUDA, batch norm becomes
``SyncBatchNorm`` so the batch statistics themselves span the global batch.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)

# torch is imported inside the functions: the CLI reads World.from_env() before it needs torch


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run (a world of one when not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @classmethod
    def from_env(cls) -> "World":
        """The world ``torchrun`` (or any launcher setting its variables, e.g. SLURM scripts) describes."""
        env = os.environ
        if int(env.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        size = int(env["WORLD_SIZE"])
        return cls(rank=int(env.get("RANK", "0")), size=size, local_rank=int(env.get("LOCAL_RANK", "0")),
                   local_size=int(env.get("LOCAL_WORLD_SIZE", str(size))))

    @property
    def enabled(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that logs, writes samples and saves checkpoints."""
        return self.rank == 0

    def start(self, device) -> None:
        """Join the process group; a no-op for one process. On CUDA, NCCL carries the CUDA tensors
        (gradients, weights) and gloo the few CPU-side numbers (losses to log, the stop flag, the
        weight digests), which NCCL cannot take; elsewhere gloo carries everything."""
        import torch.distributed as dist

        if not self.enabled or dist.is_initialized():
            return
        backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=60),
                                device_id=device if device.type == "cuda" else None)
        log.debug("rank %d of %d joined the %s process group", self.rank, self.size, backend)

    def stop(self) -> None:
        import torch.distributed as dist

        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.enabled:
            dist.barrier()

    def average_gradients(self, params) -> None:
        """Replace each parameter's gradient by its mean over the ranks (one flattened all-reduce)."""
        if not self.enabled:
            return
        import torch
        import torch.distributed as dist

        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast_state(self, nets, buffers_only: bool = False) -> None:
        """Copy rank 0's buffers (and parameters, unless ``buffers_only``) to every rank."""
        if not self.enabled:
            return
        import torch.distributed as dist

        for net in nets:
            for t in [*([] if buffers_only else net.parameters()), *net.buffers()]:
                dist.broadcast(t.data, src=0)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The per-rank numbers in ``values`` averaged over the ranks (same keys on every rank)."""
        if not self.enabled or not values:
            return values
        import torch
        import torch.distributed as dist

        t = torch.tensor(list(values.values()), dtype=torch.float64)
        dist.all_reduce(t)
        return dict(zip(values, (t / self.size).tolist()))

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any (e.g. one rank got Ctrl-C)."""
        if not self.enabled:
            return flag
        import torch
        import torch.distributed as dist

        t = torch.tensor([int(flag)])
        dist.all_reduce(t)
        return bool(t.item())

    def gather(self, obj) -> list:
        """``obj`` from every rank, in rank order (on every rank)."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.size
        dist.all_gather_object(out, obj)
        return out


def state_digest(nets) -> str:
    """SHA-256 of every parameter and buffer of ``nets``, by name: equal digests mean equal weights."""
    import torch

    h = hashlib.sha256()
    for name in sorted(nets):
        for key, t in sorted(nets[name].state_dict().items()):
            h.update(f"{name}.{key}".encode())
            h.update(t.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def use_sync_batchnorm(nets) -> int:
    """Turn every batch norm in ``nets`` (name -> module) into SyncBatchNorm in place (same parameters,
    same state-dict keys); returns how many were converted. Only for CUDA runs of several processes."""
    import torch

    batch_norm = torch.nn.modules.batchnorm._BatchNorm
    converted = 0
    for net in nets.values():
        if isinstance(net, batch_norm):
            raise ValueError("a bare batch-norm layer cannot be converted in place")
        converted += sum(isinstance(m, batch_norm) and not isinstance(m, torch.nn.SyncBatchNorm) for m in net.modules())
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)  # replaces the children in place
    return converted
