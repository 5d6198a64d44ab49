"""Crop classifier -> ONNX and TFLite (fp32, full-int8 with float I/O), each checked and measured.

The same converters as the detector (``export.onnx``, ``export.tflite`` through onnx2tf); the int8 model is
calibrated on training crops. Every artifact is scored on the validation crops (ground truth, the
detector's detections and its false positives, as built for training) with its own runtime, and the
report (``report.json`` + ``report.md``) gives accuracy, agreement with PyTorch, size and latency per crop.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from mtnet.cascade.backends import (
    LiteRTClassifier,
    OnnxClassifier,
    TorchClassifier,
    classifier_doc,
    load_classifier_model,
)
from mtnet.cascade.config import ClassifierConfig
from mtnet.cascade.crop_set import CropSet
from mtnet.cascade.train import build_crop_sets
from mtnet.data.preprocess import normalize_nhwc, to_unit_range
from mtnet.errors import UserError
from mtnet.fileio import atomic_write

from .onnx import export_onnx
from .pipeline import _swap_in
from .tflite import convert_onnx_to_tflite, finalize_tflite, temp_work_dir

FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "int8")


def _scores(backend, crops: CropSet, reference: np.ndarray | None) -> dict[str, float]:
    probs = backend(crops.crops)
    pred = probs.argmax(1)
    out = {"acc": float((pred == crops.labels).mean())}
    for name, kind in (("acc_gt", 0), ("acc_det", 2), ("acc_negative", 3)):
        sel = crops.kinds == kind
        if sel.any():
            out[name] = float((pred[sel] == crops.labels[sel]).mean())
    if reference is not None:
        out["agreement_with_torch"] = float((pred == reference.argmax(1)).mean())
        out["max_prob_diff"] = float(np.abs(probs - reference).max())
    return out


def _latency_ms(backend, crop: np.ndarray, runs: int) -> float:
    for _ in range(5):
        backend(crop)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        backend(crop)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def export_classifier(checkpoint: str | Path, out_root: str | Path = "exports", *, name: str | None = None,
                      formats: tuple[str, ...] = FORMATS, precisions: tuple[str, ...] = PRECISIONS,
                      calib_crops: int = 200, bench_runs: int = 100, progress: bool = True) -> Path:
    """Write ``<out_root>/<name>/`` (``model.onnx``, ``model_float32.tflite``, ``model_int8.tflite``,
    ``report.json``, ``report.md``), replacing an earlier export atomically; returns the folder."""
    bad = sorted(set(formats) - set(FORMATS)) + sorted(set(precisions) - set(PRECISIONS))
    if bad:
        raise UserError(f"classifier export: unknown formats/precisions {bad} (formats {FORMATS}, precisions {PRECISIONS})")
    model, state = load_classifier_model(checkpoint)
    cfg = ClassifierConfig(**state["config"])
    size = int(state["arch"]["input_size"])
    out = Path(out_root) / (name or Path(checkpoint).resolve().parent.name)
    stage = temp_work_dir(out.parent)
    try:
        _, train_set, val_set = build_crop_sets(cfg, progress=progress)
        crops = {"train": train_set, "val": val_set}
        doc = classifier_doc(state) | {"source_checkpoint": str(checkpoint)}
        torch_backend = TorchClassifier(checkpoint)
        reference = torch_backend(crops["val"].crops)
        probe = crops["val"].crops[:1]
        rows: list[dict[str, Any]] = [{"file": str(checkpoint), "format": "pytorch", "precision": "fp32",
                                       **_scores(torch_backend, crops["val"], None),
                                       "latency_ms_per_crop": _latency_ms(torch_backend, probe, bench_runs)}]
        onnx_path = export_onnx(model, stage / "model.onnx", size, doc=doc, dynamic_batch=True)
        if "onnx" in formats:
            rows.append(_row(OnnxClassifier(onnx_path), onnx_path, "onnx", "fp32", crops["val"], reference, probe, bench_runs))
        if "tflite" in formats:
            fixed = export_onnx(model, stage / "scratch" / "model.onnx", size, doc=doc)  # onnx2tf wants a fixed batch
            train = crops["train"]
            calib = to_unit_range(train.crops[np.random.default_rng(0).permutation(len(train.crops))[:calib_crops]])
            conv = convert_onnx_to_tflite(fixed, stage / "scratch" / "onnx2tf",
                                          calibration=calib if "int8" in precisions else None)
            probe_nchw = np.ascontiguousarray(normalize_nhwc(probe).transpose(0, 3, 1, 2))
            for precision, variant, filename in (("fp32", "float32", "model_float32.tflite"), ("int8", "int8", "model_int8.tflite")):
                if precision in precisions:
                    io = finalize_tflite(conv.files[variant], stage / filename, fixed, probe_nchw, doc)
                    row = _row(LiteRTClassifier(stage / filename), stage / filename, "tflite", precision, crops["val"],
                               reference, probe, bench_runs)
                    row["input"] = io["inputs"][0]["dtype"]
                    rows.append(row)
            shutil.rmtree(stage / "scratch", ignore_errors=True)
        if "onnx" not in formats:
            onnx_path.unlink()
        report = {"checkpoint": str(checkpoint), "classes": doc["classes"], "input_size": size,
                  "width": state["arch"]["width"], "val_crops": crops["val"].counts(),
                  "calibration_crops": min(calib_crops, len(crops["train"].crops)), "artifacts": rows}
        for row in rows:
            row["file"] = Path(row["file"]).name
        atomic_write(stage / "report.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2)))
        atomic_write(stage / "report.md", lambda tmp: Path(tmp).write_text(_markdown(report)))
        _swap_in(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out


def _row(backend, path: Path, fmt: str, precision: str, val: CropSet, reference: np.ndarray, probe: np.ndarray,
         runs: int) -> dict[str, Any]:
    return {"file": str(path), "format": fmt, "precision": precision, "size_kb": round(path.stat().st_size / 1024, 1),
            **_scores(backend, val, reference), "latency_ms_per_crop": _latency_ms(backend, probe, runs)}


def _markdown(report: dict[str, Any]) -> str:
    lines = [f"# Crop classifier export: {report['checkpoint']}", "",
             f"Classes {report['classes']}, input {report['input_size']} px, width {report['width']}; "
             f"validation crops {report['val_crops']}; int8 calibrated on {report['calibration_crops']} training crops.", "",
             "| file | format | precision | size KB | acc | acc GT | acc det | acc negatives | agrees with torch | ms / crop |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda v: "" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    for r in report["artifacts"]:
        lines.append(f"| {r['file']} | {r['format']} | {r['precision']} | {f(r.get('size_kb'))} | {f(r['acc'])} | "
                     f"{f(r.get('acc_gt'))} | {f(r.get('acc_det'))} | {f(r.get('acc_negative'))} | "
                     f"{f(r.get('agreement_with_torch'))} | {f(r['latency_ms_per_crop'])} |")
    return "\n".join(lines) + "\n"
