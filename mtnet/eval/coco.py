"""COCO bbox AP and keypoint OKS-AP with faster-coco-eval (matches pycocotools' numbers, faster)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster

from ..data.meta import DatasetMeta
from ..decode import Detections


def detections_to_coco(image_id: int, det: Detections, meta: DatasetMeta) -> tuple[list[dict], list[dict]]:
    """COCO result entries (bbox, keypoints) for one image, with data-set category ids."""
    boxes, kps = [], []
    for i in range(len(det)):
        x0, y0, x1, y1 = (float(v) for v in det.boxes[i])
        label = int(det.labels[i])
        entry = {"image_id": image_id, "category_id": meta.det_category_ids[label],
                 "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                 "score": round(float(det.scores[i]), 5)}
        boxes.append(entry)
        if det.keypoints is not None and label == meta.keypoint_class:
            kp = det.keypoints[i].copy()
            flat = np.concatenate([kp[:, :2], np.ones((len(kp), 1))], 1).reshape(-1)
            kps.append({**entry, "keypoints": [round(float(v), 2) for v in flat]})
    return boxes, kps


def _quiet_eval(gt: COCO, results: list[dict], iou_type: str, sigmas: list[float] | None) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval_faster(gt, dt, iou_type, kpt_oks_sigmas=sigmas, print_function=lambda *a, **k: None)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats, np.float64)


def load_gt(path: str | Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def coco_bbox_metrics(gt_path: str | Path, results: list[dict]) -> dict[str, float]:
    if not results:
        return {"bbox_AP": 0.0, "bbox_AP50": 0.0, "bbox_AP75": 0.0}
    s = _quiet_eval(load_gt(gt_path), results, "bbox", None)
    return {"bbox_AP": float(s[0]), "bbox_AP50": float(s[1]), "bbox_AP75": float(s[2]),
            "bbox_AP_small": float(s[3]), "bbox_AP_medium": float(s[4]), "bbox_AP_large": float(s[5])}


def coco_keypoint_metrics(gt_path: str | Path, results: list[dict], sigmas: list[float]) -> dict[str, float]:
    if not results:
        return {"kpt_AP": 0.0, "kpt_AP50": 0.0, "kpt_AP75": 0.0}
    s = _quiet_eval(load_gt(gt_path), results, "keypoints", list(sigmas))
    return {"kpt_AP": float(s[0]), "kpt_AP50": float(s[1]), "kpt_AP75": float(s[2])}
