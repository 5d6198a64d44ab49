"""Detection losses: quality focal loss on class scores (GFL, Li et al. 2020) and GIoU on boxes."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .boxes import generalized_iou


def quality_focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0,
                       class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """BCE against soft IoU-quality targets, modulated by |target - p|^gamma; summed.

    ``class_weights`` (one per class, optional) scales each class's term: class-balanced loss."""
    p = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    loss = bce * (targets - p).abs().pow(gamma)
    return (loss * class_weights if class_weights is not None else loss).sum()


def giou_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Sum of (1 - GIoU), each weighted (by the anchor's class-target quality)."""
    return ((1.0 - generalized_iou(pred, target)) * weight).sum()
