"""Crop-classifier backends: PyTorch checkpoint, ONNX Runtime, LiteRT. Each takes uint8 NHWC crops and
returns softmax probabilities [K, C], with the classifier's labels and crop settings read from the file
(the checkpoint's state, or the ``model.json`` document embedded by ``export_classifier``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint_io import load_checkpoint
from ..data.fine import FineLabels
from ..data.preprocess import normalize, normalize_nhwc
from ..errors import UserError
from ..modeljson import read_onnx, read_tflite
from .model import OUTPUT_NAME, CropClassifier


class ClassifierError(UserError):
    """A file that is not a crop classifier (checkpoint or export)."""


def load_classifier_model(path: str | Path) -> tuple[CropClassifier, dict[str, Any]]:
    """The ``CropClassifier`` (eval mode) and its checkpoint state (arch, fine labels, context, metrics)."""
    state = load_checkpoint(path)
    if state.get("kind") != "crop_classifier":
        raise ClassifierError(f"{path}: not a crop-classifier checkpoint (train one with `mtnet cascade train`)")
    model = CropClassifier(**state["arch"])
    model.load_state_dict(state["model"])
    return model.eval(), state


def classifier_doc(state: dict[str, Any]) -> dict[str, Any]:
    """The ``model.json`` document of an exported classifier: our backends read ``classes`` / ``fine`` /
    ``context``; the standard TFLite metadata is built from ``model_info``, ``input`` and ``outputs`` as for
    the multi-task model."""
    from ..data.preprocess import MEAN, STD
    from ..version import __version__

    fine = FineLabels.from_dict(state["fine"])
    size = state["arch"]["input_size"]
    return {"kind": "crop_classifier", "tasks": ["crop_classifier"],
            "model_info": {"name": f"mtnet crop classifier {size}px", "version": f"mtnet {__version__}",
                           "author": "mtnet", "license": "Apache-2.0"},
            "input": {"name": "images", "imgsz": size, "layout": "NCHW float", "mean_std": "imagenet",
                      "mean": list(MEAN), "std": list(STD),
                      "preprocess": f"crop the box grown by the context factor, resize to {size}x{size}; "
                                    "x = (pixel / 255 - mean) / std"},
            "outputs": [{"name": OUTPUT_NAME, "axes": "N,C", "labels": "classes", "labels_kind": "axis",
                         "meaning": "softmax probabilities over the fine classes (labels: classes)"}],
            "postprocess": "argmax over C gives the fine label of the crop",
            "output": OUTPUT_NAME, "classes": fine.classifier_names, "fine": state["fine"], "context": state["context"],
            "arch": state["arch"], "config": state["config"]}


class _Common:
    """What every classifier backend reads from its ``model.json`` document (``_read_doc``)."""

    doc: dict[str, Any]
    size: int  # crop side
    context: float  # box growth before cropping
    fine: FineLabels

    def _read_doc(self, doc: dict[str, Any]) -> None:
        self.doc, self.size, self.context = doc, int(doc["input"]["imgsz"]), float(doc["context"])
        self.fine = FineLabels.from_dict(doc["fine"])


class TorchClassifier(_Common):
    def __init__(self, path: str | Path):
        self.model, state = load_classifier_model(path)
        self.model.deploy = True
        self._read_doc(classifier_doc(state))

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.model.num_classes), np.float32)
        return self.model(normalize(torch.from_numpy(np.ascontiguousarray(crops)))).numpy()


class OnnxClassifier(_Common):
    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        doc = read_onnx(path, self.session.get_modelmeta().custom_metadata_map)
        if doc.get("kind") != "crop_classifier":
            raise ClassifierError(f"{path}: not a crop-classifier export")
        self._read_doc(doc)
        self.input_name = self.session.get_inputs()[0].name
        dim = self.session.get_inputs()[0].shape[0]
        self.batch = dim if isinstance(dim, int) and dim > 0 else None  # None: a dynamic batch axis

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(self.doc["classes"])), np.float32)
        x = np.ascontiguousarray(normalize_nhwc(crops).transpose(0, 3, 1, 2))
        step = self.batch or len(x)
        return np.concatenate([self.session.run([OUTPUT_NAME], {self.input_name: x[s : s + step]})[0]
                               for s in range(0, len(x), step)])


class LiteRTClassifier(_Common):
    """A TFLite classifier export (fixed batch: crops run in chunks of it; int8 or float input)."""

    def __init__(self, path: str | Path, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        from ..infer.quant import dequantize_output, quantize_input

        doc = read_tflite(path)
        if doc.get("kind") != "crop_classifier":
            raise ClassifierError(f"{path}: not a crop-classifier export")
        self._read_doc(doc)
        self._q, self._dq = quantize_input, dequantize_output
        self.interp = Interpreter(model_path=str(path), num_threads=threads)
        self.interp.allocate_tensors()
        self.input = self.interp.get_input_details()[0]
        self.output = self.interp.get_output_details()[0]
        self.batch = int(self.input["shape"][0])

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        x = normalize_nhwc(crops)
        out = []
        for s in range(0, len(x), self.batch):
            chunk = x[s : s + self.batch]
            pad = self.batch - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            self.interp.set_tensor(self.input["index"], self._q(chunk, self.input))
            self.interp.invoke()
            out.append(self._dq(self.interp.get_tensor(self.output["index"]), self.output)[: self.batch - pad])
        return np.concatenate(out) if out else np.zeros((0, len(self.doc["classes"])), np.float32)


def load_classifier(path: str | Path, threads: int = 1):
    """The classifier backend for a ``.pt`` checkpoint, ``.onnx`` or ``.tflite`` export."""
    path = Path(path)
    if not path.is_file():
        raise ClassifierError(f"{path}: classifier file not found")
    if path.suffix == ".pt":
        return TorchClassifier(path)
    if path.suffix == ".onnx":
        return OnnxClassifier(path, threads)
    if path.suffix == ".tflite":
        return LiteRTClassifier(path, threads)
    raise ClassifierError(f"{path}: unsupported classifier type '{path.suffix}' (use .pt, .onnx or .tflite)")
