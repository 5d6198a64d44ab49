"""Keypoint head predicting, at every location, the K keypoints of the person detected there.

YOLO-Pose style: keypoints are offsets from the anchor point, so each detection carries its own
skeleton and multi-person pose needs no grouping step; NMS on the boxes picks the skeletons too.
(Offsets relative to the location's own predicted box, in box units, were tried on the quickstart and
learned OKS-AP more slowly: the box frame is noisy early in a from-scratch run.)
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import DWSeparable, nhwc_rows


class PoseHead(nn.Module):
    def __init__(self, channels: int, hidden: int, num_keypoints: int):
        super().__init__()
        self.tower = nn.Sequential(DWSeparable(channels, hidden), DWSeparable(hidden, hidden))
        self.pred = nn.Conv2d(hidden, num_keypoints * 3, 1)
        nn.init.normal_(self.pred.weight, std=0.01)
        nn.init.zeros_(self.pred.bias)
        self.num_keypoints = num_keypoints

    def forward(self, feats: list[torch.Tensor], planar: bool = False) -> torch.Tensor:
        """Return raw keypoints [B, A, K, 3] = (dx, dy, visibility logit) over all levels.

        ``planar=True`` (deploy graphs) returns [B, A, 3K] ordered (all dx, all dy, all logits) instead:
        the same conv with its output channels permuted (a constant the exporter folds into the weights),
        so the in-graph decode reads three contiguous slices. The stride-3 slices of the interleaved layout
        cost ~2 ms per invoke in LiteRT on our x86 host (width 1.0, 320 px), more than the pose tower.
        """
        k = self.num_keypoints
        weight, bias = self.pred.weight, self.pred.bias
        if planar:
            order = torch.arange(3 * k, device=weight.device).view(k, 3).t().reshape(-1)
            weight, bias = weight[order], bias[order]
        raw = torch.cat([nhwc_rows(nn.functional.conv2d(self.tower(f), weight, bias)) for f in feats], 1)
        return raw if planar else raw.reshape(raw.shape[0], raw.shape[1], k, 3)


def keypoints_to_pixels(raw: torch.Tensor, points: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """(dx, dy) are in units of 2*stride from the anchor point (YOLOv8-pose); returns x, y pixels + logit."""
    xy = points[:, None, :] + raw[..., :2] * (2.0 * strides[:, None, None])
    return torch.cat([xy, raw[..., 2:3]], dim=-1)
