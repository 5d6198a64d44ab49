"""Exported-model backends for ``Predictor``: ONNX Runtime (``.onnx``) and LiteRT (``.tflite``).

Each takes the same uint8 NHWC letterboxed batch as ``TorchBackend`` and returns the deploy outputs by
name in the torch layout, so one decoder (``mtnet.decode``) serves every backend. Everything a backend
needs (input size, labels, output layout) is read from the ``model.json`` document the exporter embeds in
the file (or, for ONNX, from the ``model.json`` beside it / the ONNX metadata props).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..data.meta import DatasetMeta
from ..data.transforms import MEAN, STD
from ..errors import UserError

_MEAN = np.asarray(MEAN, np.float32) * 255.0
_STD = np.asarray(STD, np.float32) * 255.0


class BackendError(UserError):
    """The exported file is missing, of an unknown kind, or lacks mtnet's metadata."""


def normalize_nhwc(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NHWC normalised with MEAN/STD (same arithmetic as ``transforms.normalize``)."""
    return ((images.astype(np.float32) - _MEAN) / _STD).astype(np.float32)


class OnnxBackend:
    """ONNX Runtime on CPU; the graph takes normalised float NCHW."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        doc = _onnx_model_json(Path(path), self.session)
        self.doc = doc
        self.imgsz = int(doc["input"]["imgsz"])
        self.meta = DatasetMeta.from_dict(doc["meta"])
        self.input_name = self.session.get_inputs()[0].name
        self.batch = int(self.session.get_inputs()[0].shape[0])
        self.names = [o.name for o in self.session.get_outputs()]

    def _one(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.session.run(self.names, {self.input_name: x}), strict=True))

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(normalize_nhwc(images).transpose(0, 3, 1, 2))
        return _in_batches(self._one, x, self.batch)


class LiteRTBackend:
    """LiteRT (``ai-edge-litert``) interpreter; float or int8 input, outputs matched by name, not index."""

    def __init__(self, path: str | Path, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        from mtnet.export.metadata import read_tflite_metadata

        self.doc = read_tflite_metadata(path)
        self.imgsz = int(self.doc["input"]["imgsz"])
        self.meta = DatasetMeta.from_dict(self.doc["meta"])
        self.interp = Interpreter(model_path=str(path), num_threads=threads)
        self.input = self.interp.get_input_details()[0]
        self.batch = int(self.input["shape"][0])
        self.to_torch = {o["name"]: o["to_torch"] for o in self.doc["io"]["outputs"]}
        self.outputs = {d["name"]: d for d in self.interp.get_output_details()}
        missing = sorted(set(self.to_torch) - set(self.outputs))
        if missing:
            raise BackendError(f"{path}: outputs {missing} named in its metadata are not in the model")
        self.interp.allocate_tensors()

    def _one(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.input["dtype"] != np.float32:  # int8 I/O: quantize with the input's scale / zero point
            scale, zero = self.input["quantization"]
            x = np.clip(np.round(x / scale) + zero, -128, 127).astype(self.input["dtype"])
        self.interp.set_tensor(self.input["index"], x)
        self.interp.invoke()
        out = {}
        for name, perm in self.to_torch.items():
            d = self.outputs[name]
            y = self.interp.get_tensor(d["index"])
            scale, zero = d["quantization"]
            if scale and np.issubdtype(y.dtype, np.integer) and d["dtype"] != np.int32:
                y = (y.astype(np.float32) - zero) * np.float32(scale)
            out[name] = np.transpose(y, perm)
        return out

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return _in_batches(self._one, normalize_nhwc(images), self.batch)


def _in_batches(run, x: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """Exported graphs have a fixed batch size: run ``x`` through ``run`` in chunks of it."""
    parts = [run(x[i : i + batch]) for i in range(0, len(x), batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _onnx_model_json(path: Path, session: Any) -> dict[str, Any]:
    props = session.get_modelmeta().custom_metadata_map
    if "mtnet.model_json" in props:
        return json.loads(props["mtnet.model_json"])
    side = path.with_name("model.json")
    if side.is_file():
        return json.loads(side.read_text())
    raise BackendError(f"{path}: no mtnet metadata (export it with `mtnet export`)")


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
