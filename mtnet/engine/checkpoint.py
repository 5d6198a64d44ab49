"""Atomic checkpoints (write temp, fsync, rename) and safe loading (``weights_only=True``).

``last.pt`` holds everything needed to resume exactly (model, EMA, optimizer, scheduler, loss balancer,
position in the epoch, RNG state, config); ``best.pt`` holds the EMA weights as ``model`` plus config,
data-set metadata and metrics: what inference and export need, nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, config_from_dict
from ..data.meta import DatasetMeta
from ..errors import UserError
from ..fileio import atomic_write

FORMAT = "mtnet-checkpoint"


class CheckpointError(UserError, ValueError):
    """The file is missing, unreadable, or not an mtnet checkpoint."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    atomic_write(path, lambda tmp: torch.save({"format": FORMAT, "version": 1, **state}, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for truncated / foreign / unsafe files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an mtnet checkpoint (no '{FORMAT}' header)")
    return state


def load_model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu"):
    """Build the model described by a checkpoint and load its (EMA, for best.pt) weights."""
    from ..models import build_model

    state = load_checkpoint(path, device)
    try:
        cfg = config_from_dict(state["config"])
    except (ConfigError, KeyError) as e:
        raise CheckpointError(f"{path}: stored config is invalid ({e})") from None
    meta = DatasetMeta.from_dict(state["meta"])
    model = build_model(cfg.model, meta)
    weights = state["ema"]["module"] if state.get("ema") else state["model"]  # best.pt: "model" is already EMA
    model.load_state_dict(weights)
    return model.to(device).eval(), cfg

