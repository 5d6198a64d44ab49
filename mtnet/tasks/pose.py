"""Pose: K keypoints per detection anchor (YOLO-Pose style), so multi-person pose needs no grouping and shares
the detector's assignment and NMS. Loss: OKS + normalised L1 + visibility on the anchors detection assigned to
labelled people; metric: COCO keypoint OKS-AP.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..decode import vote_keypoints
from ..eval.coco import coco_keypoint_metrics, detections_to_coco
from ..losses.pose import normalized_l1_loss, oks_loss, visibility_loss
from ..models.heads.pose import PoseHead, keypoint_anchor_frame, keypoints_to_pixels
from . import register_task
from .base import CocoResultsEvaluator, DecodeOptions, Features, HeadSpec, OutputDef, Task, TaskEvaluator

OKS_GAIN, VISIBILITY_GAIN = 12.0, 1.0  # YOLOv8-pose's relative gains inside the pose loss
L1_GAIN = 8.0  # keeps keypoints learning while OKS is saturated (far from target)
POSE_AREA_FACTOR = 0.53  # box area -> approximate person segment area (YOLOv8-pose)
KEYPOINT_DRAW_THRESHOLD = 0.5  # visibility probability above which a keypoint is drawn


@register_task
class PoseTask(Task):
    name = "pose"
    requires = ("det",)
    loss_logs = ("pose",)
    metric_keys = ("kpt_AP", "kpt_AP50")
    gated_metric = "kpt_AP50"
    fitness_metric = "kpt_AP"
    summary_rows = (("keypoint OKS-AP", "kpt_AP"), ("keypoint OKS-AP50", "kpt_AP50"))
    draw_order = 30

    def check_data(self, meta) -> None:
        if not meta.num_keypoints:
            raise ValueError("the pose task needs keypoints in the data set")

    def collate(self, samples) -> dict[str, torch.Tensor]:
        b, m = len(samples), max([len(s.boxes) for s in samples] + [1])
        k = samples[0].keypoints.shape[1] if samples[0].keypoints.ndim == 3 else 0
        kpts = torch.zeros(b, m, k, 3)  # rows match the detection targets' rows
        if k:
            for i, s in enumerate(samples):
                if len(s.boxes):
                    kpts[i, : len(s.boxes)] = torch.from_numpy(s.keypoints)
        return {"keypoints": kpts}

    def calibration_items(self, sample, meta) -> set[str]:
        return {"task:pose"} if sample.has_pose and (sample.keypoints[..., 2] > 0).any() else set()

    def loss_weight(self, cfg) -> float:
        return cfg.pose

    def build_head(self, meta, spec: HeadSpec) -> nn.Module:
        return PoseHead(spec.neck_channels, spec.pose_channels or spec.head_channels, meta.num_keypoints,
                        num_levels=spec.num_levels, share_levels=spec.share_levels,
                        finest_only=spec.pose_level == "finest", blocks=spec.pose_blocks)

    def forward(self, head, feats: Features, out) -> dict[str, torch.Tensor]:
        points, strides = keypoint_anchor_frame(out["points"], out["strides"], head.finest_only)
        return {"kpt": head(feats.head_levels, planar=feats.deploy), "kpt_points": points, "kpt_strides": strides}

    def outputs(self, model) -> list[OutputDef]:
        return [OutputDef("keypoints", "B,A,K*3", "per anchor, K x (x, y, visibility): x, y in input pixels, "
                          "visibility probability", per_anchor=True, float_tail=True, labels="keypoints.names",
                          labels_kind="parts")]

    def deploy(self, model, out, images) -> list[torch.Tensor]:
        """Same values as ``keypoints_to_pixels``, from the planar head layout, rank-3 constants only."""
        points = out["kpt_points"][None]  # [1, A, 2]
        scale = 2.0 * out["kpt_strides"][None, :, None]  # offsets are in units of 2*stride from the anchor point
        raw = out["kpt"]  # [B, A, 3K] planar: all dx, all dy, all visibility logits (PoseHead planar=True)
        k = model.meta.num_keypoints  # a Python int: traced shape arithmetic breaks the CoreML converter
        x = points[..., 0:1] + raw[..., :k] * scale
        y = points[..., 1:2] + raw[..., k : 2 * k] * scale
        kpt = torch.stack([x, y, raw[..., 2 * k :].sigmoid()], dim=-1)  # [B, A, K, 3]
        return [kpt.reshape(raw.shape)]  # the contract's interleaved (x, y, v) per keypoint

    def loss(self, out, batch, context, meta, cfg) -> tuple[torch.Tensor, dict[str, float]]:
        assign, has_det = context["assign"], context["has_det"]
        raw_kpt = out["kpt"][has_det]
        dev = raw_kpt.device
        points, strides = out["kpt_points"], out["kpt_strides"]
        gt_kpts = batch["keypoints"].to(dev)[has_det]  # [B, M, K, 3]
        has_pose = batch["has_pose"].to(dev)[has_det]
        gt_index = assign.gt_index
        bsz, a = gt_index.shape
        k = gt_kpts.shape[2]
        target = gt_kpts.gather(1, gt_index[..., None, None].expand(bsz, a, k, 3))  # [B, A, K, 3]
        select = assign.fg & has_pose[:, None] & (target[..., 2] > 0).any(-1)
        if not select.any():
            pose = raw_kpt.sum() * 0
        else:
            sigmas = torch.tensor(meta.keypoint_sigmas or [0.05], dtype=torch.float32, device=dev)
            pred = keypoints_to_pixels(raw_kpt, points, strides)[select]  # [N, K, 3]
            target = target[select]
            box = assign.target_boxes[select]
            area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]) * POSE_AREA_FACTOR
            pose = (OKS_GAIN * oks_loss(pred[..., :2], target, area, sigmas)
                    + L1_GAIN * normalized_l1_loss(pred[..., :2], target, area)
                    + VISIBILITY_GAIN * visibility_loss(pred[..., 2], target))
        return pose, {"pose": float(pose.detach())}

    def decode(self, outputs, index, result, scale, shape, opts: DecodeOptions) -> None:
        det = result.get("det")
        if det is None or "keypoints" not in outputs or det.index is None:
            return
        kp = np.asarray(outputs["keypoints"][index], np.float32)
        kp = kp.reshape(kp.shape[0], -1, 3)
        if "boxes" in outputs and "scores" in outputs:  # per-anchor outputs: vote (in-graph NMS rows: their own)
            kp = vote_keypoints(kp, np.asarray(outputs["boxes"][index], np.float32),
                                np.asarray(outputs["scores"][index], np.float32), det, conf=opts.conf)
        else:
            kp = kp[det.index].copy()
        kp[..., :2] /= scale
        det.keypoints = kp

    def evaluator(self, meta, source) -> TaskEvaluator | None:
        path = getattr(source, "keypoints_path", None)
        if path is None:
            return None

        def entries(sample, prediction) -> list[dict]:
            det = prediction.detections
            has_keypoints = det is not None and det.keypoints is not None
            return detections_to_coco(sample.image_id, det, meta)[1] if has_keypoints else []

        return CocoResultsEvaluator(path, entries,
                                    lambda gt, results: coco_keypoint_metrics(gt, results, meta.keypoint_sigmas))

    def draw(self, canvas: np.ndarray, prediction, meta) -> np.ndarray:
        from PIL import Image, ImageDraw

        det = prediction.detections
        if det is None or det.keypoints is None or not len(det):
            return canvas
        image = Image.fromarray(canvas)
        draw = ImageDraw.Draw(image)
        for i in np.nonzero(det.labels == meta.keypoint_class)[0]:
            kp = det.keypoints[i]
            shown = kp[:, 2] >= KEYPOINT_DRAW_THRESHOLD
            for a, b in meta.skeleton:
                if shown[a] and shown[b]:
                    draw.line([tuple(kp[a, :2]), tuple(kp[b, :2])], fill=(255, 255, 0), width=2)
            for x, y, _ in kp[shown]:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(255, 0, 0))
        return np.asarray(image)
