"""Object detection: anchor-free head on the chosen pyramid levels, task-aligned assignment, quality focal +
GIoU loss, boxes decoded to pixels in-graph, class-aware NMS in NumPy (or in-graph with ``--nms``), COCO box AP.

Other per-anchor tasks (pose) build on it: ``forward`` leaves the anchor ``points`` / ``strides`` in the raw
outputs, ``loss`` leaves the label assignment in the shared context, and ``decode`` records which anchor (or
NMS row) each kept detection came from in ``Detections.index``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..decode import decode_detections, decode_nms_outputs
from ..eval.coco import coco_bbox_metrics, detections_to_coco
from ..losses.assigner import task_aligned_assign
from ..losses.detection import distribution_focal_loss, iou_loss, quality_focal_loss
from ..models.heads.detection import (
    DetectionHead,
    anchor_points,
    distances_to_boxes,
    distances_to_pixels,
    distribution_mean,
)
from . import register_task
from .base import CocoResultsEvaluator, DecodeOptions, Features, HeadSpec, OutputDef, Task, TaskEvaluator

NMS_OUTPUT_NAMES = ("detections", "num_detections")  # outputs of a graph exported with in-graph NMS


@register_task
class DetectionTask(Task):
    name = "det"
    loss_logs = ("cls", "box", "dfl")
    diagnostic_logs = ("num_fg",)  # foreground anchors per step: 0 means the assigner matched nothing
    metric_keys = ("bbox_AP", "bbox_AP50")
    gated_metric = "bbox_AP50"
    fitness_metric = "bbox_AP"
    summary_rows = (("bbox AP", "bbox_AP"), ("bbox AP50", "bbox_AP50"))
    draw_order = 20

    def check_data(self, meta) -> None:
        if not meta.det_classes:
            raise ValueError("the det task needs detection classes in the data set")

    def collate(self, samples) -> dict[str, torch.Tensor]:
        b, m = len(samples), max([len(s.boxes) for s in samples] + [1])
        boxes = torch.zeros(b, m, 4)
        labels = torch.full((b, m), -1, dtype=torch.long)  # -1 = padding
        for i, s in enumerate(samples):
            n = len(s.boxes)
            if n:
                boxes[i, :n] = torch.from_numpy(s.boxes)
                labels[i, :n] = torch.from_numpy(s.labels)
        return {"boxes": boxes, "labels": labels}

    def calibration_items(self, sample, meta) -> set[str]:
        items = {f"det:{meta.det_classes[int(label)]}" for label in sample.labels} if sample.has_det else set()
        if len(sample.labels):
            items.add("task:det")
        return items

    def loss_weight(self, cfg) -> float:
        return cfg.det

    def build_head(self, meta, spec: HeadSpec) -> nn.Module:
        return DetectionHead(spec.neck_channels, spec.head_channels, len(meta.det_classes),
                             num_levels=spec.num_levels, share_levels=spec.share_levels, bins=spec.box_bins)

    def forward(self, head, feats: Features, out) -> dict[str, torch.Tensor]:
        shapes = [(int(p.shape[2]), int(p.shape[3])) for p in feats.head_levels]
        points, strides = anchor_points(shapes, feats.strides, feats.images.device)
        cls, box = head(feats.head_levels)
        return {"cls": cls, "box": box, "points": points, "strides": strides}

    def outputs(self, model) -> list[OutputDef]:
        return [OutputDef("boxes", "B,A,4", "xyxy box per anchor in input pixels (grid and stride applied in-graph)",
                          per_anchor=True, float_tail=True),
                OutputDef("scores", "B,A,C", "per-class probability (sigmoid) per anchor; decode with a threshold + "
                          "class-aware NMS", per_anchor=True, labels="labels.det")]

    def deploy(self, model, out, images) -> list[torch.Tensor]:
        """Boxes decoded in-graph with rank-3 tensors and [1, A, 1] constants only.

        Same values as ``distances_to_pixels`` / ``distances_to_boxes``, written so converters see no rank-4
        broadcasting (onnx2tf mis-transposes those) and every op is a GPU-delegate builtin.
        xyxy = (cx, cy, cx, cy) + softplus(raw) * stride * (-1, -1, 1, 1): one mul + add on the head (onnx2tf
        1.28 mis-converts `constant - tensor` and transposes the concatenated result). softplus as
        relu(x) + log(1 + exp(-|x|)): same value, but exp/log only see [-inf, 0] / [1, 2], which int8 PTQ can
        represent (exp of raw logits saturates an int8 range and broke boxes). Bin distributions (DFL) decode
        as softmax + weighted sum on a rank-3 view (``distribution_mean``). Boxes are clipped to the
        (square, letterboxed) input canvas, which also bounds their int8 range.
        """
        points = out["points"][None]  # [1, A, 2]
        strides = out["strides"][None, :, None]  # [1, A, 1]
        raw = out["box"]
        bins = model.heads[self.name].bins
        if not bins:
            dist = torch.relu(raw) + torch.log(1.0 + torch.exp(-torch.abs(raw)))
        else:
            dist = distribution_mean(raw, bins)
        signed = torch.cat([-strides, -strides, strides, strides], dim=-1)  # [1, A, 4]
        boxes = (points.repeat(1, 1, 2) + dist * signed).clamp(0.0, float(max(images.shape[-2:])))
        return [boxes, out["cls"].sigmoid()]

    def loss(self, out, batch, context, meta, cfg) -> tuple[torch.Tensor, dict[str, float]]:
        dev = out["cls"].device
        has_det = batch["has_det"].to(dev)
        cls_logits, raw_box = out["cls"][has_det], out["box"][has_det]
        points, strides = out["points"], out["strides"]
        gt_boxes, gt_labels = batch["boxes"].to(dev)[has_det], batch["labels"].to(dev)[has_det]
        pred_boxes = distances_to_boxes(distances_to_pixels(raw_box, strides), points)
        assign = task_aligned_assign(cls_logits.detach().sigmoid(), pred_boxes.detach(), points, gt_labels, gt_boxes)
        context.update(assign=assign, has_det=has_det)
        norm = assign.target_scores.sum().clamp(min=1.0)
        # optional class-balanced weights (data.class_balance)
        weights = torch.tensor(meta.det_class_weights, dtype=torch.float32, device=dev) if meta.det_class_weights else None
        cls = quality_focal_loss(cls_logits, assign.target_scores, class_weights=weights) / norm
        fg = assign.fg
        quality = assign.target_scores.sum(-1)[fg]
        box = iou_loss(pred_boxes[fg], assign.target_boxes[fg], quality, cfg.box_iou) / norm
        det = cls + cfg.box * box
        logs = {"cls": float(cls.detach()), "box": float(box.detach()), "num_fg": float(fg.sum())}
        if raw_box.shape[-1] > 4:  # distances regressed as distributions: DFL towards the target edges
            fg_points, fg_strides = points.expand(fg.shape[0], -1, -1)[fg], strides.expand(fg.shape[0], -1)[fg]
            target = torch.cat([fg_points - assign.target_boxes[fg][:, :2], assign.target_boxes[fg][:, 2:] - fg_points],
                               -1) / fg_strides[:, None]
            dfl = distribution_focal_loss(raw_box[fg], target, quality) / norm
            det = det + cfg.dfl * dfl
            logs["dfl"] = float(dfl.detach())
        return det, logs

    def decode(self, outputs, index, result, scale, shape, opts: DecodeOptions) -> None:
        if "detections" in outputs:  # exported with in-graph NMS
            det = decode_nms_outputs(outputs["detections"][index], outputs["num_detections"][index],
                                     conf=opts.conf, max_det=opts.max_det)
        elif "boxes" in outputs:
            det = decode_detections(outputs["boxes"][index], outputs["scores"][index], conf=opts.conf,
                                    iou=opts.iou, max_det=opts.max_det, multi_label=opts.multi_label)
        else:
            return
        result[self.name] = det.scaled(scale)

    def evaluator(self, meta, source) -> TaskEvaluator | None:
        path = getattr(source, "instances_path", None)
        if path is None:
            return None

        def entries(sample, prediction) -> list[dict]:
            det = prediction.detections
            return detections_to_coco(sample.image_id, det, meta)[0] if det is not None else []

        return CocoResultsEvaluator(path, entries, coco_bbox_metrics)

    def draw(self, canvas: np.ndarray, prediction, meta) -> np.ndarray:
        from PIL import Image, ImageDraw

        from ..infer.visualize import palette

        det = prediction.detections
        if det is None or not len(det):
            return canvas
        image = Image.fromarray(canvas)
        draw = ImageDraw.Draw(image)
        colors = palette(len(meta.det_classes))
        for i in range(len(det)):
            label = int(det.labels[i])
            color = tuple(int(c) for c in colors[label % len(colors)])
            x0, y0, x1, y1 = (float(v) for v in det.boxes[i])
            draw.rectangle([x0, y0, x1, y1], outline=color, width=2)
            name = meta.det_classes[label] if label < len(meta.det_classes) else "?"
            text = f"{name} {det.scores[i]:.2f}"
            tw = draw.textlength(text)
            draw.rectangle([x0, max(0, y0 - 11), x0 + tw + 4, max(11, y0)], fill=color)
            draw.text((x0 + 2, max(0, y0 - 11)), text, fill=(0, 0, 0))
        return np.asarray(image)
