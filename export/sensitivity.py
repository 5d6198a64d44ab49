"""What the int8 quantizer did with the PyTorch activation points: QAT ranges checked in the artifact, and
per-branch int8 sensitivity (one branch int8, the rest float32) measured through the same evaluator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from mtnet.calibration import accuracy_drop
from mtnet.calibration.drop import DEFAULT_BUDGET

from .tflite import ConversionError

SCALE_REL = 1e-4  # an int8 scale from the QAT range: (max - min) / 255 to float32 rounding


def expected_scale(lo: float, hi: float) -> float:
    """TFLite's per-tensor int8 scale for the real range [lo, hi] (widened to hold 0)."""
    return (max(hi, 0.0) - min(lo, 0.0)) / 255.0


def int8_scales(path: str | Path) -> dict[str, float]:
    """Per-tensor scale of every int8 tensor of a .tflite, by tensor name."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    return {d["name"]: float(d["quantization"][0]) for d in interp.get_tensor_details()
            if d["dtype"] == np.int8 and d["quantization"][0]}


def int8_convs(path: str | Path) -> tuple[int, int]:
    """(convolutions running in int8, all convolutions) of a .tflite."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    dtypes = {d["index"]: d["dtype"] for d in interp.get_tensor_details()}
    convs = [op for op in interp._get_ops_details() if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    return sum(dtypes[op["inputs"][0]] == np.int8 for op in convs), len(convs)


def points_summary(points: dict[str, Any], int8_file: str | Path, qat_section: dict | None) -> dict[str, Any]:
    """``calibration`` fields for report.json: binding counts, the sensitivity files and, for QAT, how many int8
    tensors of the shipped file carry a QAT range. A QAT export whose file carries none raises (no PTQ fallback)."""
    info: dict[str, Any] = {"points": {"count": len(points["points"]), "bound": len(points["bound"])},
                            "sensitivity_files": points["sensitivity"]}
    if qat_section is None:
        return info
    scales = int8_scales(int8_file)
    applied = points["qat_applied"]
    carried = [a for a in applied if a["tensor"] in scales and abs(scales[a["tensor"]] - expected_scale(*a["qat_range"]))
               <= SCALE_REL * expected_scale(*a["qat_range"])]
    if not carried:
        raise ConversionError(f"QAT export: none of the {len(applied)} QAT activation ranges reached the int8 model")
    info["method"] = "qat"
    info["qat"] = {"route": qat_section["route"], "epochs": qat_section["epochs"], "source": qat_section["source"],
                   "points": len(qat_section["ranges"]), "ranges_set": len(applied),
                   "ranges_in_artifact": len(carried),
                   "tensors": [{"point": a["point"], "tensor": a["tensor"], "scale": scales[a["tensor"]],
                                "qat_range": a["qat_range"], "calibration_range": a["calibration_range"]}
                               for a in carried]}
    return info


def measure_sensitivity(files: dict[str, str], fp32_metrics: dict, onnx_path: Path, doc: dict, val,
                        probe_images: np.ndarray, scratch: Path,
                        evaluate: Callable[[Any], dict]) -> dict[str, Any]:
    """Each branch-only-int8 model's metrics and drop vs the fp32 file; which branch breaks the budget."""
    from mtnet.data.preprocess import normalize_nhwc
    from mtnet.infer.backends import load_backend

    from .tflite import finalize_tflite

    probe = np.ascontiguousarray(normalize_nhwc(probe_images[:1]).transpose(0, 3, 1, 2))
    branches: dict[str, Any] = {}
    for branch, src in sorted(files.items()):
        dst = scratch / f"int8_only_{branch}.tflite"
        finalize_tflite(src, dst, onnx_path, probe, doc)
        metrics = evaluate(load_backend(dst))
        int8, total = int8_convs(dst)
        branches[branch] = {"metrics": metrics, "drop_vs_fp32": accuracy_drop(fp32_metrics, metrics),
                            "int8_convs": int8, "convs": total}
    over = sorted((b for b, r in branches.items() if not r["drop_vs_fp32"]["passed"]),
                  key=lambda b: -max(branches[b]["drop_vs_fp32"]["points"].values(), default=0.0))
    if over:
        worst = branches[over[0]]["drop_vs_fp32"]["points"]
        metric = max(worst, key=worst.get)
        advice = (f"int8 on {over[0]} alone costs {worst[metric]:.2f} {metric} points (> {DEFAULT_BUDGET}): keep it "
                  f"float32 with --int8-float {over[0]} if the full int8 model misses the budget, or use QAT")
    else:
        advice = f"every branch alone stays within {DEFAULT_BUDGET} point of fp32 on every task: nothing has to stay float"
    return {"budget": DEFAULT_BUDGET, "branches": branches, "over_budget": over, "advice": advice}
