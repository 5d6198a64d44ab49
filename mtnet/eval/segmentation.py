"""Semantic segmentation metrics from an accumulated confusion matrix (mIoU, per-class IoU, pixel acc)."""

from __future__ import annotations

import numpy as np

from ..data.sample import IGNORE_INDEX


class ConfusionMatrix:
    def __init__(self, num_classes: int):
        self.n = num_classes
        self.matrix = np.zeros((num_classes, num_classes), np.int64)  # rows: ground truth, cols: prediction

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        valid = (gt != IGNORE_INDEX) & (gt < self.n)
        idx = gt[valid].astype(np.int64) * self.n + np.minimum(pred[valid].astype(np.int64), self.n - 1)
        self.matrix += np.bincount(idx, minlength=self.n * self.n).reshape(self.n, self.n)

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for classes absent from both ground truth and predictions."""
        tp = np.diag(self.matrix).astype(np.float64)
        denom = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, tp / denom, np.nan)

    def summary(self, names: list[str]) -> dict:
        iou = self.iou()
        total = self.matrix.sum()
        return {
            "mIoU": float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0,
            "per_class_IoU": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, iou, strict=True)},
            "pixel_acc": float(np.diag(self.matrix).sum() / total) if total else 0.0,
        }
