"""Atomic checkpoints (write temp, fsync, rename); reading them is ``mtnet.checkpoint_io``.

``last.pt`` holds everything needed to resume exactly (model, EMA, optimizer, scheduler, loss balancer,
position in the epoch, RNG state, config); ``best.pt`` holds the EMA weights as ``model`` plus config,
data-set metadata and metrics: what inference and export need, nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..checkpoint_io import FORMAT, CheckpointError, load_checkpoint
from ..fileio import atomic_write

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` with the mtnet header to ``path`` atomically (readers never see a partial file)."""
    atomic_write(path, lambda tmp: torch.save({"format": FORMAT, "version": 1, **state}, tmp))
