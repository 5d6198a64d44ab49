"""Semantic segmentation loss: pixel cross-entropy that ignores 255 (unlabelled / no mask)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..data.sample import IGNORE_INDEX


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``logits`` [B, S, h, w] at any stride, ``masks`` [B, H, W]; mean over labelled pixels (0 if none)."""
    if logits.shape[-2:] != masks.shape[-2:]:
        logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    total = F.cross_entropy(logits, masks, ignore_index=IGNORE_INDEX, reduction="sum")
    count = (masks != IGNORE_INDEX).sum()
    return total / count.clamp(min=1)
