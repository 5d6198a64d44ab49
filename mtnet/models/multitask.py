"""The multi-task network: one MobileNetV2 + one FPN-lite neck feeding the enabled tasks' heads.

``forward`` has two modes. Training (default) returns a dict of raw tensors for the criterion.
Deploy (``model.deploy = True``, used by export and the predictors) returns a fixed tuple whose names
are ``model.output_names()`` (each task's ``outputs``, in registry order); for the built-in tasks:

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
from ..tasks import Features, HeadSpec, OutputDef, resolve_tasks
from .mobilenetv2 import MobileNetV2
from .neck import FPNLite

PYRAMID_STRIDES = (8, 16, 32)  # P3..P5 of the neck


class MultiTaskNet(nn.Module):
    """Backbone + neck + one head per enabled task (``self.heads``, keyed by task name).

    The tasks (``mtnet.tasks``) build their heads, add their raw tensors to the training-mode dict and their
    tensors to the deploy tuple; this class never names a task.
    """

    def __init__(
        self,
        meta: DatasetMeta,
        *,
        tasks: list[str],
        width: float = 1.0,
        neck_channels: int = 64,
        head_channels: int = 64,
        pose_channels: int = 0,
        pose_blocks: int = 2,
        seg_channels: int = 64,
        pan: bool = False,
        head_strides: tuple[int, ...] = PYRAMID_STRIDES,
        share_head_levels: bool = True,
        pose_level: str = "own",
        box_bins: int = 0,
    ):
        super().__init__()
        self.task_set = resolve_tasks(tasks)
        for task in self.task_set:
            task.check_data(meta)
        self.meta = meta
        self.tasks = self.task_set.names
        self.backbone = MobileNetV2(width)
        uses_c2 = any(t.uses_c2 for t in self.task_set)
        self.neck = FPNLite(self.backbone.out_channels, neck_channels, pan=pan, with_c2=uses_c2)
        spec = HeadSpec(neck_channels, head_channels, seg_channels, len(head_strides), share_head_levels, pose_level,
                        box_bins, pose_channels, pose_blocks)
        self.heads = nn.ModuleDict({t.name: t.build_head(meta, spec) for t in self.task_set})
        self.deploy = False
        self.seg_output = "logits"  # deploy mode: "logits" or "argmax"
        self.strides = tuple(head_strides)
        self._head_levels = [PYRAMID_STRIDES.index(s) for s in self.strides]

    def output_defs(self) -> list[OutputDef]:
        """The deploy outputs (name, axes, meaning), in graph order."""
        return [o for t in self.task_set for o in t.outputs(self)]

    def output_names(self) -> list[str]:
        return [o.name for o in self.output_defs()]

    def forward(self, images: torch.Tensor) -> Any:
        """``images``: normalised float [B, 3, H, W] (see ``mtnet.preprocess``)."""
        pyramid, c2 = self.neck(self.backbone(images))
        feats = Features(images, pyramid, c2, [pyramid[i] for i in self._head_levels], self.strides, self.deploy)
        out: dict[str, torch.Tensor] = {}
        for task in self.task_set:
            out.update(task.forward(self.heads[task.name], feats, out))
        if not self.deploy:
            return out
        return tuple(t for task in self.task_set for t in task.deploy(self, out, images))
