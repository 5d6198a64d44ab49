"""Keypoint losses: OKS-based regression (YOLO-Pose, Maji et al. 2022) and keypoint visibility BCE."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def keypoint_similarity(pred_xy: torch.Tensor, gt: torch.Tensor, area: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """COCO's per-keypoint similarity exp(-d² / (2 s² k²)), s² = area, k = 2σ; [N, K]. OKS is its mean over
    the labelled keypoints. ``pred_xy`` [N, K, 2], ``gt`` [N, K, 3], ``area`` [N], ``sigmas`` [K]."""
    d2 = (pred_xy - gt[..., :2]).pow(2).sum(-1)
    return torch.exp(-d2 / ((2 * sigmas).pow(2) * (area[:, None] + 1e-9) * 2))


def oks_loss(pred_xy: torch.Tensor, gt: torch.Tensor, area: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """1 - OKS per labelled keypoint, averaged with a per-instance factor so persons with few labelled
    keypoints are not down-weighted (shapes as in ``keypoint_similarity``)."""
    labelled = (gt[..., 2] > 0).float()
    factor = labelled.shape[1] / (labelled.sum(1, keepdim=True) + 1e-9)
    return (factor * (1 - keypoint_similarity(pred_xy, gt, area, sigmas)) * labelled).mean()


def visibility_loss(logits: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Predict whether a keypoint is labelled (v > 0) — used to hide absent joints when drawing."""
    return F.binary_cross_entropy_with_logits(logits, (gt[..., 2] > 0).float())


def normalized_l1_loss(pred_xy: torch.Tensor, gt: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """|pred - gt| / sqrt(area) over labelled keypoints. OKS saturates (zero gradient) while keypoints are
    far from their targets, which is the whole start of a from-scratch run; this term keeps a constant pull."""
    labelled = (gt[..., 2] > 0).float()
    err = (pred_xy - gt[..., :2]).abs().sum(-1) / area.clamp(min=1.0).sqrt()[:, None]
    return (err * labelled).sum() / labelled.sum().clamp(min=1.0)
