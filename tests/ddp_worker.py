"""Two DDP processes (gloo) forked from the test process by ``test_ddp.py``: training steps in float64.

float64 because this from-scratch network at initialization amplifies rounding noise: in float32 even one
process run with 1 vs 2 threads gives updates a few % apart, which would hide a real DDP error. In float64
the same noise stays ~1e-10, so an equivalence check at 1e-7 is meaningful.

Each process gets the environment ``torchrun`` would give it (RANK / WORLD_SIZE / LOCAL_RANK / MASTER_*), so
the trainer joins the process group exactly as under ``torchrun``; forking instead of starting new
interpreters saves re-importing torch and mtnet in every process (seconds each on a 2-core CI machine).
``torchrun`` itself is exercised by the ``--devices`` test.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import torch

from mtnet.config import load_config
from mtnet.engine import distributed
from mtnet.engine.trainer import Trainer

OVERRIDES = [
    "data.imgsz=64", "data.synthetic.image_size=64", "data.synthetic.num_train=8", "data.synthetic.num_val=2",
    "model.width=0.35", "model.neck_channels=16", "model.head_channels=16", "model.seg_channels=16",
    "model.tasks=[seg]", "data.augment.hflip=0", "data.augment.scale=[1,1]", "data.augment.color=0",
    "train.optimizer=sgd", "train.base_lr=6.4", "train.warmup_epochs=0", "train.ema_decay=0",
    "train.epochs=1", "train.device=cpu",
]


class Float64Trainer(Trainer):
    """The real trainer with float64 inputs (the model is float64 via the default dtype)."""

    def images(self, batch: dict) -> torch.Tensor:
        return super().images(batch).double()


def config(root: Path, out: Path, name: str, *extra: str):
    return load_config("quickstart", [*OVERRIDES, f"data.root={root}", f"output_dir={out}", f"name={name}", *extra])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ddp(root: Path, out: Path) -> None:
    """The DDP runs of ``test_ddp.py`` in 2 forked processes; raises if either fails."""
    torch.multiprocessing.start_processes(_rank_main, args=(root, out, free_port()), nprocs=2, start_method="fork")


def _rank_main(rank: int, root: Path, out: Path, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    # SyncBN on, 2 x B=2, one step; then SyncBN off, 2 x B=1, one step
    Float64Trainer(config(root, out, "ddp_sync", "train.batch_size=2", "train.stop_after_steps=1"),
                   progress=False).fit()
    Float64Trainer(config(root, out, "ddp_local", "train.batch_size=1", "train.sync_bn=false",
                          "train.stop_after_steps=1"), progress=False).fit()
    # resume the SyncBN run mid-epoch for a second step (keep the step-1 checkpoint for the comparison)
    if rank == 0:
        shutil.copy(out / "ddp_sync" / "last.pt", out / "ddp_sync_step1.pt")
    distributed.barrier()
    Float64Trainer(config(root, out, "ddp_sync", "train.batch_size=2", "train.stop_after_steps=2"),
                   resume=True, progress=False).fit()
    distributed.cleanup()
