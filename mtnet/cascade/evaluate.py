"""Fine-grained evaluation: COCO box AP of any predictor with ``predict(images)`` and a ``meta`` whose
category ids are fine ids (a ``Cascade``, or a single detector trained on the fine classes) against a
fine instances json; and their per-image latency, measured interleaved on the same images."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..eval.coco import coco_bbox_metrics, detections_to_coco


def fine_box_metrics(predictor, source, gt_path: str | Path, *, batch_size: int = 16, progress: bool = True) -> dict[str, float]:
    """COCO box AP of ``predictor`` on every image of ``source`` against ``gt_path`` (fine categories)."""
    results: list[dict] = []
    for s in tqdm(range(0, len(source), batch_size), desc="fine eval", disable=not progress, leave=False):
        samples = [source.load(i) for i in range(s, min(s + batch_size, len(source)))]
        for sample, pred in zip(samples, predictor.predict([x.image for x in samples]), strict=True):
            results += detections_to_coco(sample.image_id, pred.detections, predictor.meta)[0]
    return coco_bbox_metrics(gt_path, results)


def interleaved_latency(predictors: dict[str, Any], images: list, *, warmup: int = 5, rounds: int = 1) -> dict[str, Any]:
    """Median seconds per image of each predictor, timed one image at a time in turn (A, B, A, B, ...) so
    a shared machine's load shifts hit all of them alike; a ``Cascade`` also gets its stage split and
    crops per image."""
    for p in predictors.values():
        for im in images[:warmup]:
            p.predict([im])
        if hasattr(p, "timing"):
            p.timing.__init__()
    times: dict[str, list[float]] = {k: [] for k in predictors}
    for _ in range(rounds):
        for im in images:
            for name, p in predictors.items():
                t0 = time.perf_counter()
                p.predict([im])
                times[name].append(time.perf_counter() - t0)
    out: dict[str, Any] = {name: {"median_ms": 1e3 * statistics.median(t), "mean_ms": 1e3 * statistics.fmean(t)}
                           for name, t in times.items()}
    for name, p in predictors.items():
        t = getattr(p, "timing", None)
        if t is not None and t.images:
            per_crop = 1e3 * t.classifier_s / t.crops if t.crops else 0.0
            out[name] |= {"detector_ms": 1e3 * t.detector_s / t.images, "classifier_ms_per_crop": per_crop,
                          "crops_per_image": t.crops / t.images}
            out[name]["formula_ms"] = out[name]["detector_ms"] + per_crop * out[name]["crops_per_image"]
    return out
