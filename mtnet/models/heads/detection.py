"""Anchor-free detection head (FCOS/YOLOX family), shared across pyramid levels.

Per location it predicts class logits (trained as an IoU-aware "quality" score, so no separate
centerness branch is needed) and four distances (left, top, right, bottom) to the box edges, in units
of the level's stride: one softplus value per side, or (``bins`` > 1) a distribution over ``bins`` integer
distances per side whose mean is the distance (GFL's distribution focal loss, as in YOLOv8: a sharper
target for the edges an anchor sees clearly, a spread one for occluded or ambiguous edges). Label
assignment is task-aligned (TOOD), see ``mtnet.losses.assigner``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..layers import DWSeparable, at_level, nhwc_rows, per_level


class DetectionHead(nn.Module):
    """``share_levels=False`` gives every level its own towers and predictions (YOLOv8/YOLOX): same FLOPs, more
    weights, and BatchNorm statistics per level. Shared towers (FCOS/RetinaNet without GroupNorm) normalise every
    level with one set of running statistics, a mixture that matches no single level at inference."""

    def __init__(self, channels: int, hidden: int, num_classes: int, prior_prob: float = 0.01,
                 num_levels: int = 1, share_levels: bool = True, bins: int = 0):
        super().__init__()
        copies = 1 if share_levels else num_levels

        def tower() -> nn.Module:
            return nn.Sequential(DWSeparable(channels, hidden), DWSeparable(hidden, hidden))

        self.cls_tower = per_level(tower, copies)
        self.reg_tower = per_level(tower, copies)
        self.cls_pred = per_level(lambda: nn.Conv2d(hidden, num_classes, 1), copies)
        self.box_pred = per_level(lambda: nn.Conv2d(hidden, 4 * max(bins, 1), 1), copies)
        for level in range(copies):
            cls_pred, box_pred = at_level(self.cls_pred, level), at_level(self.box_pred, level)
            nn.init.normal_(cls_pred.weight, std=0.01)
            nn.init.constant_(cls_pred.bias, -math.log((1 - prior_prob) / prior_prob))
            nn.init.normal_(box_pred.weight, std=0.01)
            nn.init.constant_(box_pred.bias, 0.5 if bins <= 1 else 0.0)
        self.num_classes = num_classes
        self.bins = bins if bins > 1 else 0

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return class logits [B, A, C] and raw distances [B, A, 4] (or bin logits [B, A, 4 * bins], side-major)
        over all levels (row-major per level)."""
        cls_out = [nhwc_rows(at_level(self.cls_pred, i)(at_level(self.cls_tower, i)(f))) for i, f in enumerate(feats)]
        box_out = [nhwc_rows(at_level(self.box_pred, i)(at_level(self.reg_tower, i)(f))) for i, f in enumerate(feats)]
        return torch.cat(cls_out, 1), torch.cat(box_out, 1)


def distances_to_pixels(raw: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """Raw head output -> non-negative ltrb distances in pixels: softplus of 4 values (keeps gradients alive at
    0), or the mean of each side's softmax over ``raw.shape[-1] // 4`` bins."""
    if raw.shape[-1] == 4:
        return nn.functional.softplus(raw) * strides[:, None]
    bins = raw.shape[-1] // 4
    prob = raw.unflatten(-1, (4, bins)).softmax(-1)  # any leading shape, empty batches included
    return (prob * torch.arange(bins, dtype=raw.dtype, device=raw.device)).sum(-1) * strides[:, None]


def distribution_mean(raw: torch.Tensor, bins: int) -> torch.Tensor:
    """Bin logits [B, A, 4 * bins] (side-major) -> the mean bin of each side's softmax [B, A, 4], in strides.

    Written for converters: softmax + multiply by the bin values + sum over the last axis of a rank-3 view (ops
    every TFLite delegate runs; no matmul, no rank-4 broadcasting), and ``bins`` a Python int, so a traced
    graph holds it as a constant."""
    batch = raw.shape[0]
    prob = raw.reshape(batch, -1, bins).softmax(-1)
    values = torch.arange(bins, dtype=raw.dtype, device=raw.device).view(1, 1, bins)
    return (prob * values).sum(-1).reshape(batch, -1, 4)


def distances_to_boxes(dist: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """ltrb distances [.., A, 4] around anchor points [A, 2] -> xyxy boxes."""
    return torch.cat([points - dist[..., :2], points + dist[..., 2:]], dim=-1)


def anchor_points(
    shapes: list[tuple[int, int]], strides: tuple[int, ...], device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres of every feature-map cell in input pixels [A, 2] and the stride of each [A]."""
    points, stride_list = [], []
    for (h, w), s in zip(shapes, strides, strict=True):
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * s
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1))
        stride_list.append(torch.full((h * w,), float(s), device=device))
    return torch.cat(points), torch.cat(stride_list)
