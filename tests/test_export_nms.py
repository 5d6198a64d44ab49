"""``mtnet export --nms`` (class-aware NMS inside the TFLite graph) and ``--int8-io`` (int8 input, float
outputs), checked on one export of a small model with the real LiteRT interpreter on real val images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mtnet.cli import main
from mtnet.data.coco import CocoSource
from mtnet.data.preprocess import letterbox
from mtnet.decode import decode_detections

pytestmark = pytest.mark.slow

IMGSZ, CONF, IOU, MAX_DET = 160, 0.3, 0.6, 100
NMS_OUTPUTS = ["detections", "num_detections", "keypoints", "seg"]


@pytest.fixture(scope="module")
def spread_checkpoint(tiny_run, synthetic_root, tmp_path_factory) -> Path:
    """``tiny_run``'s weights with a class layer whose scores spread over (0, 1) on real images.

    After one epoch every anchor scores about the 0.01 prior (ties everywhere), so which boxes any NMS keeps
    would hinge on tie order. Here the class logits are a fixed random projection of the real head features,
    centred and scaled to a standard deviation of 2 over the anchors of two val images: distinct scores
    from the real network on real images. The heads read strides 8/16/32 (the default; ``tiny_run``,
    exported in test_export.py, reads stride 8 only): the same weights, so both
    anchor layouts go through the converters.
    """
    from mtnet.checkpoint_io import load_checkpoint, load_model_from_checkpoint
    from mtnet.engine.checkpoint import save_checkpoint
    from mtnet.infer.predictor import TorchBackend

    state = load_checkpoint(tiny_run / "best.pt")
    state["config"]["model"]["head_strides"] = [8, 16, 32]
    state["config"]["model"]["share_head_levels"] = True  # the stride-8 head's weights serve all three levels
    folder = tmp_path_factory.mktemp("spread")
    src = folder / "multilevel.pt"
    save_checkpoint({k: v for k, v in state.items() if k not in ("format", "version")}, src)
    model, _ = load_model_from_checkpoint(src)
    assert model.strides == (8, 16, 32)
    val = CocoSource(synthetic_root, "val")
    feats: list[torch.Tensor] = []
    hook = model.heads["det"].cls_pred.register_forward_hook(lambda mod, inp, out: feats.append(inp[0]))
    TorchBackend(model, IMGSZ)(np.stack([letterbox(val.load(i).image, IMGSZ)[0] for i in range(2)]))
    hook.remove()
    f = torch.cat([x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]) for x in feats]).double()
    w = torch.randn(model.heads["det"].cls_pred.weight.shape[:2], generator=torch.Generator().manual_seed(0)).double()
    logits = f @ w.T
    w = w * (2.0 / logits.std(0))[:, None]
    state = load_checkpoint(src)
    weights = state["ema"]["module"] if state.get("ema") else state["model"]
    weights["heads.det.cls_pred.weight"] = w.float()[:, :, None, None]
    weights["heads.det.cls_pred.bias"] = (-(f @ w.T).mean(0) - 2.0).float()
    dst = folder / "spread.pt"
    save_checkpoint({k: v for k, v in state.items() if k not in ("format", "version")}, dst)
    return dst


@pytest.fixture(scope="module")
def nms_export(spread_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports_nms")
    rc = main(["export", str(spread_checkpoint), "--formats", "onnx,tflite", "--precision", "fp32,int8", "--int8-io",
               "--nms", "--nms-conf", str(CONF), "--nms-iou", str(IOU), "--max-det", str(MAX_DET),
               "--imgsz", str(IMGSZ), "--out", str(out), "--name", "nms", "--calib-images", "8", "--no-eval",
               "--bench-runs", "0", "--parity-images", "2", "--no-progress"])
    assert rc == 0
    return out / "nms"


def _val_images(root: Path) -> list[np.ndarray]:
    val = CocoSource(root, "val")
    return [letterbox(val.load(i).image, IMGSZ)[0] for i in range(len(val))]


def _run_litert(path: Path, image: np.ndarray) -> dict[str, np.ndarray]:
    """The .tflite as an app runs it: LiteRT interpreter, outputs looked up by name (NHWC float input)."""
    from ai_edge_litert.interpreter import Interpreter

    from mtnet.data.preprocess import normalize_nhwc
    from mtnet.infer.quant import quantize_input

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    interp.set_tensor(inp["index"], quantize_input(normalize_nhwc(image[None]), inp))
    interp.invoke()
    return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}


def _rows(det: np.ndarray, num) -> np.ndarray:
    return det[0][: int(np.asarray(num).reshape(-1)[0])]


def _assert_same_detections(got: np.ndarray, got_kpt: np.ndarray, ref, *, box_tol: float = 1e-3) -> None:
    """Same kept set: every row (x1, y1, x2, y2, score, class) pairs one-to-one with a reference detection.

    Matched as sets: equal scores (flat image regions give identical features) may come out in either order.
    """
    assert len(got) == len(ref), (len(got), len(ref))
    used = np.zeros(len(ref), bool)
    for row, kpt in zip(got, got_kpt, strict=True):
        close = (~used & (ref.labels == round(float(row[5]))) & (np.abs(ref.scores - row[4]) < 1e-4)
                 & (np.abs(ref.boxes - row[:4]).max(1) < box_tol))
        assert close.any(), f"no reference detection for {row}"
        j = int(np.nonzero(close)[0][0])
        used[j] = True
        np.testing.assert_allclose(kpt.reshape(-1, 3), ref.keypoints[j], atol=box_tol)


def test_nms_lands_as_builtin_tflite_op_and_is_documented(nms_export):
    from ai_edge_litert.interpreter import Interpreter

    from mtnet.modeljson import read_tflite

    for name in ("model_float32.tflite", "model_int8.tflite"):
        ops = {op["op_name"] for op in Interpreter(model_path=str(nms_export / name))._get_ops_details()}
        assert "NON_MAX_SUPPRESSION_V4" in ops, ops
        assert not [o for o in ops if o.startswith("Flex") or o == "CUSTOM"], ops
        doc = read_tflite(nms_export / name)
        assert doc["nms_in_graph"] and doc["nms"]["tflite_ops"] == ["NON_MAX_SUPPRESSION_V4"]
        assert [o["name"] for o in doc["io"]["outputs"]] == NMS_OUTPUTS
    doc = json.loads((nms_export / "model.json").read_text())
    assert [o["name"] for o in doc["outputs"]] == NMS_OUTPUTS
    assert doc["outputs"][0]["shape"] == [1, MAX_DET, 6] and doc["outputs"][1]["dtype"] == "int32"
    assert doc["nms"] | {"conf": CONF, "iou": IOU, "max_det": MAX_DET} == doc["nms"]
    report = json.loads((nms_export / "report.json").read_text())
    fp32 = next(a for a in report["artifacts"] if a["file"] == "model_float32.tflite")
    assert fp32["gpu_compatible"] is False and any("NON_MAX_SUPPRESSION_V4" in i for i in fp32["gpu_issues"])
    assert "NON_MAX_SUPPRESSION_V4" in (nms_export / "report.md").read_text()


def test_nms_tflite_keeps_what_decode_keeps_on_val_images(nms_export, spread_checkpoint, synthetic_root):
    """The fp32 graph's kept boxes/scores/classes/keypoints = mtnet.decode's class-aware NMS on the
    PyTorch model's raw (non-NMS) outputs; also for the ONNX file (ONNX Runtime's NonMaxSuppression)."""
    from mtnet.checkpoint_io import load_model_from_checkpoint
    from mtnet.infer.backends import load_backend
    from mtnet.infer.predictor import TorchBackend

    model, _ = load_model_from_checkpoint(spread_checkpoint)
    reference = TorchBackend(model, IMGSZ)
    onnx = load_backend(nms_export / "model.onnx")
    kept = 0
    for image in _val_images(synthetic_root):
        r = reference(image[None])
        ref = decode_detections(r["boxes"][0], r["scores"][0], r["keypoints"][0], conf=CONF, iou=IOU,
                                max_det=MAX_DET, multi_label=False)
        got = _run_litert(nms_export / "model_float32.tflite", image)
        assert got["num_detections"].dtype == np.int32 and got["detections"].shape == (1, MAX_DET, 6)
        n = int(got["num_detections"][0])
        _assert_same_detections(_rows(got["detections"], n), got["keypoints"][0][:n], ref)
        assert not got["detections"][0][n:].any()  # padding rows are zero
        o = onnx(image[None])
        m = int(o["num_detections"][0])
        _assert_same_detections(_rows(o["detections"], m), o["keypoints"][0][:m], ref)
        kept += n
    assert kept >= 20  # the comparison is not vacuous


def test_predictor_and_predict_cli_read_nms_tflite(nms_export, spread_checkpoint, synthetic_root, tmp_path):
    from mtnet.infer.predictor import Predictor

    image = CocoSource(synthetic_root, "val").load(0).image
    got = Predictor.from_path(nms_export / "model_float32.tflite", conf=CONF).predict([image])[0]
    ref = Predictor.from_path(spread_checkpoint, conf=CONF, multi_label=False).predict([image])[0]
    assert len(got.detections) == len(ref.detections) > 0
    np.testing.assert_allclose(np.sort(got.detections.scores), np.sort(ref.detections.scores), atol=1e-4)
    assert got.detections.keypoints.shape == ref.detections.keypoints.shape
    assert (got.seg == ref.seg).mean() > 0.999
    path = next((synthetic_root / "val").glob("*.jpg"))
    assert main(["predict", str(nms_export / "model_int8.tflite"), str(path), "--out", str(tmp_path)]) == 0
    assert (tmp_path / f"{path.stem}.png").is_file()


def test_int8_io_has_int8_input_and_float_pixel_outputs(nms_export, synthetic_root):
    """--int8-io: int8 input tensor (its quantization in model.json), float32 outputs in pixels whose boxes
    stay close to the fp32 model's (onnx2tf's fully int8 file had boxes several strides off)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(nms_export / "model_int8.tflite"))
    (inp,) = interp.get_input_details()
    assert inp["dtype"] == np.int8 and inp["quantization"][0] > 0
    assert {d["name"]: np.dtype(d["dtype"]).name for d in interp.get_output_details()} == {
        "detections": "float32", "num_detections": "int32", "keypoints": "float32", "seg": "float32"}
    q = json.loads((nms_export / "model.json").read_text())["int8_input"]
    assert q["dtype"] == "int8" and np.isclose(q["scale"], inp["quantization"][0])
    assert q["zero_point"] == inp["quantization"][1]
    ious = []
    for image in _val_images(synthetic_root):
        a = _run_litert(nms_export / "model_float32.tflite", image)
        b = _run_litert(nms_export / "model_int8.tflite", image)
        fp32 = _rows(a["detections"], a["num_detections"])
        int8 = _rows(b["detections"], b["num_detections"])
        for row in int8[int8[:, 4] > 0.6]:  # confident int8 detections: the fp32 model has the same box
            same = fp32[fp32[:, 5] == row[5]]
            ious.append(_iou(row[:4], same[:, :4]).max() if len(same) else 0.0)
    assert len(ious) >= 10 and np.median(ious) > 0.9, ious


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda b: np.prod(b[..., 2:] - b[..., :2], axis=-1)  # noqa: E731
    return inter / (area(box) + area(boxes) - inter + 1e-9)
