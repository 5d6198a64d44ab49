"""The classifier's training crops: ground-truth boxes with their fine labels (plus jittered copies), and
the detector's own detections of the sub-typed classes: those on an object take its fine label, those on
nothing (false positives) are hard negatives of class ``background``.

Why the detections: at run time the classifier sees the detector's boxes, not ground truth: shifted,
too large or too small, and sometimes on no object at all. Training on them teaches it those boxes, and
the background class lets the cascade drop the detector's false positives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ..data.coco import CocoSource
from ..data.fine import FineLabels
from ..infer.predictor import Predictor
from .crops import crop_boxes


@dataclass
class CropSet:
    crops: np.ndarray  # uint8 [N, S, S, 3]
    labels: np.ndarray  # int64 [N], classifier labels (last = background)
    kinds: np.ndarray  # int8 [N]: 0 ground truth, 1 jittered ground truth, 2 detection on an object, 3 hard negative

    def counts(self) -> dict[str, int]:
        names = ("gt", "gt_jitter", "det_positive", "hard_negative")
        return {n: int((self.kinds == i).sum()) for i, n in enumerate(names)}


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes [N, 4] x [M, 4]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def _jittered(rng: np.random.Generator, box: np.ndarray, amount: float) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    return box + rng.uniform(-amount, amount, 4) * np.array([w, h, w, h], np.float32)


def build_crop_set(source: CocoSource, fine: FineLabels, size: int, *, detector: Predictor | None = None,
                   context: float = 0.1, pos_iou: float = 0.5, neg_iou: float = 0.3, negatives_per_image: int = 8,
                   jitter: float = 0.1, jitter_copies: int = 0, seed: int = 0, progress: bool = True) -> CropSet:
    """Crops of every image of ``source`` (a COCO split read with its *fine* categories). Hard negatives are
    the detector's highest-scoring false positives, at most ``negatives_per_image`` per image."""
    rng = np.random.default_rng(seed)
    label_of = {f: i for i, f in enumerate(fine.classifier_ids)}
    background = len(label_of)
    split_coarse = set(fine.split_coarse)
    det_split = None
    if detector is not None:
        det_split = {i for i, c in enumerate(detector.meta.det_category_ids) if c in split_coarse}
    crops, labels, kinds = [], [], []
    for index in tqdm(range(len(source)), desc="crops", disable=not progress, leave=False):
        sample = source.load(index)
        ids = np.array([source.meta.det_category_ids[int(lb)] for lb in sample.labels], np.int64)
        keep = np.array([i in label_of for i in ids], bool)
        gt_boxes = sample.boxes[keep].astype(np.float32)
        gt_labels = np.array([label_of[int(i)] for i in ids[keep]], np.int64)
        boxes, labs, kind = [gt_boxes], [gt_labels], [np.zeros(len(gt_boxes), np.int8)]
        for _ in range(jitter_copies):
            boxes.append(np.array([_jittered(rng, b, jitter) for b in gt_boxes], np.float32).reshape(-1, 4))
            labs.append(gt_labels)
            kind.append(np.ones(len(gt_boxes), np.int8))
        if detector is not None:
            det = detector.predict([sample.image])[0].detections
            on_split = np.array([int(lb) in det_split for lb in det.labels], bool)
            det_boxes = det.boxes[on_split].astype(np.float32)
            if len(det_boxes):
                iou = box_iou(det_boxes, gt_boxes) if len(gt_boxes) else np.zeros((len(det_boxes), 0))
                best = iou.max(1) if iou.shape[1] else np.zeros(len(det_boxes))
                pos, neg = best >= pos_iou, best < neg_iou
                neg[np.cumsum(neg) > negatives_per_image] = False  # detections come by descending score
                boxes += [det_boxes[pos], det_boxes[neg]]
                labs += [gt_labels[iou[pos].argmax(1)] if pos.any() else np.zeros(0, np.int64),
                         np.full(int(neg.sum()), background, np.int64)]
                kind += [np.full(int(pos.sum()), 2, np.int8), np.full(int(neg.sum()), 3, np.int8)]
        all_boxes = np.concatenate(boxes)
        if len(all_boxes):
            crops.append(crop_boxes(sample.image, all_boxes, size, context))
            labels.append(np.concatenate(labs))
            kinds.append(np.concatenate(kind))
    if not crops:
        return CropSet(np.zeros((0, size, size, 3), np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int8))
    return CropSet(np.concatenate(crops), np.concatenate(labels), np.concatenate(kinds))
