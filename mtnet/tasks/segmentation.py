"""Semantic segmentation: a dense head on the stride-8 level refined with the stride-4 lateral; cross-entropy
with 255 = ignore (an image without a mask adds no loss); logits at stride 4 or an in-graph argmax; mIoU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.sample import IGNORE_INDEX
from ..decode import decode_segmentation, unletterbox_mask
from ..eval.segmentation import ConfusionMatrix
from ..losses.segmentation import segmentation_loss
from ..models.heads.segmentation import SegmentationHead
from . import register_task
from .base import DecodeOptions, Features, HeadSpec, OutputDef, Task, TaskEvaluator

OVERLAY_ALPHA = 0.45


class SegmentationEvaluator(TaskEvaluator):
    def __init__(self, names: list[str]):
        self.names = names
        self.confusion = ConfusionMatrix(len(names))

    def update(self, sample, prediction) -> None:
        if prediction.seg is not None and sample.mask is not None:
            self.confusion.update(prediction.seg, sample.mask)

    def result(self) -> dict[str, Any]:
        return self.confusion.summary(self.names) if self.confusion.matrix.any() else {}


@register_task
class SegmentationTask(Task):
    name = "seg"
    uses_c2 = True
    loss_logs = ("seg",)
    metric_keys = ("mIoU",)
    gated_metric = "mIoU"
    fitness_metric = "mIoU"
    summary_rows = (("mIoU", "mIoU"), ("pixel accuracy", "pixel_acc"))
    draw_order = 10

    def check_data(self, meta) -> None:
        if not meta.seg_classes:
            raise ValueError("the seg task needs segmentation classes in the data set")

    def collate(self, samples) -> dict[str, torch.Tensor]:
        h, w = samples[0].image.shape[:2]
        masks = torch.full((len(samples), h, w), IGNORE_INDEX, dtype=torch.long)
        for i, s in enumerate(samples):
            if s.mask is not None and s.has_seg:
                masks[i] = torch.from_numpy(s.mask.astype(np.int64))
        return {"masks": masks}

    def calibration_items(self, sample, meta) -> set[str]:
        if sample.mask is None:
            return set()
        labels = np.unique(sample.mask)
        items = {f"seg:{meta.seg_classes[int(v)]}" for v in labels if v < len(meta.seg_classes)}
        return items | {"task:seg"} if len(labels) else items

    def loss_weight(self, cfg) -> float:
        return cfg.seg

    def build_head(self, meta, spec: HeadSpec) -> nn.Module:
        return SegmentationHead(spec.neck_channels, spec.seg_channels, len(meta.seg_classes))

    def forward(self, head, feats: Features, out) -> dict[str, torch.Tensor]:
        return {"seg": head(feats.pyramid[0], feats.c2)}

    def outputs(self, model) -> list[OutputDef]:
        if model.seg_output == "argmax":
            return [OutputDef("seg", "B,H,W", "per-pixel class label at input size", labels="labels.seg",
                              labels_kind="value")]
        return [OutputDef("seg", "B,S,H,W", "per-class segmentation logits at stride 4 (input size / 4): resize "
                          "bilinearly (half-pixel centres) to the input size or your view, then argmax",
                          labels="labels.seg")]

    def deploy(self, model, out, images) -> list[torch.Tensor]:
        """Logits stay at stride 4 (upsampling S channels to the input in-graph costs more than the pose head);
        ``seg_output = "argmax"`` upsamples and argmaxes in-graph instead."""
        seg = out["seg"]
        if model.seg_output == "argmax":
            seg = nn.functional.interpolate(seg, size=images.shape[-2:], mode="bilinear", align_corners=False)
            seg = seg.argmax(1).to(torch.int32)
        return [seg]

    def loss(self, out, batch, context, meta, cfg) -> tuple[torch.Tensor, dict[str, float]]:
        has = batch["has_seg"].to(out["seg"].device)
        if has.any():
            seg = segmentation_loss(out["seg"][has], batch["masks"].to(out["seg"].device)[has], cfg.seg_resolution)
        else:
            seg = out["seg"].sum() * 0
        return seg, {"seg": float(seg.detach())}

    def decode(self, outputs, index, result, scale, shape, opts: DecodeOptions) -> None:
        if "seg" in outputs:
            result[self.name] = unletterbox_mask(decode_segmentation(outputs["seg"][index], opts.imgsz), scale, shape)

    def evaluator(self, meta, source) -> TaskEvaluator | None:
        return SegmentationEvaluator(meta.seg_classes) if meta.seg_classes else None

    def draw(self, canvas: np.ndarray, prediction, meta) -> np.ndarray:
        from ..infer.visualize import palette

        if prediction.seg is None or not meta.seg_classes:
            return canvas
        out = canvas.astype(np.float32)
        colors = palette(len(meta.seg_classes)).astype(np.float32)
        valid = prediction.seg < len(colors)
        out[valid] = (1 - OVERLAY_ALPHA) * out[valid] + OVERLAY_ALPHA * colors[prediction.seg[valid]]
        return out.clip(0, 255).astype(np.uint8)
