"""Inference API: a ``Predictor`` over interchangeable backends that share one preprocessing and one decoder.

Backends take a uint8 NHWC batch of letterboxed images and return the deploy-mode outputs by name
(see ``mtnet.models.multitask``); everything else — letterbox, normalisation, decoding, mapping back to
original pixels — lives here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from ..data.meta import DatasetMeta
from ..data.preprocess import letterbox, normalize
from ..decode import NMS_IOU, Detections, decode_detections, decode_nms_outputs, decode_segmentation


class Backend(Protocol):
    imgsz: int
    meta: DatasetMeta

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
    detections: Detections | None  # in original image pixels
    seg: np.ndarray | None  # [H, W] uint8 labels at original size
    image_shape: tuple[int, int]


class Predictor:
    def __init__(self, backend: Backend, *, conf: float = 0.25, iou: float = NMS_IOU, max_det: int = 100,
                 multi_label: bool = False):
        self.backend = backend
        self.meta = backend.meta
        self.imgsz = backend.imgsz
        self.conf, self.iou, self.max_det, self.multi_label = conf, iou, max_det, multi_label

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
        outs = self.backend(batch)
        results = []
        for i, (scale, shape) in enumerate(zip(scales, shapes, strict=True)):
            det = None
            kp = outs["keypoints"][i] if "keypoints" in outs else None
            if "detections" in outs:  # exported with in-graph NMS
                det = decode_nms_outputs(outs["detections"][i], outs["num_detections"][i], kp, conf=self.conf,
                                         max_det=self.max_det).scaled(scale)
            elif "boxes" in outs:
                det = decode_detections(outs["boxes"][i], outs["scores"][i], kp, conf=self.conf, iou=self.iou,
                                        max_det=self.max_det, multi_label=self.multi_label).scaled(scale)
            seg = None
            if "seg" in outs:
                seg = unletterbox_mask(decode_segmentation(outs["seg"][i], self.imgsz), scale, shape)
            results.append(Prediction(det, seg, shape))
        return results

    def predict(self, images: list[np.ndarray]) -> list[Prediction]:
        """RGB uint8 images of any size -> predictions in their own pixel coordinates."""
        boxed = [letterbox(im, self.imgsz) for im in images]
        batch = np.stack([b[0] for b in boxed])
        return self.predict_letterboxed(batch, [b[2] for b in boxed], [im.shape[:2] for im in images])


def unletterbox_mask(labels: np.ndarray, scale: float, shape: tuple[int, int]) -> np.ndarray:
    """Crop the letterbox padding off a label map and resize it (nearest) to the original image size."""
    h, w = shape
    nh, nw = min(labels.shape[0], round(h * scale)), min(labels.shape[1], round(w * scale))
    crop = labels[:nh, :nw]
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_NEAREST) if (nh, nw) != (h, w) else crop
