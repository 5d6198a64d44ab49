"""Evaluate any ``Predictor`` (any backend) on a split: every task of the model scores itself (COCO box AP,
keypoint OKS-AP, mIoU for the built-in tasks) through its ``Task.evaluator``."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data.preprocess import letterbox
from ..infer.predictor import Predictor


def evaluate(predictor: Predictor, source: Any, *, batch_size: int = 16, progress: bool = True) -> dict:
    """Run the predictor over every image of ``source`` and score each task whose ground truth it has.

    Uses the predictor's thresholds; for mAP pass a predictor with ``conf=0.001, multi_label=True``.
    """
    evaluators = {t.name: e for t in predictor.task_set if (e := t.evaluator(predictor.meta, source)) is not None}
    start = time.perf_counter()
    indices = list(range(len(source)))
    bar = tqdm(total=len(indices), desc="eval", disable=not progress, leave=False)
    for s in range(0, len(indices), batch_size):
        samples = [source.load(i) for i in indices[s : s + batch_size]]
        boxed = [letterbox(x.image, predictor.imgsz) for x in samples]
        preds = predictor.predict_letterboxed(np.stack([b[0] for b in boxed]), [b[2] for b in boxed],
                                              [x.image.shape[:2] for x in samples])
        for sample, pred in zip(samples, preds, strict=True):
            for ev in evaluators.values():
                ev.update(sample, pred)
        bar.update(len(samples))
    bar.close()
    metrics: dict = {}
    for ev in evaluators.values():
        metrics.update(ev.result())
    metrics["num_images"] = len(indices)
    metrics["eval_s"] = time.perf_counter() - start
    return metrics
