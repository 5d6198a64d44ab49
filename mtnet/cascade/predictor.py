"""``Cascade``: a detector ``Predictor`` followed by the crop classifier, with ``Predictor``'s API
(``meta``, ``imgsz``, ``tasks``, ``predict(images)`` -> ``Prediction`` list with fine-grained labels).

Detections of a coarse class with sub-types are cropped from the *original* image, classified, and
re-labelled with their fine class; score = detector score x classifier probability. A crop whose most
likely class is ``background`` is dropped (the classifier was trained on the detector's false
positives). With ``multi_label`` (what mAP wants, as for ``Predictor``) each detection is kept once per
fine class whose combined score passes ``conf``. Detections of classes without sub-types keep their box
and score under their fine id (which equals the coarse one); classes outside the fine label space are
dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.meta import DatasetMeta
from ..decode import Detections
from ..errors import UserError
from ..infer.predictor import Prediction, Predictor
from .crops import crop_boxes


@dataclass
class CascadeTiming:
    """Seconds spent per stage over the calls so far (latency = detector + classifier x crops)."""

    detector_s: float = 0.0
    classifier_s: float = 0.0
    images: int = 0
    crops: int = 0


class Cascade:
    def __init__(self, detector: Predictor, classifier, *, conf: float | None = None, multi_label: bool | None = None):
        self.detector, self.classifier = detector, classifier
        self.conf = detector.conf if conf is None else conf
        self.multi_label = detector.multi_label if multi_label is None else multi_label
        self.fine = classifier.fine
        coarse_ids = detector.meta.det_category_ids
        unknown = sorted(set(self.fine.split_coarse) - set(coarse_ids))
        if unknown:
            raise UserError(f"the classifier re-labels categories {unknown} that the detector does not detect "
                            f"(its categories: {coarse_ids})")
        self.meta = DatasetMeta(det_classes=list(self.fine.fine_names), det_category_ids=list(self.fine.fine_ids))
        self.imgsz, self.tasks, self.task_set = detector.imgsz, ["det"], detector.task_set
        fine_index = {f: i for i, f in enumerate(self.fine.fine_ids)}
        split = set(self.fine.split_coarse)
        # coarse label -> fine label for unsplit classes (-1: not in the fine label space); split classes: -2
        self._direct = np.array([-2 if c in split else fine_index.get(c, -1) for c in coarse_ids], np.int64)
        self._classifier_fine = np.array([fine_index[f] for f in self.fine.classifier_ids], np.int64)
        self.timing = CascadeTiming()

    @classmethod
    def from_paths(cls, detector: str | Path, classifier: str | Path, *, conf: float = 0.25, iou: float | None = None,
                   max_det: int = 100, multi_label: bool = False, threads: int = 1) -> Cascade:
        """Detector and classifier files of any backend (``.pt``, ``.onnx``, ``.tflite``)."""
        from .backends import load_classifier

        kwargs = {"conf": conf, "max_det": max_det, "multi_label": multi_label} | ({"iou": iou} if iou is not None else {})
        return cls(Predictor.from_path(detector, **kwargs), load_classifier(classifier, threads))

    def predict(self, images: list[np.ndarray]) -> list[Prediction]:
        """RGB uint8 images of any size -> predictions in their own pixels, fine-grained labels."""
        import time

        t0 = time.perf_counter()
        preds = self.detector.predict(images)
        self.timing.detector_s += time.perf_counter() - t0
        self.timing.images += len(images)
        return [self.refine(image, pred) for image, pred in zip(images, preds, strict=True)]

    def refine(self, image: np.ndarray, pred: Prediction) -> Prediction:
        """Re-label one detector ``Prediction`` of ``image`` with the classifier."""
        import time

        det = pred.detections
        direct = self._direct[det.labels] if len(det) else np.zeros(0, np.int64)
        keep = direct >= 0
        boxes, scores, labels = [det.boxes[keep]], [det.scores[keep]], [direct[keep]]
        rows = [np.nonzero(keep)[0]]
        to_classify = np.nonzero(direct == -2)[0]
        if len(to_classify):
            t0 = time.perf_counter()
            probs = self.classifier(crop_boxes(image, det.boxes[to_classify], self.classifier.size, self.classifier.context))
            self.timing.classifier_s += time.perf_counter() - t0
            self.timing.crops += len(to_classify)
            sub = probs[:, :-1]  # last column: background
            if self.multi_label:
                r, c = np.nonzero(det.scores[to_classify, None] * sub > self.conf)
            else:
                r = np.nonzero(probs.argmax(1) < sub.shape[1])[0]
                c = sub[r].argmax(1)
            combined = det.scores[to_classify][r] * sub[r, c]
            ok = combined > self.conf
            r, c = r[ok], c[ok]
            boxes.append(det.boxes[to_classify][r])
            scores.append(combined[ok].astype(np.float32))
            labels.append(self._classifier_fine[c])
            rows.append(to_classify[r])
        out = Prediction(pred.image_shape, dict(pred.results))
        order = np.argsort(-np.concatenate(scores), kind="stable")
        rows_sorted = np.concatenate(rows)[order]
        out.results["det"] = Detections(np.concatenate(boxes)[order].reshape(-1, 4), np.concatenate(scores)[order],
                                        np.concatenate(labels)[order].astype(np.int64), None,
                                        None if det.index is None else det.index[rows_sorted])
        return out
