"""Reading checkpoints safely (``torch.load(weights_only=True)``) and building the model one describes.

Inference and export load trained models through :func:`load_model_from_checkpoint`;
``mtnet.engine.checkpoint`` writes checkpoints (atomically) and resumes training with
:func:`load_checkpoint`. A checkpoint is a dict with a ``format`` header (``FORMAT``), the format
``version`` (``FORMAT_VERSION``), the ``mtnet_version`` that wrote it, the ``config``, the data set ``meta``
and the ``model`` weights (plus ``ema`` and the optimizer state in ``last.pt``).

Format versions (bump when a checkpoint of the previous version can no longer be loaded as is):

1. heads as ``det_head.*``, ``pose_head.*``, ``seg_head.*`` (before tasks became plug-ins);
2. heads in ``model.heads[<task>]`` (``heads.det.*``, ``heads.pose.*``, ``heads.seg.*``); ``mtnet_version``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .config import Config, ConfigError, config_from_dict
from .data.meta import DatasetMeta
from .errors import UserError
from .version import __version__

if TYPE_CHECKING:
    from .models import MultiTaskNet

FORMAT = "mtnet-checkpoint"
FORMAT_VERSION = 2


class CheckpointError(UserError, ValueError):
    """The file is missing, unreadable, not an mtnet checkpoint, or of a format version this mtnet cannot read."""


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
    if state.get("version") != FORMAT_VERSION:
        raise CheckpointError(_version_mismatch(path, state))
    return state


def _version_mismatch(path: Path, state: dict[str, Any]) -> str:
    """One line naming the file's format version and this mtnet's, and what to do: a mismatched checkpoint
    would otherwise fail later with a long list of unexpected state-dict keys."""
    version = state.get("version")
    writer = f"mtnet {state['mtnet_version']}" if state.get("mtnet_version") else "an earlier mtnet"
    found = (f"{path}: checkpoint format version {version} (written by {writer}); this mtnet ({__version__}) "
             f"reads format version {FORMAT_VERSION}")
    if isinstance(version, int) and version > FORMAT_VERSION:
        return f"{found}: upgrade mtnet to load it"
    return f"{found}: retrain with this mtnet, or load, evaluate and export it with the mtnet release that wrote it"


# Config keys added after format version 2, with the behaviour of the checkpoints written before them.
_PRE_KEY_DEFAULTS = {"model": {"share_head_levels": True, "box_bins": 0}, "loss": {"box_iou": "giou"}}


def stored_config(state: dict[str, Any], path: str | Path) -> Config:
    """The training config a checkpoint stores (keys added since it was written take its behaviour)."""
    try:
        stored = dict(state["config"])
        for section, defaults in _PRE_KEY_DEFAULTS.items():
            stored[section] = {**defaults, **stored.get(section, {})}
        return config_from_dict(stored)
    except (ConfigError, KeyError) as e:
        raise CheckpointError(f"{path}: stored config is invalid ({e})") from None


def load_config_from_checkpoint(path: str | Path) -> Config:
    """The training config stored in a checkpoint."""
    return stored_config(load_checkpoint(path), path)


def load_model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[MultiTaskNet, Config]:
    """Build the model described by a checkpoint, load its (EMA, for best.pt) weights; returns (model in eval
    mode on ``device``, the training config)."""
    from .models import build_model

    state = load_checkpoint(path, device)
    cfg = stored_config(state, path)
    meta = DatasetMeta.from_dict(state["meta"])
    model = build_model(cfg.model, meta)
    weights = state["ema"]["module"] if state.get("ema") else state["model"]  # best.pt: "model" is already EMA
    model.load_state_dict(weights)
    return model.to(device).eval(), cfg
