"""Inference API: a ``Predictor`` over interchangeable backends that share one preprocessing and one decoder.

Backends take a uint8 NHWC batch of letterboxed images and return the deploy-mode outputs by name
(see ``mtnet.models.multitask``); everything else — letterbox, normalisation, decoding, mapping back to
original pixels — lives here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ..data.meta import DatasetMeta
from ..data.preprocess import letterbox, normalize
from ..decode import NMS_IOU, Detections
from ..tasks import DecodeOptions, resolve_tasks
from .tta import TTAConfig, predict_tta


class Backend(Protocol):
    imgsz: int
    meta: DatasetMeta
    tasks: list[str]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 [B, S, S, 3] letterboxed RGB -> {"boxes", "scores", "keypoints", "seg"} (present tasks only),
        or, for a graph exported with ``--nms``, {"detections", "num_detections", "keypoints", "seg"}."""
        ...


class TorchBackend:
    """Runs a ``MultiTaskNet`` in deploy mode."""

    def __init__(self, model: torch.nn.Module, imgsz: int, device: str | torch.device = "cpu"):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.imgsz = imgsz
        self.meta: DatasetMeta = model.meta
        self.tasks: list[str] = list(model.tasks)

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = normalize(torch.from_numpy(np.ascontiguousarray(images)).to(self.device))
        was = self.model.deploy
        self.model.deploy = True
        try:
            outs = self.model(x)
        finally:
            self.model.deploy = was
        return {n: o.cpu().numpy() for n, o in zip(self.model.output_names(), outs, strict=True)}


@dataclass
class Prediction:
    """One image's results in its own pixels: ``results[task]`` for every task of the model."""

    image_shape: tuple[int, int]
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def detections(self) -> Detections | None:
        """Boxes, scores, labels (and keypoints, with the pose task) after NMS."""
        return self.results.get("det")

    @property
    def seg(self) -> np.ndarray | None:
        """[H, W] uint8 class labels."""
        return self.results.get("seg")


class Predictor:
    def __init__(self, backend: Backend, *, conf: float = 0.25, iou: float = NMS_IOU, max_det: int = 100,
                 multi_label: bool = False, tta: bool | TTAConfig = False):
        """``tta``: also run a mirrored and a rescaled view of every image and merge them (``mtnet.infer.tta``;
        ``True`` = ``TTAConfig()``): a few points of accuracy for about three times the inference time."""
        self.backend = backend
        self.tta = TTAConfig() if tta is True else (tta or None)
        self.meta = backend.meta
        self.imgsz = backend.imgsz
        self.conf, self.iou, self.max_det, self.multi_label = conf, iou, max_det, multi_label
        self.task_set = resolve_tasks(backend.tasks)
        self.tasks = self.task_set.names

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **kwargs) -> Predictor:
        from ..checkpoint_io import load_model_from_checkpoint

        model, cfg = load_model_from_checkpoint(path, device=device)
        return cls(TorchBackend(model, cfg.data.imgsz, device), **kwargs)

    @classmethod
    def from_path(cls, path: str | Path, device: str = "cpu", **kwargs) -> Predictor:
        """A checkpoint (``.pt``) or, once export is installed, an exported model (``.onnx`` / ``.tflite``)."""
        suffix = Path(path).suffix
        if suffix == ".pt":
            return cls.from_checkpoint(path, device, **kwargs)
        from . import backends  # optional backends live in their own module (heavy imports)

        return cls(backends.load_backend(path), **kwargs)

    def predict_letterboxed(self, batch: np.ndarray, scales: list[float], shapes: list[tuple[int, int]]) -> list[Prediction]:
        if self.tta is not None:
            return predict_tta(self, batch, scales, shapes, self.tta)
        outs = self.backend(batch)
        opts = DecodeOptions(self.conf, self.iou, self.max_det, self.multi_label, self.imgsz)
        results = []
        for i, (scale, shape) in enumerate(zip(scales, shapes, strict=True)):
            pred = Prediction(shape)
            for task in self.task_set:
                task.decode(outs, i, pred.results, scale, shape, opts)
            results.append(pred)
        return results

    def predict(self, images: list[np.ndarray]) -> list[Prediction]:
        """RGB uint8 images of any size -> predictions in their own pixel coordinates."""
        boxed = [letterbox(im, self.imgsz) for im in images]
        batch = np.stack([b[0] for b in boxed])
        return self.predict_letterboxed(batch, [b[2] for b in boxed], [im.shape[:2] for im in images])

