"""Reading checkpoints safely (``torch.load(weights_only=True)``) and building the model one describes.

Inference and export load trained models through :func:`load_model_from_checkpoint`;
``mtnet.engine.checkpoint`` writes checkpoints (atomically) and resumes training with
:func:`load_checkpoint`. A checkpoint is a dict with a ``format`` header (``FORMAT``), the ``config``,
the data set ``meta`` and the ``model`` weights (plus ``ema`` and the optimizer state in ``last.pt``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .config import Config, ConfigError, config_from_dict
from .data.meta import DatasetMeta
from .errors import UserError

if TYPE_CHECKING:
    from .models import MultiTaskNet

FORMAT = "mtnet-checkpoint"


class CheckpointError(UserError, ValueError):
    """The file is missing, unreadable, or not an mtnet checkpoint."""


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint's state dict, loaded with ``weights_only=True``; a foreign file raises CheckpointError."""
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


def _config(state: dict[str, Any], path: str | Path) -> Config:
    try:
        return config_from_dict(state["config"])
    except (ConfigError, KeyError) as e:
        raise CheckpointError(f"{path}: stored config is invalid ({e})") from None


def load_config_from_checkpoint(path: str | Path) -> Config:
    """The training config stored in a checkpoint."""
    return _config(load_checkpoint(path), path)


def load_model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[MultiTaskNet, Config]:
    """Build the model described by a checkpoint, load its (EMA, for best.pt) weights; returns (model in eval
    mode on ``device``, the training config)."""
    from .models import build_model

    state = load_checkpoint(path, device)
    cfg = _config(state, path)
    meta = DatasetMeta.from_dict(state["meta"])
    model = build_model(cfg.model, meta)
    weights = state["ema"]["module"] if state.get("ema") else state["model"]  # best.pt: "model" is already EMA
    model.load_state_dict(weights)
    return model.to(device).eval(), cfg
