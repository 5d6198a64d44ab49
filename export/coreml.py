"""PyTorch deploy graph -> CoreML ML Program (``.mlpackage``), fp16 compute, optional int8 weights.

The input is an RGB *image* (what Vision / CVPixelBuffer hand over): CoreML's ImageType applies one scalar
scale (1/255) and the per-channel MEAN/STD normalisation is the first op inside the model, so apps pass
pixels untouched. Conversion, saving and spec inspection work on Linux; ``predict`` needs macOS.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mtnet.modeljson import METADATA_KEY, dumps

from .normalized import InGraphNormalized


def convert_coreml(model: nn.Module, imgsz: int, doc: dict[str, Any]):
    """Trace the deploy graph and convert it to an fp16 ML Program with ``doc`` as user metadata."""
    import coremltools as ct

    model = model.eval()
    was = model.deploy
    model.deploy = True
    try:
        wrapped = InGraphNormalized(model).eval()
        example = torch.rand(1, 3, imgsz, imgsz)
        with torch.no_grad():
            traced = torch.jit.trace(wrapped, example, check_trace=False)
        mlmodel = ct.convert(
            traced,
            inputs=[ct.ImageType(name="images", shape=example.shape, scale=1 / 255.0, bias=[0.0, 0.0, 0.0],
                                 color_layout=ct.colorlayout.RGB)],
            outputs=[ct.TensorType(name=n) for n in model.output_names()],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16,
            minimum_deployment_target=ct.target.iOS16,
        )
    finally:
        model.deploy = was
    _describe(mlmodel, doc)
    return mlmodel


def quantize_weights_int8(mlmodel, doc: dict[str, Any]):
    """Linear symmetric per-channel int8 weights (activations stay fp16): ~half the fp16 file size."""
    import coremltools as ct

    config = ct.optimize.coreml.OptimizationConfig(
        global_config=ct.optimize.coreml.OpLinearQuantizerConfig(mode="linear_symmetric", granularity="per_channel"))
    out = ct.optimize.coreml.linear_quantize_weights(mlmodel, config=config)
    _describe(out, doc)
    return out


def _describe(mlmodel, doc: dict[str, Any]) -> None:
    mlmodel.user_defined_metadata[METADATA_KEY] = dumps(doc)
    mlmodel.short_description = f"mtnet {'+'.join(doc['tasks'])} {doc['input']['imgsz']}px"
    mlmodel.input_description["images"] = "RGB image, letterboxed to the input size (pad bottom/right)"
    for spec in doc["outputs"]:
        mlmodel.output_description[spec["name"]] = f"{spec['axes']}: {spec['meaning']}"


def save_mlpackage(mlmodel, path: str | Path) -> Path:
    """Save to a temp folder beside ``path``, then swap it in: no half-written package under the name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        mlmodel.save(str(tmp / path.name))
        old = path.with_name(f".{path.name}.old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp / path.name, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


# --- detection through coremltools' NonMaximumSuppression model (``--nms``): what Vision turns into
# VNRecognizedObjectObservation objects
NMS_INPUTS = ("iouThreshold", "confidenceThreshold")  # optional Double inputs of the pipeline (run-time thresholds)
RAW_CONFIDENCE, RAW_COORDINATES = "raw_confidence", "raw_coordinates"


class VisionDetect(nn.Module):
    """The deploy graph with the detection outputs in the layout CoreML's NMS model takes: ``raw_confidence``
    [A, C] per-class scores and ``raw_coordinates`` [A, 4] centre x, centre y, width, height as ratios of the
    input; every other output (keypoints, seg, ...) passes through unchanged."""

    def __init__(self, model: nn.Module, imgsz: int):
        super().__init__()
        self.net = InGraphNormalized(model)
        self.names = model.output_names()
        self.imgsz = imgsz
        # xyxy -> (cx, cy, w, h) / imgsz as one constant matmul
        m = torch.tensor([[0.5, 0, -1, 0], [0, 0.5, 0, -1], [0.5, 0, 1, 0], [0, 0.5, 0, 1]]) / imgsz
        self.register_buffer("to_cxcywh", m)

    def output_names(self) -> list[str]:
        return [RAW_CONFIDENCE, RAW_COORDINATES] + [n for n in self.names if n not in ("boxes", "scores")]

    def forward(self, x: torch.Tensor):
        outs = dict(zip(self.names, self.net(x), strict=True))
        rest = [outs[n] for n in self.names if n not in ("boxes", "scores")]
        return (outs["scores"][0], outs["boxes"][0] @ self.to_cxcywh, *rest)


def convert_coreml_nms(model: nn.Module, imgsz: int, doc: dict[str, Any], *, iou: float, conf: float,
                       int8_weights: bool = False):
    """A CoreML pipeline: the deploy graph (ML Program) -> coremltools' ``NonMaximumSuppression`` model.

    Pipeline inputs: ``images`` (RGB image) and the optional Doubles ``iouThreshold`` / ``confidenceThreshold``
    (defaults ``iou`` / ``conf``, adjustable at run time). Outputs: ``confidence`` [N, C] and ``coordinates``
    [N, 4] (centre x, centre y, width, height, ratios of the input) of the kept boxes, with the detection class
    labels set on the NMS model (so Vision returns ``VNRecognizedObjectObservation``); ``raw_coordinates`` [A, 4]
    (a kept box equals its anchor's row, which indexes ``keypoints``) and the other deploy outputs pass through.
    """
    import coremltools as ct

    was = model.deploy
    model.deploy = True
    try:
        wrapped = VisionDetect(model.eval(), imgsz).eval()
        example = torch.rand(1, 3, imgsz, imgsz)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # fixed input size by design
            traced = torch.jit.trace(wrapped, example, check_trace=False)
        detector = ct.convert(
            traced,
            inputs=[ct.ImageType(name="images", shape=example.shape, scale=1 / 255.0, bias=[0.0, 0.0, 0.0],
                                 color_layout=ct.colorlayout.RGB)],
            # NonMaximumSuppression takes FLOAT32 or DOUBLE arrays (coremltools' NMS validator, spec >= iOS 14)
            outputs=[ct.TensorType(name=n, dtype=np.float32 if n in (RAW_CONFIDENCE, RAW_COORDINATES) else None)
                     for n in wrapped.output_names()],
            convert_to="mlprogram", compute_precision=ct.precision.FLOAT16,
            minimum_deployment_target=ct.target.iOS16)
    finally:
        model.deploy = was
    if int8_weights:
        config = ct.optimize.coreml.OptimizationConfig(
            global_config=ct.optimize.coreml.OpLinearQuantizerConfig(mode="linear_symmetric", granularity="per_channel"))
        detector = ct.optimize.coreml.linear_quantize_weights(detector, config=config)
    labels = list(doc["labels"]["det"])
    nms = _nms_model(detector.get_spec(), labels, iou=iou, conf=conf)
    passthrough = [n for n in wrapped.output_names() if n != RAW_CONFIDENCE]
    pipe = ct.models.pipeline.Pipeline(
        input_features=[("images", ct.models.datatypes.Array(3, imgsz, imgsz)),
                        *[(n, ct.models.datatypes.Double()) for n in NMS_INPUTS]],
        output_features=["confidence", "coordinates", *passthrough])
    pipe.add_model(detector)
    pipe.add_model(nms)
    spec = pipe.spec
    spec.specificationVersion = detector.get_spec().specificationVersion
    spec.description.input[0].ParseFromString(detector.get_spec().description.input[0].SerializeToString())
    for k in (1, 2):
        spec.description.input[k].type.isOptional = True  # Vision runs it without a feature provider
    produced = {o.name: o for o in detector.get_spec().description.output}
    produced.update({o.name: o for o in nms.get_spec().description.output})
    for out in spec.description.output:
        out.ParseFromString(produced[out.name].SerializeToString())
    pipeline = ct.models.MLModel(spec, weights_dir=detector.weights_dir)
    _describe_pipeline(pipeline, doc, iou=iou, conf=conf)
    return pipeline


def _nms_model(detector_spec, labels: list[str], *, iou: float, conf: float):
    """coremltools' NonMaximumSuppression model reading the detector's raw confidence and coordinates."""
    import coremltools as ct

    spec = ct.proto.Model_pb2.Model()
    spec.specificationVersion = 5  # iOS 14: the first that takes FLOAT32 confidence / coordinates
    outputs = {o.name: o for o in detector_spec.description.output}
    for k, (name, new) in enumerate(((RAW_CONFIDENCE, "confidence"), (RAW_COORDINATES, "coordinates"))):
        spec.description.input.add().ParseFromString(outputs[name].SerializeToString())
        out = spec.description.output.add()
        out.ParseFromString(outputs[name].SerializeToString())
        out.name = new
        array = out.type.multiArrayType
        width = [len(labels), 4][k]
        del array.shape[:]
        rows, cols = array.shapeRange.sizeRanges.add(), array.shapeRange.sizeRanges.add()
        rows.lowerBound, rows.upperBound = 0, -1
        cols.lowerBound, cols.upperBound = width, width
    for name in NMS_INPUTS:
        feature = spec.description.input.add()
        feature.name = name
        feature.type.doubleType.MergeFromString(b"")
    nms = spec.nonMaximumSuppression
    nms.confidenceInputFeatureName, nms.coordinatesInputFeatureName = RAW_CONFIDENCE, RAW_COORDINATES
    nms.confidenceOutputFeatureName, nms.coordinatesOutputFeatureName = "confidence", "coordinates"
    nms.iouThresholdInputFeatureName, nms.confidenceThresholdInputFeatureName = NMS_INPUTS
    nms.iouThreshold, nms.confidenceThreshold = iou, conf
    nms.pickTop.perClass = True  # class-aware, as mtnet.decode
    nms.stringClassLabels.vector.extend(labels)
    return ct.models.MLModel(spec)


def _describe_pipeline(mlmodel, doc: dict[str, Any], *, iou: float, conf: float) -> None:
    mlmodel.user_defined_metadata[METADATA_KEY] = dumps(doc)
    mlmodel.short_description = f"mtnet {'+'.join(doc['tasks'])} {doc['input']['imgsz']}px with NMS (Vision: " \
                                "VNRecognizedObjectObservation)"
    mlmodel.input_description["images"] = "RGB image, letterboxed to the input size (pad bottom/right)"
    mlmodel.input_description["iouThreshold"] = f"NMS IoU threshold (optional, default {iou})"
    mlmodel.input_description["confidenceThreshold"] = f"score threshold (optional, default {conf})"
    mlmodel.output_description["confidence"] = "kept boxes' class scores [N, C] (labels: the NMS model's class labels)"
    mlmodel.output_description["coordinates"] = "kept boxes [N, 4]: centre x, centre y, width, height, ratios of the input"
    mlmodel.output_description[RAW_COORDINATES] = ("every anchor's box [A, 4] as in coordinates: a kept box equals "
                                                   "its anchor's row, which indexes the per-anchor outputs")
    for spec in doc["outputs"]:
        if spec["name"] not in ("boxes", "scores"):
            mlmodel.output_description[spec["name"]] = f"{spec['axes']}: {spec['meaning']}"
