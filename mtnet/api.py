"""The public Python API: ``mtnet.load``, ``mtnet.train``, ``mtnet.evaluate``, ``mtnet.export``.

Thin, keyword-only wrappers over the library (the CLI calls the same functions), in the spirit of
Ultralytics' and torchvision's top-level entry points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .export import export  # light: the export package imports its heavy dependencies when called

if TYPE_CHECKING:
    from .infer.predictor import Predictor

__all__ = ["evaluate", "export", "load", "train"]


def load(path: str | Path, *, device: str = "cpu", conf: float = 0.25, iou: float | None = None,
         max_det: int = 100) -> Predictor:
    """A predictor for a checkpoint (``.pt``), an ONNX model (``.onnx``) or a TFLite model (``.tflite``).

    ``predictor.predict([rgb_uint8_image, ...])`` returns one ``Prediction`` per image in its own pixels.
    """
    from .decode import NMS_IOU
    from .infer.predictor import Predictor

    return Predictor.from_path(path, device, conf=conf, iou=NMS_IOU if iou is None else iou, max_det=max_det)


def _overrides(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        import json

        return [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items()]
    return [str(o) for o in overrides]


def train(config: str | Path = "quickstart", *, overrides: Mapping[str, Any] | Sequence[str] | None = None,
          resume: bool | str = False, progress: bool = True) -> dict[str, Any]:
    """Train a model from a packaged config name or a YAML path, then evaluate ``best.pt``.

    ``overrides``: ``{"train.epochs": 5, "name": "demo"}`` or ``["train.epochs=5"]`` (same keys as the CLI).
    Returns the final metrics (also written to ``runs/<name>/metrics.json``), including ``run_dir``.
    """
    from .config import load_config
    from .workflows import train_and_report

    return train_and_report(load_config(config, _overrides(overrides)), resume=resume, progress=progress)


def evaluate(model: str | Path, *, data: str | Path | None = None, split: str = "val", conf: float = 0.001,
             progress: bool = True, tta: bool = False) -> dict[str, Any]:
    """Every task's metrics of a checkpoint or exported model on a split.

    ``data``: a COCO-format folder; default: the data the checkpoint was trained on (``.pt`` only).
    ``tta``: flip + second-scale test-time augmentation, merged (``mtnet.infer.tta``).
    """
    from .workflows import evaluate_model

    return evaluate_model(model, data, split, conf=conf, progress=progress, tta=tta)

