"""Semantic segmentation loss: pixel cross-entropy that ignores 255 (unlabelled / no mask)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..data.sample import IGNORE_INDEX


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor, resolution: str = "input") -> torch.Tensor:
    """``logits`` [B, S, h, w] at any stride, ``masks`` [B, H, W]; mean over labelled pixels (0 if none).

    ``resolution="input"`` upsamples the logits bilinearly to the masks; ``"logits"`` instead takes the label
    at the centre of every logit cell (an integer stride), which is much cheaper and only coarsens boundaries.
    """
    if logits.shape[-2:] != masks.shape[-2:]:
        if resolution == "logits":
            masks = subsample_labels(masks, logits.shape[-2:])
        else:
            logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    total = F.cross_entropy(logits, masks, ignore_index=IGNORE_INDEX, reduction="sum")
    count = (masks != IGNORE_INDEX).sum()
    return total / count.clamp(min=1)


def subsample_labels(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B, H, W] labels -> [B, h, w]: the pixel nearest each cell centre (H, W must be integer multiples)."""
    sy, sx = masks.shape[-2] // size[0], masks.shape[-1] // size[1]
    if (sy * size[0], sx * size[1]) != tuple(masks.shape[-2:]):
        raise ValueError(f"labels {tuple(masks.shape[-2:])} are not an integer multiple of the logits {tuple(size)}")
    return masks[..., sy // 2 :: sy, sx // 2 :: sx]
