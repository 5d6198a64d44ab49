"""Atomic checkpoints (write temp, fsync, rename); reading them is ``mtnet.checkpoint_io``.

``last.pt`` holds everything needed to resume exactly (model, EMA, optimizer, scheduler, loss balancer,
position in the epoch, RNG state, config); ``best.pt`` holds the EMA weights as ``model`` plus config,
data-set metadata and metrics: what inference and export need, nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..checkpoint_io import FORMAT, FORMAT_VERSION, CheckpointError, load_checkpoint
from ..fileio import atomic_write
from ..version import __version__

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` with the mtnet header (format, format version, the writing mtnet release) to ``path``
    atomically (readers never see a partial file). The header goes last: a state read from a file and
    saved again is stamped by the release that wrote it now."""
    header = {"format": FORMAT, "version": FORMAT_VERSION, "mtnet_version": __version__}
    atomic_write(path, lambda tmp: torch.save({**state, **header}, tmp))
