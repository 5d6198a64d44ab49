"""``mtnet export --target mediapipe``: ``.tflite`` files that MediaPipe Tasks' ``ObjectDetector`` and
``ImageSegmenter`` accept as they are (Android, iOS, Web and Python run the same C++ graph).

What those tasks require of a model (MediaPipe's model requirements; checked with the real Tasks API in
``tests/test_mediapipe.py``):

* **ObjectDetector** (``model_mediapipe_detector.tflite``): standard TFLite metadata and exactly four float32
  outputs, post-processed in the graph: ``location`` [1, N, 4] box ratios ordered top, left, bottom, right
  (``BoundingBoxProperties`` index [1, 0, 3, 2], BOUNDARIES, RATIO), ``category`` [1, N] class ids (labels as a
  ``TENSOR_VALUE_LABELS`` file), ``score`` [1, N], ``number of detections`` [1]; MediaPipe finds them by these
  metadata names. :class:`MediaPipeDetector` wraps the in-graph NMS of ``export.nms`` (same threshold, IoU and
  ``max_det`` options) and rewrites its rows into that layout. Keypoints have no place in those four outputs:
  pose results come from the regular files (``android/decoder``).
* **ImageSegmenter** (``model_mediapipe_segmenter.tflite``): one float32 [1, H, W, S] output of per-class
  scores with class labels (``TENSOR_AXIS_LABELS``) and the ``SEGMENTER_METADATA`` activation (SOFTMAX, so
  confidence masks are probabilities); the category mask is their argmax. :class:`MediaPipeSegmenter`
  upsamples the stride-4 logits to the input size in the graph (bilinear, half-pixel centres: exactly what
  ``mtnet.decode`` does), so MediaPipe's mask matches mtnet's.
* **Input**: MediaPipe converts the image to the input range given by ``NormalizationOptions`` with one mean
  and one std for all channels, so these files take ``pixel / 255`` (mean 0, std 255) and apply ImageNet's
  per-channel mean/std as their first op (``model.json`` ``input.normalization = "in_graph"``; mtnet's own
  LiteRT backend reads that).

MediaPipe letterboxes (keeps the aspect ratio, centred, black padding) and maps results back to the image;
mtnet pads bottom/right with grey: on images of the model's aspect ratio both see the same pixels.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mtnet.tasks import OutputDef

from .nms import NMSDeploy, NMSOptions
from .normalized import InGraphNormalized

DETECTOR_FILE = "model_mediapipe_detector.tflite"
SEGMENTER_FILE = "model_mediapipe_segmenter.tflite"
# graph output name -> the metadata tensor name MediaPipe's ObjectDetector looks up
DETECTOR_TENSOR_NAMES = {"location": "location", "category": "category", "score": "score",
                         "number_of_detections": "number of detections"}
BOX_INDEX = (1, 0, 3, 2)  # positions of left, top, right, bottom in ``location``'s last axis


class _InGraphNormalized(InGraphNormalized):
    """Common part of the MediaPipe graphs; quacks like the model for export."""

    @property
    def deploy(self) -> bool:
        return True

    @deploy.setter
    def deploy(self, value: bool) -> None:
        if not value:
            raise ValueError("the MediaPipe export wrappers have only a deploy mode")

    def output_names(self) -> list[str]:
        return [o.name for o in self.output_defs()]  # output_defs: each subclass's own outputs

    def _outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        net = self.model
        was = net.deploy
        net.deploy = True
        try:
            return dict(zip(net.output_names(), net(self.normalize(x)), strict=True))
        finally:
            net.deploy = was


class MediaPipeDetector(_InGraphNormalized):
    """Detection model + in-graph NMS -> MediaPipe ObjectDetector's four outputs (module docstring)."""

    def __init__(self, model: nn.Module, imgsz: int, options: NMSOptions | None = None):
        super().__init__(NMSDeploy(model, imgsz, options))
        self.imgsz = imgsz
        # detections row (x1, y1, x2, y2, score, class) -> (top, left, bottom, right) / imgsz: one constant matmul
        to_location = torch.zeros(6, 4)
        for col, src in enumerate((1, 0, 3, 2)):
            to_location[src, col] = 1.0 / imgsz
        self.register_buffer("to_location", to_location)
        self.register_buffer("score_col", torch.eye(6)[:, 4:5].clone())
        self.register_buffer("class_col", torch.eye(6)[:, 5:6].clone())

    @property
    def tasks(self) -> list[str]:
        return ["det"]

    def output_defs(self) -> list[OutputDef]:
        n = "N (max_det)"
        return [
            OutputDef("location", f"B,{n},4", "kept boxes after in-graph class-aware NMS, descending score: top, left, "
                      "bottom, right as ratios of the input size"),
            OutputDef("category", f"B,{n}", "class id of each box (float)", labels="labels.det", labels_kind="value"),
            OutputDef("score", f"B,{n}", "score of each box"),
            OutputDef("number_of_detections", "B", "number of valid rows (float)"),
        ]

    def describe(self) -> dict[str, Any]:
        """The ``mediapipe`` section of ``model.json`` (read by ``export.tflite_metadata``)."""
        return {"task": "object_detector", "boxes": "location", "box_index": list(BOX_INDEX),
                "tensor_names": dict(DETECTOR_TENSOR_NAMES), "detection_group": ["location", "category", "score"]}

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        det, num = self.model(self.normalize(images))[:2]  # NMSDeploy: detections, num_detections
        rows = det.reshape(-1, 6)
        k = rows.shape[0]
        return ((rows @ self.to_location).reshape(1, k, 4), (rows @ self.class_col).reshape(1, k),
                (rows @ self.score_col).reshape(1, k), num.to(torch.float32).reshape(1))


class MediaPipeSegmenter(_InGraphNormalized):
    """Segmentation model -> per-class logits at input size, [1, S, H, W] (NHWC in the .tflite)."""

    def __init__(self, model: nn.Module, imgsz: int):
        super().__init__(model)
        self.imgsz = imgsz
        if "seg" not in model.tasks:
            raise ValueError("--target mediapipe's segmenter needs the segmentation task")

    @property
    def tasks(self) -> list[str]:
        return ["seg"]

    def output_defs(self) -> list[OutputDef]:
        (seg,) = [o for o in self.model.output_defs() if o.name == "seg"]
        return [replace(seg, meaning="per-class segmentation logits at input size (bilinear from stride 4, "
                        "half-pixel centres): argmax is the class mask; MediaPipe applies SOFTMAX for confidence "
                        "masks")]

    def describe(self) -> dict[str, Any]:
        return {"task": "image_segmenter", "activation": "SOFTMAX"}

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        seg = self._outputs(images)["seg"]
        return (nn.functional.interpolate(seg, size=images.shape[-2:], mode="bilinear", align_corners=False),)


def mediapipe_graphs(model: nn.Module, imgsz: int, nms: NMSOptions | None) -> dict[str, _InGraphNormalized]:
    """File name -> wrapper, for the tasks the model has (detector: det; segmenter: seg)."""
    graphs: dict[str, _InGraphNormalized] = {}
    if "det" in model.tasks:
        graphs[DETECTOR_FILE] = MediaPipeDetector(model, imgsz, nms)
    if "seg" in model.tasks:
        if model.seg_output != "logits":
            raise ValueError("--target mediapipe needs --seg-output logits (MediaPipe reads per-class scores)")
        graphs[SEGMENTER_FILE] = MediaPipeSegmenter(model, imgsz)
    return graphs


def mediapipe_doc(graph: _InGraphNormalized, doc: dict[str, Any]) -> dict[str, Any]:
    """``model.json`` for a MediaPipe file: ``doc`` (built from ``graph``) plus its input and task sections."""
    doc = dict(doc)
    doc["input"] = {**doc["input"], "normalization": "in_graph",
                    "preprocess": f"{doc['input']['preprocess'].split(';')[0]}; x = pixel / 255 (ImageNet mean/std "
                                  "are the graph's first op)"}
    doc["mediapipe"] = graph.describe()
    if isinstance(graph, MediaPipeDetector):
        doc["nms_in_graph"], doc["nms"] = True, graph.model.describe()
        doc["postprocess"] = ("NMS is in the graph: read the first `number of detections` rows; boxes are ratios of "
                              "the input (top, left, bottom, right): multiply by the input size, divide by the "
                              "letterbox scale")
    else:
        doc["postprocess"] = "argmax over the class axis (logits at input size); crop the letterbox padding"
    return doc


def unit_probe(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC letterboxed images -> the MediaPipe files' NCHW float input (pixel / 255)."""
    from mtnet.data.preprocess import to_unit_range

    return np.ascontiguousarray(to_unit_range(images).transpose(0, 3, 1, 2)).astype(np.float32)


def export_mediapipe(model: nn.Module, imgsz: int, nms: NMSOptions | None, out: Path, scratch: Path,
                     base_doc: dict[str, Any], probe_images: np.ndarray, *, author: str, license: str) -> list[str]:
    """Write the MediaPipe files of ``model`` into ``out``; returns their names."""
    from .metadata import build_model_json
    from .onnx import export_onnx
    from .tflite import convert_onnx_to_tflite, finalize_tflite

    written = []
    for name, graph in mediapipe_graphs(model, imgsz, nms).items():
        doc = mediapipe_doc(graph, build_model_json(graph, imgsz, source=base_doc["source_checkpoint"],
                                                    author=author, license=license))
        work = scratch / Path(name).stem
        onnx_path = export_onnx(graph, work / "model.onnx", imgsz, doc=doc)
        conv = convert_onnx_to_tflite(onnx_path, work / "onnx2tf")
        finalize_tflite(conv.files["float32"], out / name, onnx_path, unit_probe(probe_images[:1]), doc)
        written.append(name)
    return written
