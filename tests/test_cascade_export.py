"""The crop classifier's export: ONNX and TFLite fp32 / int8 through onnx2tf, each scored by the report on
validation crops with its own runtime, and usable by the ``Cascade`` (LiteRT backend)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_classifier_exports_onnx_and_tflite_with_a_report(cascade_run, tmp_path):
    from mtnet.export.classifier import export_classifier
    from mtnet.export.tflite_metadata import read_associated_files, read_metadata

    from mtnet.cascade.backends import LiteRTClassifier, load_classifier
    from mtnet.cascade.predictor import Cascade
    from mtnet.data.sample import read_image
    from mtnet.infer.predictor import Predictor

    out = export_classifier(cascade_run["classifier"], tmp_path, name="cls", calib_crops=32, bench_runs=5, progress=False)
    report = json.loads((out / "report.json").read_text())
    rows = {(r["format"], r["precision"]): r for r in report["artifacts"]}
    assert set(rows) == {("pytorch", "fp32"), ("onnx", "fp32"), ("tflite", "fp32"), ("tflite", "int8")}
    assert rows[("onnx", "fp32")]["agreement_with_torch"] == 1.0 and rows[("onnx", "fp32")]["max_prob_diff"] < 1e-4
    assert rows[("tflite", "fp32")]["agreement_with_torch"] == 1.0
    assert rows[("tflite", "int8")]["agreement_with_torch"] >= 0.9  # full-int8 PTQ of a barely trained model
    assert rows[("tflite", "int8")]["size_kb"] < 0.6 * rows[("tflite", "fp32")]["size_kb"]
    assert "| model_int8.tflite | tflite | int8 |" in (out / "report.md").read_text()
    meta = read_metadata(out / "model_float32.tflite")  # standard TFLite metadata, labels as an associated file
    assert meta.name.decode().startswith("mtnet crop classifier")
    labels = read_associated_files(out / "model_float32.tflite")["classes.txt"].decode().splitlines()
    assert labels == report["classes"]
    int8 = load_classifier(out / "model_int8.tflite")
    assert isinstance(int8, LiteRTClassifier) and int8.fine.split_coarse == [37]
    crops = np.random.default_rng(0).integers(0, 255, (3, int8.size, int8.size, 3), dtype=np.uint8)
    probs = int8(crops)
    assert probs.shape == (3, 4) and np.allclose(probs.sum(1), 1.0, atol=0.05)
    images = [read_image(str(p)) for p in sorted((cascade_run["root"] / "val").glob("*.jpg"))[:2]]
    cascade = Cascade(Predictor.from_checkpoint(cascade_run["detector"], conf=0.005, max_det=1000, multi_label=True), int8)
    assert len(cascade.predict(images)) == 2 and cascade.timing.crops > 0
