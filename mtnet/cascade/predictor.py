"""``Cascade``: a detector ``Predictor`` followed by the crop classifier, with ``Predictor``'s API
(``meta``, ``imgsz``, ``tasks``, ``predict(images)`` -> ``Prediction`` list with fine-grained labels).

Detections of a coarse class with sub-types are cropped from the *original* image
(``mtnet.cascade.crops``) and re-labelled by the classifier (``mtnet.cascade.relabel``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.meta import DatasetMeta
from ..errors import UserError
from ..infer.predictor import Prediction, Predictor
from .crops import crop_boxes
from .relabel import Relabeler


@dataclass
class CascadeTiming:
    """Per-call stage times (latency = detector + classifier x crops per image)."""

    detector_s: list[float] = field(default_factory=list)  # per ``predict`` call
    classifier_s: list[float] = field(default_factory=list)  # per image that had crops
    crops_per_call: list[int] = field(default_factory=list)  # per image (0 included)
    images: int = 0

    @property
    def crops(self) -> int:
        return sum(self.crops_per_call)


class Cascade:
    """``detector``: a ``Predictor`` of the coarse classes; ``classifier``: a backend of
    ``mtnet.cascade.backends`` (``.pt``, ``.onnx``, ``.tflite``). ``conf`` / ``multi_label`` default to
    the detector's and apply to the combined scores."""

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
        self.relabeler = Relabeler(self.fine, coarse_ids, conf=self.conf, multi_label=self.multi_label)
        self.meta = DatasetMeta(det_classes=list(self.fine.fine_names), det_category_ids=list(self.fine.fine_ids))
        self.imgsz, self.tasks, self.task_set = detector.imgsz, ["det"], detector.task_set
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
        t0 = time.perf_counter()
        preds = self.detector.predict(images)
        self.timing.detector_s.append(time.perf_counter() - t0)
        self.timing.images += len(images)
        return [self.refine(image, pred) for image, pred in zip(images, preds, strict=True)]

    def refine(self, image: np.ndarray, pred: Prediction) -> Prediction:
        """Re-label one detector ``Prediction`` of ``image`` with the classifier."""
        det = pred.detections
        idx = self.relabeler.to_classify(det)
        self.timing.crops_per_call.append(len(idx))
        probs = None
        if len(idx):
            t0 = time.perf_counter()
            probs = self.classifier(crop_boxes(image, det.boxes[idx], self.classifier.size, self.classifier.context))
            self.timing.classifier_s.append(time.perf_counter() - t0)
        return Prediction(pred.image_shape, {**pred.results, "det": self.relabeler.apply(det, probs)})
