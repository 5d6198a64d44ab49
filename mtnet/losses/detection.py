"""Detection losses: quality focal loss on class scores (GFL, Li et al. 2020), an IoU loss (GIoU or CIoU) on
boxes and, for boxes regressed as distributions, the distribution focal loss (GFL)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .boxes import complete_iou, generalized_iou

IOU_FUNCTIONS = {"giou": generalized_iou, "ciou": complete_iou}


def quality_focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0,
                       class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """BCE against soft IoU-quality targets, modulated by |target - p|^gamma; summed.

    ``class_weights`` (one per class, optional) scales each class's term: class-balanced loss."""
    p = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    loss = bce * (targets - p).abs().pow(gamma)
    return (loss * class_weights if class_weights is not None else loss).sum()


def iou_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, kind: str = "giou") -> torch.Tensor:
    """Sum of (1 - GIoU) or (1 - CIoU), each weighted (by the anchor's class-target quality)."""
    return ((1.0 - IOU_FUNCTIONS[kind](pred, target)) * weight).sum()


def distribution_focal_loss(bin_logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """DFL: cross-entropy towards the two bins around each target distance, weighted by their nearness; summed
    with ``weight`` per anchor. ``bin_logits`` [N, 4 * n] (side-major), ``target`` [N, 4] distances in bins."""
    bins = bin_logits.shape[-1] // 4
    logits = bin_logits.reshape(-1, bins)
    target = target.reshape(-1).clamp(0, bins - 1 - 0.01)
    left = target.long()
    w_right = target - left
    loss = (F.cross_entropy(logits, left, reduction="none") * (1 - w_right)
            + F.cross_entropy(logits, left + 1, reduction="none") * w_right)
    return (loss.view(-1, 4).mean(-1) * weight).sum()
