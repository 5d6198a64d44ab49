"""Model builders. ``build_model(cfg.model, meta)`` is the one entry point (torchvision-style, keyword-only)."""

from __future__ import annotations

from ..config import ModelConfig
from ..data.meta import DatasetMeta
from .multitask import MultiTaskNet


def build_model(cfg: ModelConfig, meta: DatasetMeta) -> MultiTaskNet:
    return MultiTaskNet(
        meta,
        tasks=list(cfg.tasks),
        width=cfg.width,
        neck_channels=cfg.neck_channels,
        head_channels=cfg.head_channels,
        pose_channels=cfg.pose_channels,
        pose_blocks=cfg.pose_blocks,
        seg_channels=cfg.seg_channels,
        pan=cfg.pan,
        head_strides=tuple(cfg.head_strides),
        share_head_levels=cfg.share_head_levels,
        pose_level=cfg.pose_level,
        box_bins=cfg.box_bins,
    )


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["MultiTaskNet", "build_model", "count_parameters"]
