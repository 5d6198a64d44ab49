"""benchmarks/peers.py's checks that need no ultralytics: the target ratios and the ONNX Runtime profile that
says which module of an mtnet model costs the time."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from mtnet.config import ModelConfig
from mtnet.models import build_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import peers  # noqa: E402


def test_targets():
    ms = {"yolo11n": 20.0, "yolo11n-seg": 28.0, "yolo11n-pose": 22.0, "mtnet_default": 15.0, "mtnet_coco": 21.0}
    got = {c["target"]: (c["ratio"], c["met"]) for c in peers.targets(ms)}
    assert got == {"default <= 0.25 x sum of the three YOLO11n": (0.214, True),
                   "default <= 0.8 x YOLO11n detect": (0.75, True),
                   "COCO recipe <= 1.0 x YOLO11n detect": (1.05, False)}


def test_onnx_profile_by_module(tmp_path):
    from latency import coco_like_meta
    from mtnet.export.onnx import export_onnx

    torch.manual_seed(0)
    net = build_model(ModelConfig(width=0.35, neck_channels=16, head_channels=16, seg_channels=16),
                      coco_like_meta(4, 3)).eval()
    path = export_onnx(net, tmp_path / "m.onnx", 96)
    prof = peers.onnx_profile(Path(path), runs=3)
    assert {"backbone", "neck", "det", "pose", "seg"} <= set(prof["by_module"])
    assert "Conv" in prof["by_op_type"]
    assert abs(sum(prof["by_module"].values()) - prof["total_ms"]) < 0.05 * prof["total_ms"] + 0.01
    assert max(prof["by_module"], key=prof["by_module"].get) == "backbone"
