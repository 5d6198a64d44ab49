"""Keypoint head predicting, at every location, the K keypoints of the person detected there.

YOLO-Pose style: keypoints are offsets from the anchor point, so each detection carries its own
skeleton and multi-person pose needs no grouping step; NMS on the boxes picks the skeletons too.
(Offsets relative to the location's own predicted box, in box units, were tried on the quickstart and
learned OKS-AP more slowly: the box frame is noisy early in a from-scratch run.)
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import DWSeparable, at_level, nhwc_rows, per_level


class PoseHead(nn.Module):
    """``share_levels=False``: one tower and prediction per pyramid level (see ``DetectionHead``).

    ``finest_only=True``: the tower runs on the finest level only, and an anchor of a coarser level (stride
    r times the finest) reads the finest-level cell under its centre (row r*i + r//2, column r*j + r//2).
    Detection still chooses the level; the skeleton always comes from the finest features, which locate
    joints r times more precisely (see ``keypoint_anchor_frame`` for the anchor frame the offsets use).
    """

    def __init__(self, channels: int, hidden: int, num_keypoints: int, num_levels: int = 1,
                 share_levels: bool = True, finest_only: bool = False, blocks: int = 2):
        super().__init__()
        self.finest_only = finest_only
        copies = 1 if share_levels or finest_only else num_levels
        self.tower = per_level(lambda: nn.Sequential(DWSeparable(channels, hidden),
                                                     *(DWSeparable(hidden, hidden) for _ in range(blocks - 1))), copies)
        self.pred = per_level(lambda: nn.Conv2d(hidden, num_keypoints * 3, 1), copies)
        for level in range(copies):
            nn.init.normal_(at_level(self.pred, level).weight, std=0.01)
            nn.init.zeros_(at_level(self.pred, level).bias)
        self.num_keypoints = num_keypoints

    def forward(self, feats: list[torch.Tensor], planar: bool = False) -> torch.Tensor:
        """Return raw keypoints [B, A, K, 3] = (dx, dy, visibility logit) over all levels.

        ``planar=True`` (deploy graphs) returns [B, A, 3K] ordered (all dx, all dy, all logits) instead:
        the same conv with its output channels permuted (a constant the exporter folds into the weights),
        so the in-graph decode reads three contiguous slices. The stride-3 slices of the interleaved layout
        cost ~2 ms per invoke in LiteRT on our x86 host (width 1.0, 320 px), more than the pose tower.
        """
        k = self.num_keypoints
        rows = []
        for i, f in enumerate(feats[:1] if self.finest_only else feats):
            pred = at_level(self.pred, i)
            weight, bias = pred.weight, pred.bias
            if planar:
                order = torch.arange(3 * k, device=weight.device).view(k, 3).t().reshape(-1)
                weight, bias = weight[order], bias[order]
            rows.append(nn.functional.conv2d(at_level(self.tower, i)(f), weight, bias))
        if self.finest_only:
            finest, h0 = rows[0], feats[0].shape[2]
            rows = []
            for f in feats:
                r = h0 // f.shape[2]  # stride ratio to the finest level
                rows.append(finest[:, :, r // 2 :: r, r // 2 :: r][:, :, : f.shape[2], : f.shape[3]])
        raw = torch.cat([nhwc_rows(x) for x in rows], 1)
        return raw if planar else raw.reshape(raw.shape[0], raw.shape[1], k, 3)


def keypoints_to_pixels(raw: torch.Tensor, points: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """(dx, dy) are in units of 2*stride from the anchor point (YOLOv8-pose); returns x, y pixels + logit."""
    xy = points[:, None, :] + raw[..., :2] * (2.0 * strides[:, None, None])
    return torch.cat([xy, raw[..., 2:3]], dim=-1)


def keypoint_anchor_frame(points: torch.Tensor, strides: torch.Tensor, finest_only: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The anchor point and stride each anchor's keypoint offsets are relative to ([A, 2], [A]).

    With ``finest_only`` a coarse anchor's keypoints come from the finest-level cell under its centre: that
    cell's centre lies half a finest stride right and down of the coarse centre (even stride ratios), and the
    offsets are in units of 2x the finest stride."""
    if not finest_only:
        return points, strides
    finest = strides.min()
    shift = (strides > finest).to(points.dtype)[:, None] * (finest / 2)
    return points + shift, torch.full_like(strides, float(finest))
