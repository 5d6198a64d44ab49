"""Detector detections + classifier probabilities -> fine-grained detections. NumPy only: the ``Cascade``
predictor and the Triton ``assemble`` step run this one implementation, so both give the same labels.

Detections of a coarse class with sub-types take the classifier's fine class, with score = detector
score x class probability; a crop whose most likely class is ``background`` is dropped (the classifier
was trained on the detector's false positives). With ``multi_label`` (what mAP wants, as for
``Predictor``) a detection is kept once per fine class whose combined score passes ``conf``. Detections
of classes without sub-types keep box and score under their fine id (equal to the coarse id); classes
outside the fine label space are dropped.
"""

from __future__ import annotations

import numpy as np

from ..data.fine import FineLabels
from ..decode import Detections


class Relabeler:
    def __init__(self, fine: FineLabels, coarse_category_ids: list[int], *, conf: float, multi_label: bool):
        self.fine, self.conf, self.multi_label = fine, conf, multi_label
        fine_index = {f: i for i, f in enumerate(fine.fine_ids)}
        split = set(fine.split_coarse)
        # coarse label -> fine label for classes without sub-types (-1: not a fine class; -2: classify)
        self.direct = np.array([-2 if c in split else fine_index.get(c, -1) for c in coarse_category_ids], np.int64)
        self.classifier_fine = np.array([fine_index[f] for f in fine.classifier_ids], np.int64)

    def to_classify(self, det: Detections) -> np.ndarray:
        """Indices of the detections the classifier must see (their crops, in this order)."""
        return np.nonzero(self.direct[det.labels] == -2)[0] if len(det) else np.zeros(0, np.int64)

    def apply(self, det: Detections, probs: np.ndarray | None) -> Detections:
        """Fine detections (labels index ``fine.fine_ids``), by descending score; ``probs`` [K, C] are the
        classifier's outputs for ``to_classify(det)``, background last (None when there is nothing to classify)."""
        direct = self.direct[det.labels] if len(det) else np.zeros(0, np.int64)
        idx = np.nonzero(direct == -2)[0]
        if not len(idx):  # nothing re-labelled: the detector's order (descending score) stands
            keep = np.nonzero(direct >= 0)[0]
            return Detections(det.boxes[keep].reshape(-1, 4), det.scores[keep].astype(np.float32), direct[keep],
                              None, None if det.index is None else det.index[keep])
        keep = np.nonzero(direct >= 0)[0]
        sub = probs[:, :-1]
        if self.multi_label:
            r, c = np.nonzero(det.scores[idx, None] * sub > self.conf)
        else:
            r = np.nonzero(probs.argmax(1) < sub.shape[1])[0]
            c = sub[r].argmax(1)
        combined = (det.scores[idx][r] * sub[r, c]).astype(np.float32)
        ok = combined > self.conf
        rows = np.concatenate([keep, idx[r[ok]]])
        labels = np.concatenate([direct[keep], self.classifier_fine[c[ok]]])
        scores = np.concatenate([det.scores[keep].astype(np.float32), combined[ok]])
        order = np.argsort(-scores, kind="stable")
        rows = rows[order]
        return Detections(det.boxes[rows].reshape(-1, 4), scores[order], labels[order].astype(np.int64), None,
                          None if det.index is None else det.index[rows])
