"""Instance masks: a prototype-mask head (YOLACT / YOLO-seg) on the detection anchors, trained from instance
outlines (COCO polygons / RLE, crowds ignored) or, for sources with only boxes and semantic maps, from the
box-constrained semantic target (``loss.inst_weak``, see ``mtnet.losses.instance``); COCO ``segm`` AP.

Deploy outputs: ``mask_coefs`` [B, A, P] per anchor (with ``--nms`` the kept rows, like ``keypoints``) and
``protos`` [B, P, H/4, W/4]; ``mtnet.decode_masks`` assembles the masks of the kept detections in NumPy for every
backend, so the graph holds no per-object ops.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import ConfigError
from ..data.sample import IGNORE_INDEX, MAX_OBJECTS
from ..decode_masks import assemble_masks, unletterbox_masks
from ..eval.instance import coco_segm_metrics, has_instance_outlines, masks_to_coco
from ..losses.instance import full_targets, mask_loss, to_grid, weak_targets
from ..models.heads.instance import InstanceMaskHead
from . import register_task
from .base import CocoResultsEvaluator, DecodeOptions, Features, HeadSpec, OutputDef, Task, TaskEvaluator

NUM_PROTOS = 16  # prototype maps (YOLACT/YOLOv8-seg use 32 for 80 COCO classes; 16 keeps the stride-4 map cheap)
WEAK_MODES = ("box_semantic", "off")  # loss.inst_weak: images with a semantic map but no outlines
MASK_ALPHA = 0.5


@register_task
class InstanceTask(Task):
    name = "inst"
    # YOLOv8-seg weighs its mask loss like the box loss (7.5 against 0.5 for classes); weight 1 left person
    # masks short of their limbs (docs/benchmarks.md#instance-masks)
    default_loss_weight = 8.0
    requires = ("det",)
    uses_c2 = True
    uses_objects = True
    loss_logs = ("mask",)
    metric_keys = ("segm_AP", "segm_AP50")
    gated_metric = "segm_AP50"
    fitness_metric = "segm_AP"
    summary_rows = (("mask AP", "segm_AP"), ("mask AP50", "segm_AP50"))
    draw_order = 15  # over the semantic overlay, under boxes and skeletons

    def check_data(self, meta) -> None:
        if not meta.det_classes:
            raise ValueError("the inst task needs detection classes in the data set")

    def labelled(self, sample) -> bool:
        """Outlined objects (full supervision), or a semantic map to derive weak targets from; else no loss."""
        return bool(sample.has_det and (sample.objects is not None or (sample.has_seg and sample.mask is not None)))

    def collate(self, samples) -> dict[str, torch.Tensor]:
        h, w = samples[0].image.shape[:2]
        objects = torch.full((len(samples), h, w), IGNORE_INDEX, dtype=torch.uint8)
        semantic = torch.full((len(samples), h, w), IGNORE_INDEX, dtype=torch.uint8)
        for i, s in enumerate(samples):
            if s.objects is not None:
                objects[i] = torch.from_numpy(np.ascontiguousarray(s.objects))
            elif s.has_seg and s.mask is not None:
                semantic[i] = torch.from_numpy(np.ascontiguousarray(s.mask))
        return {"objects": objects, "inst_semantic": semantic,
                "inst_full": torch.tensor([s.objects is not None for s in samples])}

    def calibration_items(self, sample, meta) -> set[str]:
        return {"task:inst"} if sample.objects is not None and len(sample.boxes) else set()

    def loss_weight(self, cfg) -> float:
        if cfg.inst_weak not in WEAK_MODES:
            raise ConfigError(f"loss.inst_weak: expected one of {list(WEAK_MODES)}, got {cfg.inst_weak!r}")
        return super().loss_weight(cfg)

    def build_head(self, meta, spec: HeadSpec) -> nn.Module:
        return InstanceMaskHead(spec.neck_channels, spec.seg_channels, spec.head_channels, NUM_PROTOS,
                                spec.num_levels, spec.share_levels)

    def forward(self, head, feats: Features, out) -> dict[str, torch.Tensor]:
        protos, coefs = head(feats.pyramid[0], feats.c2, feats.head_levels)
        return {"protos": protos, "mask_coefs": coefs}

    def outputs(self, model) -> list[OutputDef]:
        return [OutputDef("mask_coefs", "B,A,P", "per anchor, P mask coefficients: an object's mask is "
                          "sigmoid(coefficients . protos) > 0.5, cropped to its box", per_anchor=True),
                OutputDef("protos", "B,P,H/4,W/4", "P prototype masks at stride 4 (input size / 4): resize the "
                          "assembled mask logits bilinearly (half-pixel centres) to the input size")]

    def deploy(self, model, out, images) -> list[torch.Tensor]:
        return [out["mask_coefs"], out["protos"]]

    def loss(self, out, batch, context, meta, cfg) -> tuple[torch.Tensor, dict[str, float]]:
        assign, has_det = context["assign"], context["has_det"]
        coefs, protos = out["mask_coefs"][has_det], out["protos"][has_det]
        dev = coefs.device
        full = batch["inst_full"].to(dev)[has_det]
        objects, semantic = batch["objects"].to(dev)[has_det], batch["inst_semantic"].to(dev)[has_det]
        boxes, labels = batch["boxes"].to(dev)[has_det], batch["labels"].to(dev)[has_det]
        h, w = protos.shape[-2:]
        stride = objects.shape[-1] / w
        seg_of = torch.tensor([meta.seg_classes.index(n) if n in meta.seg_classes else -1 for n in meta.det_classes]
                              + [-1], device=dev)  # det label -> semantic class (-1: none; last entry for padding)
        weak = cfg.inst_weak == "box_semantic"
        total, count = coefs.sum() * 0, 0
        for b in range(len(coefs)):
            rows = assign.fg[b].nonzero()[:, 0]
            n = int((labels[b] >= 0).sum())
            if not len(rows) or not n:
                continue
            if full[b]:
                fg, lab = full_targets(objects[b], n)
                lab[MAX_OBJECTS:] = 0  # objects past the map's range have no target
            elif weak and (semantic[b] != IGNORE_INDEX).any():
                fg, lab = weak_targets(semantic[b], boxes[b, :n], seg_of[labels[b, :n]])
            else:
                continue
            target, valid = to_grid(fg, lab, h, w)
            gt = assign.gt_index[b, rows]
            value, objs = mask_loss(coefs[b, rows], protos[b], target[gt], valid[gt], boxes[b, gt], stride, cfg.inst_dice)
            total, count = total + value, count + objs
        loss = total / max(count, 1)
        return loss, {"mask": float(loss.detach())}

    def decode(self, outputs, index, result, scale, shape, opts: DecodeOptions) -> None:
        det = result.get("det")
        if det is None or det.index is None or "mask_coefs" not in outputs:
            return
        coefs = np.asarray(outputs["mask_coefs"][index])[det.index]
        masks = assemble_masks(coefs, outputs["protos"][index], det.boxes * scale, opts.imgsz)
        result[self.name] = unletterbox_masks(masks, scale, shape)

    def evaluator(self, meta, source) -> TaskEvaluator | None:
        path = getattr(source, "instances_path", None)
        if path is None or not has_instance_outlines(path):
            return None

        def entries(sample, prediction) -> list[dict]:
            det, masks = prediction.detections, prediction.results.get(self.name)
            return masks_to_coco(sample.image_id, det, masks, meta) if det is not None and masks is not None else []

        return CocoResultsEvaluator(path, entries, coco_segm_metrics)

    def draw(self, canvas: np.ndarray, prediction, meta) -> np.ndarray:
        from ..infer.visualize import palette

        det, masks = prediction.detections, prediction.results.get(self.name)
        if det is None or masks is None or not len(det):
            return canvas
        out = canvas.astype(np.float32)
        colors = palette(len(meta.det_classes)).astype(np.float32)
        for i in np.argsort(-det.scores)[::-1]:  # the best detection drawn last (on top)
            m = masks[i]
            out[m] = (1 - MASK_ALPHA) * out[m] + MASK_ALPHA * colors[int(det.labels[i]) % len(colors)]
        return out.clip(0, 255).astype(np.uint8)
