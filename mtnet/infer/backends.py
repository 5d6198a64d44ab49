"""Exported-model backends for ``Predictor``: ONNX Runtime (``.onnx``) and LiteRT (``.tflite``).

Each takes the same uint8 NHWC letterboxed batch as ``TorchBackend`` and returns the deploy outputs by
name in the torch layout, so one decoder (``mtnet.decode``) serves every backend. Everything a backend
needs (input size, labels, output layout) is read from the ``model.json`` document the exporter embeds in
the file (or, for ONNX, from the ``model.json`` beside it / the ONNX metadata props).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.meta import DatasetMeta
from ..data.preprocess import normalize_nhwc, to_unit_range
from ..errors import UserError
from ..modeljson import read_onnx, read_tflite
from .quant import dequantize_output, quantize_input


class BackendError(UserError):
    """The exported file is missing or of an unknown kind (one without model.json raises ``ModelJsonError``)."""


class OnnxBackend:
    """ONNX Runtime on CPU; the graph takes normalised float NCHW."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        doc = read_onnx(path, self.session.get_modelmeta().custom_metadata_map)
        self.doc = doc
        self.imgsz = int(doc["input"]["imgsz"])
        self.meta = DatasetMeta.from_dict(doc["meta"])
        self.tasks = list(doc["tasks"])
        self.input_name = self.session.get_inputs()[0].name
        dim = self.session.get_inputs()[0].shape[0]
        self.batch = dim if isinstance(dim, int) and dim > 0 else None  # None: a dynamic batch axis
        self.names = [o.name for o in self.session.get_outputs()]

    def _one(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.session.run(self.names, {self.input_name: x}), strict=True))

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(normalize_nhwc(images).transpose(0, 3, 1, 2))
        return _in_batches(self._one, x, self.batch or len(x))


class LiteRTBackend:
    """LiteRT (``ai-edge-litert``) interpreter; float or int8 input, outputs matched by name, not index."""

    def __init__(self, path: str | Path, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.doc = read_tflite(path)
        self.imgsz = int(self.doc["input"]["imgsz"])
        self.meta = DatasetMeta.from_dict(self.doc["meta"])
        self.tasks = list(self.doc["tasks"])
        self.interp = Interpreter(model_path=str(path), num_threads=threads)
        self.input = self.interp.get_input_details()[0]
        self.batch = int(self.input["shape"][0])
        self.to_torch = {o["name"]: o["to_torch"] for o in self.doc["io"]["outputs"]}
        self.outputs = {d["name"]: d for d in self.interp.get_output_details()}
        missing = sorted(set(self.to_torch) - set(self.outputs))
        if missing:
            raise BackendError(f"{path}: outputs {missing} named in its metadata are not in the model")
        self.interp.allocate_tensors()
        # MediaPipe Tasks files (``export.mediapipe``) take pixel / 255 and normalise in the graph
        self.in_graph_norm = self.doc["input"].get("normalization") == "in_graph"
        self.mediapipe_task = self.doc.get("mediapipe", {}).get("task")

    def _one(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self.interp.set_tensor(self.input["index"], quantize_input(x, self.input))
        self.interp.invoke()
        out = {}
        for name, perm in self.to_torch.items():
            d = self.outputs[name]
            out[name] = np.transpose(dequantize_output(self.interp.get_tensor(d["index"]), d), perm)
        return from_object_detector(out, self.imgsz) if self.mediapipe_task == "object_detector" else out

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = to_unit_range(images) if self.in_graph_norm else normalize_nhwc(images)
        return _in_batches(self._one, x, self.batch)


def from_object_detector(out: dict[str, np.ndarray], imgsz: int) -> dict[str, np.ndarray]:
    """MediaPipe ObjectDetector outputs (``location`` top/left/bottom/right ratios, ``category``, ``score``,
    ``number_of_detections``) -> the ``--nms`` outputs ``mtnet.decode`` reads (``detections`` rows x1, y1,
    x2, y2 in input pixels, score, class; ``num_detections``)."""
    loc = out["location"][..., [1, 0, 3, 2]] * np.float32(imgsz)
    det = np.concatenate([loc, out["score"][..., None], out["category"][..., None]], -1).astype(np.float32)
    return {"detections": det, "num_detections": out["number_of_detections"].astype(np.int32)}


def _in_batches(run, x: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """Exported graphs have a fixed batch size: run ``x`` through ``run`` in chunks of it."""
    parts = [run(x[i : i + batch]) for i in range(0, len(x), batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def load_backend(path: str | Path, threads: int = 1):
    """The backend for an exported file, chosen by extension (``.onnx`` or ``.tflite``)."""
    path = Path(path)
    if not path.is_file():
        raise BackendError(f"{path}: model file not found")
    if path.suffix == ".onnx":
        return OnnxBackend(path, threads)
    if path.suffix == ".tflite":
        return LiteRTBackend(path, threads)
    raise BackendError(f"{path}: unsupported model type '{path.suffix}' (use .pt, .onnx or .tflite; "
                       ".mlpackage runs only on Apple platforms)")
