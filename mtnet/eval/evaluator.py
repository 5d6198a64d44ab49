"""Evaluate any ``Predictor`` (any backend) on a COCO-format split: bbox AP, keypoint OKS-AP, mIoU."""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from ..data.coco import CocoSource
from ..data.preprocess import letterbox
from ..infer.predictor import Predictor
from .coco import coco_bbox_metrics, coco_keypoint_metrics, detections_to_coco
from .segmentation import ConfusionMatrix

METRIC_KEYS = ("bbox_AP", "bbox_AP50", "kpt_AP", "kpt_AP50", "mIoU")


def evaluate(predictor: Predictor, source: CocoSource, *, batch_size: int = 16, progress: bool = True) -> dict:
    """Run the predictor over every image of ``source`` and score it with COCO's evaluators.

    Uses the predictor's thresholds; for mAP pass a predictor with ``conf=0.001, multi_label=True``.
    """
    meta = predictor.meta
    seg_names = meta.seg_classes
    confusion = ConfusionMatrix(len(seg_names)) if seg_names else None
    box_results: list[dict] = []
    kpt_results: list[dict] = []
    has_det = has_kpt = has_seg = False
    start = time.perf_counter()
    indices = list(range(len(source)))
    bar = tqdm(total=len(indices), desc="eval", disable=not progress, leave=False)
    for s in range(0, len(indices), batch_size):
        samples = [source.load(i) for i in indices[s : s + batch_size]]
        boxed = [letterbox(x.image, predictor.imgsz) for x in samples]
        preds = predictor.predict_letterboxed(np.stack([b[0] for b in boxed]), [b[2] for b in boxed],
                                              [x.image.shape[:2] for x in samples])
        for sample, pred in zip(samples, preds, strict=True):
            if pred.detections is not None:
                has_det = True
                has_kpt = has_kpt or pred.detections.keypoints is not None
                b, k = detections_to_coco(sample.image_id, pred.detections, meta)
                box_results += b
                kpt_results += k
            if pred.seg is not None and confusion is not None and sample.mask is not None:
                has_seg = True
                confusion.update(pred.seg, sample.mask)
        bar.update(len(samples))
    bar.close()
    metrics: dict = {}
    if has_det and source.instances_path is not None:
        metrics.update(coco_bbox_metrics(source.instances_path, box_results))
    if has_kpt and source.keypoints_path is not None:
        metrics.update(coco_keypoint_metrics(source.keypoints_path, kpt_results, meta.keypoint_sigmas))
    if has_seg and confusion is not None:
        metrics.update(confusion.summary(seg_names))
    metrics["num_images"] = len(indices)
    metrics["eval_s"] = time.perf_counter() - start
    return metrics
