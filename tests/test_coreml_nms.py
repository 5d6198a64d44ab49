"""``mtnet export --formats coreml --nms``: detection through a CoreML pipeline ending in coremltools'
``NonMaximumSuppression`` model (what Vision turns into ``VNRecognizedObjectObservation``), checked on the saved
package's spec (CoreML prediction needs macOS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mtnet.cli import main

pytestmark = pytest.mark.slow

CONF, IOU = 0.35, 0.45


@pytest.fixture(scope="module")
def package(tiny_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports_coreml_nms")
    rc = main(["export", str(tiny_run / "best.pt"), "--formats", "coreml", "--precision", "fp16,int8", "--nms",
               "--nms-conf", str(CONF), "--nms-iou", str(IOU), "--imgsz", "160", "--out", str(out), "--name", "cm",
               "--no-eval", "--bench-runs", "0", "--parity-images", "1", "--no-progress"])
    assert rc == 0
    return out / "cm"


@pytest.mark.parametrize("name", ["model.mlpackage", "model_int8w.mlpackage"])
def test_pipeline_ends_in_nms_with_labels_and_run_time_thresholds(package, name):
    import coremltools as ct

    from mtnet.modeljson import read_coreml

    spec = ct.utils.load_spec(str(package / name))
    doc = read_coreml(package / name)
    assert spec.WhichOneof("Type") == "pipeline"
    detector, nms_model = spec.pipeline.models
    assert detector.WhichOneof("Type") == "mlProgram"
    assert nms_model.WhichOneof("Type") == "nonMaximumSuppression"
    nms = nms_model.nonMaximumSuppression
    assert list(nms.stringClassLabels.vector) == doc["labels"]["det"]
    assert nms.iouThreshold == pytest.approx(IOU) and nms.confidenceThreshold == pytest.approx(CONF)
    assert nms.pickTop.perClass  # class-aware, as mtnet.decode
    assert (nms.confidenceInputFeatureName, nms.coordinatesInputFeatureName) == ("raw_confidence", "raw_coordinates")
    assert (nms.iouThresholdInputFeatureName, nms.confidenceThresholdInputFeatureName) == ("iouThreshold",
                                                                                         "confidenceThreshold")
    assert doc["coreml_nms"]["iou"] == IOU and doc["coreml_nms"]["conf"] == CONF

    inputs = {f.name: f for f in spec.description.input}
    assert inputs["images"].type.WhichOneof("Type") == "imageType"
    assert (inputs["images"].type.imageType.width, inputs["images"].type.imageType.height) == (160, 160)
    for t in ("iouThreshold", "confidenceThreshold"):  # adjustable at run time, optional for Vision
        assert inputs[t].type.WhichOneof("Type") == "doubleType" and inputs[t].type.isOptional
        assert inputs[t].shortDescription

    outputs = {f.name: f for f in spec.description.output}
    num_classes, anchors = len(doc["labels"]["det"]), doc["anchors"]["count"]
    f32 = ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    for out, width in (("confidence", num_classes), ("coordinates", 4)):
        array = outputs[out].type.multiArrayType
        assert array.dataType == f32  # NonMaximumSuppression takes FLOAT32 / DOUBLE only
        rows, cols = array.shapeRange.sizeRanges
        assert (rows.lowerBound, rows.upperBound, cols.lowerBound, cols.upperBound) == (0, -1, width, width)
    detector_out = {f.name: f for f in detector.description.output}
    assert list(detector_out["raw_confidence"].type.multiArrayType.shape) == [anchors, num_classes]
    assert detector_out["raw_confidence"].type.multiArrayType.dataType == f32
    # keypoints and segmentation pass through, with the raw boxes that index them
    assert list(outputs["keypoints"].type.multiArrayType.shape) == [1, anchors, 51]
    assert list(outputs["seg"].type.multiArrayType.shape) == [1, len(doc["labels"]["seg"]), 40, 40]
    assert list(outputs["raw_coordinates"].type.multiArrayType.shape) == [anchors, 4]
    assert all(outputs[n].shortDescription for n in outputs)


def test_vision_coordinates_are_normalised_centre_size_of_the_model_boxes(tiny_run):
    """The graph in front of the NMS model: scores unchanged, boxes as Vision's (cx, cy, w, h) / input size."""
    from mtnet.export.coreml import VisionDetect

    from mtnet.checkpoint_io import load_model_from_checkpoint
    from mtnet.data.preprocess import mean_std

    model, _ = load_model_from_checkpoint(tiny_run / "best.pt")
    model.deploy = True
    x = torch.rand(1, 3, 160, 160)
    with torch.no_grad():
        conf, coords, *_ = VisionDetect(model.eval(), 160)(x)
        mean, std = mean_std()
        outs = dict(zip(model.output_names(), model((x - mean) / std), strict=True))
    boxes = outs["boxes"][0].numpy()
    expect = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, boxes[:, 2] - boxes[:, 0],
                       boxes[:, 3] - boxes[:, 1]], 1) / 160
    np.testing.assert_allclose(coords.numpy(), expect, atol=1e-6)
    np.testing.assert_array_equal(conf.numpy(), outs["scores"][0].numpy())
