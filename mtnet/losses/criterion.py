"""The multi-task criterion: assignment + per-task losses + balancing, honouring partial labels.

Partial labels: a sample contributes to a task's loss only when its source labels that task
(``has_det`` / ``has_pose`` / ``has_seg``). A sample without boxes from a source that does label boxes
is a true negative; a sample from a source without boxes contributes nothing to detection.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import LossConfig
from ..data.meta import DatasetMeta
from ..models.heads.detection import distances_to_boxes, distances_to_pixels
from ..models.heads.pose import keypoints_to_pixels
from .assigner import task_aligned_assign
from .balance import TaskBalancer
from .detection import giou_loss, quality_focal_loss
from .pose import normalized_l1_loss, oks_loss, visibility_loss
from .segmentation import segmentation_loss

OKS_GAIN, VISIBILITY_GAIN = 12.0, 1.0  # YOLOv8-pose's relative gains inside the pose loss
L1_GAIN = 8.0  # keeps keypoints learning while OKS is saturated (far from target)
POSE_AREA_FACTOR = 0.53  # box area -> approximate person segment area (YOLOv8-pose)


class MultiTaskCriterion(nn.Module):
    def __init__(self, meta: DatasetMeta, tasks: list[str], cfg: LossConfig):
        super().__init__()
        self.meta = meta
        self.tasks = tasks
        self.cfg = cfg
        self.register_buffer("sigmas", torch.tensor(meta.keypoint_sigmas or [0.05], dtype=torch.float32))
        # optional class-balanced weights (data.class_balance); not a buffer, so checkpoints keep their keys
        self.class_weights = torch.tensor(meta.det_class_weights, dtype=torch.float32) if meta.det_class_weights else None
        weights = {t: {"det": cfg.det, "seg": cfg.seg, "pose": cfg.pose}[t] for t in tasks}
        self.balancer = TaskBalancer(weights, cfg.balance)

    def forward(self, out: dict[str, torch.Tensor], batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        losses: dict[str, torch.Tensor] = {}
        logs: dict[str, float] = {}
        if "cls" in out:
            det, pose, det_logs = self._detection(out, batch)
            losses["det"] = det
            logs.update(det_logs)
            if pose is not None:
                losses["pose"] = pose
        if "seg" in out:
            has = batch["has_seg"].to(out["seg"].device)
            seg = segmentation_loss(out["seg"][has], batch["masks"].to(out["seg"].device)[has],
                                    self.cfg.seg_resolution) if has.any() \
                else out["seg"].sum() * 0
            losses["seg"] = seg
            logs["seg"] = float(seg.detach())
        total, weights = self.balancer(losses)
        logs.update({f"w_{k}": v for k, v in weights.items()})
        logs["loss"] = float(total.detach())
        return total, logs

    def _detection(self, out: dict[str, torch.Tensor], batch: dict):
        dev = out["cls"].device
        has_det = batch["has_det"].to(dev)
        cls_logits, raw_box = out["cls"][has_det], out["box"][has_det]
        points, strides = out["points"], out["strides"]
        gt_boxes, gt_labels = batch["boxes"].to(dev)[has_det], batch["labels"].to(dev)[has_det]
        pred_boxes = distances_to_boxes(distances_to_pixels(raw_box, strides), points)
        assign = task_aligned_assign(cls_logits.detach().sigmoid(), pred_boxes.detach(), points, gt_labels, gt_boxes)
        norm = assign.target_scores.sum().clamp(min=1.0)
        weights = self.class_weights.to(dev) if self.class_weights is not None else None
        cls = quality_focal_loss(cls_logits, assign.target_scores, class_weights=weights) / norm
        fg = assign.fg
        box = giou_loss(pred_boxes[fg], assign.target_boxes[fg], assign.target_scores.sum(-1)[fg]) / norm
        det = cls + self.cfg.box * box
        logs = {"cls": float(cls.detach()), "box": float(box.detach()), "num_fg": float(fg.sum())}
        pose = None
        if "kpt" in out:
            pose = self._pose(out["kpt"][has_det], batch, has_det, assign, points, strides)
            logs["pose"] = float(pose.detach())
        return det, pose, logs

    def _pose(self, raw_kpt, batch, has_det, assign, points, strides) -> torch.Tensor:
        dev = raw_kpt.device
        gt_kpts = batch["keypoints"].to(dev)[has_det]  # [B, M, K, 3]
        has_pose = batch["has_pose"].to(dev)[has_det]
        gt_index = assign.gt_index
        bsz, a = gt_index.shape
        k = gt_kpts.shape[2]
        target = gt_kpts.gather(1, gt_index[..., None, None].expand(bsz, a, k, 3))  # [B, A, K, 3]
        select = assign.fg & has_pose[:, None] & (target[..., 2] > 0).any(-1)
        if not select.any():
            return raw_kpt.sum() * 0
        pred = keypoints_to_pixels(raw_kpt, points, strides)[select]  # [N, K, 3]
        target = target[select]
        box = assign.target_boxes[select]
        area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]) * POSE_AREA_FACTOR
        return (OKS_GAIN * oks_loss(pred[..., :2], target, area, self.sigmas)
                + L1_GAIN * normalized_l1_loss(pred[..., :2], target, area)
                + VISIBILITY_GAIN * visibility_loss(pred[..., 2], target))
