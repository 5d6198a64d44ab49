"""``torch.distributed`` glue for ``torchrun``: process-group setup, rank helpers, the ``--devices`` launcher.

The engine is PyTorch's own: ``torchrun`` starts one process per device and sets RANK / WORLD_SIZE /
LOCAL_RANK; this module only reads them, picks NCCL on GPUs and gloo on CPU, and offers the few
collectives the trainer needs. With one process nothing here talks to ``torch.distributed``.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import UserError

# Evaluation runs on rank 0 while the others wait in a barrier: allow it to take a while.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


class DistributedError(UserError, RuntimeError):
    """The process group cannot be set up as asked (e.g. more processes than GPUs)."""


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_context() -> DistContext:
    """Rank and world size as set by ``torchrun`` (one process when unset)."""
    return DistContext(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                       int(os.environ.get("LOCAL_RANK", 0)))


def setup(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group started by ``torchrun`` (idempotent) and pin this process to its GPU.

    Returns the context and the device this process trains on (``cuda:LOCAL_RANK`` on GPUs)."""
    ctx = env_context()
    if not ctx.enabled:
        return ctx, device
    if device.type == "cuda":
        if ctx.local_rank >= torch.cuda.device_count():
            raise DistributedError(f"local rank {ctx.local_rank} has no GPU ({torch.cuda.device_count()} visible): "
                                   "use --nproc_per_node <= the number of GPUs")
        torch.cuda.set_device(ctx.local_rank)
        device = torch.device("cuda", ctx.local_rank)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT,
                                device_id=device if device.type == "cuda" else None)
    return ctx, device


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """In-place sum over processes (no-op with one process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


def all_true(flag: bool, device: torch.device) -> bool:
    """True only if ``flag`` holds on every process: collective decisions (skip a non-finite step)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0)


def average_gradients(params) -> None:
    """Average the gradients of parameters DDP does not own (the loss balancer's learned weights)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def launch(nproc: int, argv: list[str]) -> int:
    """``mtnet train ... --devices N``: re-run the same command under ``torchrun`` with N local processes."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "mtnet", *argv]
    return subprocess.call(cmd)
