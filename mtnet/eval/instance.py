"""COCO ``segm`` AP of instance masks (faster-coco-eval), next to box AP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from faster_coco_eval.core import mask as mask_utils

from ..data.meta import DatasetMeta
from ..decode import Detections
from .coco import _quiet_eval, load_gt


def masks_to_coco(image_id: int, det: Detections, masks: np.ndarray, meta: DatasetMeta) -> list[dict]:
    """COCO ``segm`` result entries (compressed RLE) of one image's detections and their [N, H, W] masks."""
    if not len(det):
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    out = []
    for i, rle in enumerate(rles):
        rle["counts"] = rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes) else rle["counts"]
        out.append({"image_id": image_id, "category_id": meta.det_category_ids[int(det.labels[i])],
                    "segmentation": rle, "score": round(float(det.scores[i]), 5)})
    return out


def has_instance_outlines(gt_path: str | Path) -> bool:
    """Whether a COCO instances json outlines its (non-crowd) objects, i.e. can score ``segm`` AP."""
    gt = load_gt(gt_path)
    return any("segmentation" in a and not a.get("iscrowd", 0) for a in gt.dataset.get("annotations", []))


def coco_segm_metrics(gt_path: str | Path, results: list[dict]) -> dict[str, float]:
    if not results:
        return {"segm_AP": 0.0, "segm_AP50": 0.0, "segm_AP75": 0.0}
    s = _quiet_eval(load_gt(gt_path), [dict(r) for r in results], "segm", None)  # loadRes adds keys to its input
    return {"segm_AP": float(s[0]), "segm_AP50": float(s[1]), "segm_AP75": float(s[2]),
            "segm_AP_small": float(s[3]), "segm_AP_medium": float(s[4]), "segm_AP_large": float(s[5])}
