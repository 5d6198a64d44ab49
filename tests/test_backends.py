"""Exported-model backends: ONNX Runtime output equals PyTorch, batching, clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtnet.data.coco import CocoSource
from mtnet.data.preprocess import letterbox, normalize, normalize_nhwc
from mtnet.errors import UserError
from mtnet.modeljson import METADATA_KEY


@pytest.fixture(scope="module")
def onnx_export(tiny_run, tmp_path_factory):
    from mtnet.export.metadata import build_model_json
    from mtnet.export.onnx import export_onnx

    from mtnet.checkpoint_io import load_model_from_checkpoint

    model, _ = load_model_from_checkpoint(tiny_run / "best.pt")
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(model, path, 160, doc=build_model_json(model, 160, source="test"))
    return model, path


def test_normalize_nhwc_is_bit_identical_to_torch_normalize():
    images = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None, None], 3, axis=3)  # every value, every channel
    ref = normalize(torch.from_numpy(images)).permute(0, 2, 3, 1).numpy()
    got = normalize_nhwc(images)
    assert got.dtype == np.float32 and np.array_equal(got, ref)


def test_onnx_backend_equals_torch_backend_in_batches(onnx_export, synthetic_root):
    from mtnet.infer.backends import load_backend
    from mtnet.infer.predictor import TorchBackend

    model, path = onnx_export
    val = CocoSource(synthetic_root, "val")
    images = np.stack([letterbox(val.load(i).image, 160)[0] for i in range(3)])  # batch 3 > graph batch 1
    backend = load_backend(path)
    assert backend.imgsz == 160 and backend.meta == model.meta
    got, ref = backend(images), TorchBackend(model, 160)(images)
    assert list(got) == list(ref) == ["boxes", "scores", "keypoints", "seg"]
    for name in ref:
        assert got[name].shape == ref[name].shape
        np.testing.assert_allclose(got[name], ref[name], atol=1e-4, rtol=1e-4)


def test_predictor_from_path_dispatches_onnx(onnx_export, synthetic_root):
    from mtnet.infer.backends import OnnxBackend
    from mtnet.infer.predictor import Predictor

    _, path = onnx_export
    predictor = Predictor.from_path(path, conf=0.01)
    assert isinstance(predictor.backend, OnnxBackend)
    pred = predictor.predict([CocoSource(synthetic_root, "val").load(0).image])[0]
    assert pred.seg is not None and pred.detections is not None


def test_load_backend_errors(tmp_path, onnx_export):
    from mtnet.infer.backends import load_backend

    with pytest.raises(UserError, match="not found"):
        load_backend(tmp_path / "nope.tflite")
    (tmp_path / "model.engine").write_bytes(b"x")
    with pytest.raises(UserError, match="unsupported model type"):
        load_backend(tmp_path / "model.engine")


def test_tflite_without_mtnet_metadata_is_rejected(tmp_path):
    import tensorflow as tf

    from mtnet.infer.backends import load_backend

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32)])
    def f(x):
        return x * 2.0

    path = tmp_path / "foreign.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert())
    with pytest.raises(UserError, match=f"no '{METADATA_KEY}' metadata"):
        load_backend(path)


def test_onnx_model_json_from_props_else_from_the_file_beside_it(onnx_export, tmp_path):
    import onnx

    from mtnet.modeljson import read_onnx, write_model_json

    _, path = onnx_export
    doc = read_onnx(path)
    assert doc["input"]["imgsz"] == 160
    bare = onnx.load(str(path))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "model.onnx"))
    with pytest.raises(UserError, match=f"no '{METADATA_KEY}' metadata"):
        read_onnx(tmp_path / "model.onnx")
    write_model_json(tmp_path / "model.json", doc)
    assert read_onnx(tmp_path / "model.onnx") == doc


def test_int8_quantisation_round_trips_within_half_a_step():
    from mtnet.infer.quant import dequantize, dequantize_output, quantize, quantize_input

    x = np.linspace(-3.0, 3.0, 301, dtype=np.float32)
    scale, zero = 0.02, -3
    q = quantize(x, scale, zero)
    assert q.dtype == np.int8 and q.min() == -128 and q.max() == 127  # +-3 / 0.02 - 3 is out of range: clipped
    inside = (x / scale + zero >= -128) & (x / scale + zero <= 127)
    assert np.abs(dequantize(q, scale, zero)[inside] - x[inside]).max() <= scale / 2 + 1e-6
    details = {"dtype": np.int8, "quantization": (scale, zero)}
    assert np.array_equal(quantize_input(x, details), q)
    assert np.array_equal(dequantize_output(q, details), dequantize(q, scale, zero))
    assert quantize_input(x, {"dtype": np.float32, "quantization": (0.0, 0)}) is x
    counts = np.array([3], np.int32)  # e.g. num_detections: never dequantised
    assert dequantize_output(counts, {"dtype": np.int32, "quantization": (scale, zero)}) is counts
