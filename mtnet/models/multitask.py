"""The multi-task network: one MobileNetV2 + one FPN-lite neck feeding detection, pose and segmentation.

``forward`` has two modes. Training (default) returns a dict of raw tensors for the criterion.
Deploy (``model.deploy = True``, used by export and the predictors) returns a fixed tuple whose names
are ``model.output_names()``:

* ``boxes``     [B, A, 4]   xyxy in input pixels (grid and stride applied in-graph), clipped to the input
* ``scores``    [B, A, C]   per-class probabilities (sigmoid)
* ``keypoints`` [B, A, K*3] per location (x, y) in input pixels and visibility probability  (pose only)
* ``seg``       [B, S, H/4, W/4] segmentation logits at stride 4, or [B, H, W] int32 argmax  (seg only)
  (logits stay at stride 4: upsampling 21 channels to the input size in-graph cost more than the pose
  head; ``mtnet.decode.decode_segmentation`` and apps resize them bilinearly to the view they draw)

A = sum over the head strides (default 8/16/32; ``model.head_strides``) of (H/s)*(W/s), ordered level by
level, row-major inside a level.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.meta import DatasetMeta
from .heads.detection import DetectionHead
from .heads.pose import PoseHead
from .heads.segmentation import SegmentationHead
from .mobilenetv2 import MobileNetV2
from .neck import FPNLite

PYRAMID_STRIDES = (8, 16, 32)  # P3..P5 of the neck


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


class MultiTaskNet(nn.Module):
    def __init__(
        self,
        meta: DatasetMeta,
        *,
        tasks: list[str],
        width: float = 1.0,
        neck_channels: int = 64,
        head_channels: int = 64,
        seg_channels: int = 64,
        pan: bool = False,
        head_strides: tuple[int, ...] = PYRAMID_STRIDES,
    ):
        super().__init__()
        tasks = [t for t in ("det", "seg", "pose") if t in tasks]
        if "pose" in tasks and "det" not in tasks:
            raise ValueError("the pose task predicts keypoints per person detection: enable 'det' too")
        if "det" in tasks and not meta.det_classes:
            raise ValueError("the det task needs detection classes in the data set")
        if "seg" in tasks and not meta.seg_classes:
            raise ValueError("the seg task needs segmentation classes in the data set")
        if "pose" in tasks and not meta.num_keypoints:
            raise ValueError("the pose task needs keypoints in the data set")
        self.meta = meta
        self.tasks = tasks
        self.backbone = MobileNetV2(width)
        self.neck = FPNLite(self.backbone.out_channels, neck_channels, pan=pan, with_c2="seg" in tasks)
        self.det_head = DetectionHead(neck_channels, head_channels, len(meta.det_classes)) if "det" in tasks else None
        self.pose_head = PoseHead(neck_channels, head_channels, meta.num_keypoints) if "pose" in tasks else None
        self.seg_head = SegmentationHead(neck_channels, seg_channels, len(meta.seg_classes)) if "seg" in tasks else None
        self.deploy = False
        self.seg_output = "logits"  # deploy mode: "logits" or "argmax"
        self.strides = tuple(head_strides)
        self._head_levels = [PYRAMID_STRIDES.index(s) for s in self.strides]

    def output_names(self) -> list[str]:
        names = []
        if self.det_head is not None:
            names += ["boxes", "scores"]
        if self.pose_head is not None:
            names.append("keypoints")
        if self.seg_head is not None:
            names.append("seg")
        return names

    def forward(self, images: torch.Tensor) -> Any:
        """``images``: normalised float [B, 3, H, W] (see ``mtnet.data.transforms.normalize``)."""
        feats = self.backbone(images)
        pyramid, c2 = self.neck(feats)
        out: dict[str, torch.Tensor] = {}
        if self.det_head is not None:
            levels = [pyramid[i] for i in self._head_levels]
            shapes = [(int(p.shape[2]), int(p.shape[3])) for p in levels]
            points, strides = anchor_points(shapes, self.strides, images.device)
            out["cls"], out["box"] = self.det_head(levels)
            out["points"], out["strides"] = points, strides
            if self.pose_head is not None:
                out["kpt"] = self.pose_head(levels, planar=self.deploy)
        if self.seg_head is not None:
            out["seg"] = self.seg_head(pyramid[0], c2)
        return self._deploy_outputs(out, images) if self.deploy else out

    def _deploy_outputs(self, out: dict[str, torch.Tensor], images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Decode in-graph with rank-3 tensors and [1, A, 1] constants only.

        Same values as ``distances_to_pixels`` / ``keypoints_to_pixels``, written so converters see no
        rank-4 broadcasting (onnx2tf mis-transposes those) and every op is a GPU-delegate builtin.
        """
        results: list[torch.Tensor] = []
        if "cls" in out:
            points = out["points"][None]  # [1, A, 2]
            strides = out["strides"][None, :, None]  # [1, A, 1]
            # xyxy = (cx, cy, cx, cy) + softplus(raw) * stride * (-1, -1, 1, 1): one mul + add on the head
            # (onnx2tf 1.28 mis-converts `constant - tensor` and transposes the concatenated result).
            # softplus as relu(x) + log(1 + exp(-|x|)): same value, but exp/log only see [-inf, 0] / [1, 2],
            # which int8 PTQ can represent (exp of raw logits saturates an int8 range and broke boxes).
            # Boxes are clipped to the (square, letterboxed) input canvas, which also bounds their int8 range.
            raw = out["box"]
            dist = torch.relu(raw) + torch.log(1.0 + torch.exp(-torch.abs(raw)))
            signed = torch.cat([-strides, -strides, strides, strides], dim=-1)  # [1, A, 4]
            boxes = (points.repeat(1, 1, 2) + dist * signed).clamp(0.0, float(max(images.shape[-2:])))
            results += [boxes, out["cls"].sigmoid()]
        if "kpt" in out:
            raw = out["kpt"]  # [B, A, 3K] planar: all dx, all dy, all visibility logits (PoseHead planar=True)
            k = self.pose_head.num_keypoints
            scale = 2.0 * strides  # keypoints_to_pixels: offsets from the anchor point in units of 2*stride
            x = points[..., 0:1] + raw[..., :k] * scale
            y = points[..., 1:2] + raw[..., k : 2 * k] * scale
            kpt = torch.stack([x, y, raw[..., 2 * k :].sigmoid()], dim=-1)  # [B, A, K, 3]
            results.append(kpt.reshape(raw.shape))  # the contract's interleaved (x, y, v) per keypoint
        if "seg" in out:
            seg = out["seg"]
            if self.seg_output == "argmax":
                seg = nn.functional.interpolate(seg, size=images.shape[-2:], mode="bilinear", align_corners=False)
                seg = seg.argmax(1).to(torch.int32)
            results.append(seg)
        return tuple(results)
