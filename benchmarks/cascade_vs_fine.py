"""Detector -> crop-classifier cascade vs one detector trained on the fine classes (same size, same recipe).

    python benchmarks/cascade_vs_fine.py [--budget-min 22] [--cls-budget-min 14] [--cls-set input_size=48 ...] [--reuse]
                                         [--out benchmarks/results/cascade_vs_fine.json]

Why: a detector at a low input resolution is fast but cannot tell look-alike sub-types apart (the
``subtypes`` synthetic recipe: plain / striped / patched sports balls whose markings blur away at the
detector's half-resolution input). The cascade keeps that detector for the coarse classes and re-labels its
sports-ball boxes with a small classifier that reads crops of the full-resolution image.

Trains (or, with ``--reuse``, takes the finished runs of) configs/cascade_det.yaml, configs/cascade_fine_det.yaml
(both on the same time budget) and configs/cascade_cls.yaml; exports the cascade as the Triton repository,
both detectors to batch-1 ONNX and fp32 TFLite, and the classifier to TFLite. For each runtime (ONNX Runtime,
the server's; LiteRT, the phone's) it scores fine-grained box AP on the val split (COCO, mAP settings) of
the exported files and times both models on those same files, one image at a time, interleaved, on one
thread, at deployment settings (conf 0.25, best class). Prints the tables and writes JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mtnet.export.classifier import export_classifier
from mtnet.export.metadata import build_model_json
from mtnet.export.onnx import export_onnx
from mtnet.export.pipeline import ExportOptions, export_checkpoint
from mtnet.export.triton import export_triton

from mtnet.cascade.backends import classifier_doc, load_classifier_model
from mtnet.cascade.config import load_classifier_config
from mtnet.cascade.evaluate import cascade_table, evaluate_cascade
from mtnet.cascade.train import train_classifier
from mtnet.checkpoint_io import load_checkpoint, load_model_from_checkpoint
from mtnet.config import load_config
from mtnet.data.synthetic import generate_dataset
from mtnet.fileio import atomic_write
from mtnet.workflows import train_and_report

REPO = Path(__file__).resolve().parents[1]


def _detector(config: str, budget_min: float, reuse: bool) -> Path:
    cfg = load_config(REPO / "configs" / config, [f"train.time_budget_min={budget_min}"])
    best = Path(cfg.output_dir) / cfg.name / "best.pt"
    if not (reuse and best.is_file()):
        train_and_report(cfg, progress=False)
    return best


def _static_onnx(checkpoint: Path, path: Path) -> Path:
    """A batch-1 ONNX of a detector or the classifier: every model is timed in the same form (the Triton
    repository's graphs have a dynamic batch axis, about 10 % slower in ONNX Runtime for one input)."""
    if load_checkpoint(checkpoint).get("kind") == "crop_classifier":
        model, state = load_classifier_model(checkpoint)
        return export_onnx(model, path, int(state["arch"]["input_size"]), doc=classifier_doc(state))
    model, cfg = load_model_from_checkpoint(checkpoint)
    return export_onnx(model, path, cfg.data.imgsz, doc=build_model_json(model, cfg.data.imgsz, source=str(checkpoint)))


def _tflite(checkpoint: Path, exports: Path, reuse: bool) -> Path:
    """The fp32 TFLite of a detector (``mtnet export`` with its parity check; accuracy is scored here)."""
    name = f"{checkpoint.parent.name}_tflite"
    if reuse and (exports / name / "model_float32.tflite").is_file():
        return exports / name / "model_float32.tflite"
    opts = ExportOptions(formats=("tflite",), precisions=("fp32",), evaluate=False, bench_runs=0, progress=False)
    return export_checkpoint(checkpoint, exports, name=name, options=opts) / "model_float32.tflite"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget-min", type=float, default=22.0, help="training time budget of each detector")
    p.add_argument("--cls-budget-min", type=float, default=14.0, help="training time budget of the classifier")
    p.add_argument("--latency-images", type=int, default=200)
    p.add_argument("--latency-rounds", type=int, default=3, help="passes over the latency images")
    p.add_argument("--tflite-classifier", choices=("float32", "int8"), default="float32",
                   help="classifier variant of the LiteRT rows")
    p.add_argument("--cls-set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="classifier recipe overrides, e.g. input_size=48 name=cascade_cls48")
    p.add_argument("--reuse", action="store_true", help="take runs/<name>/best.pt where it exists")
    p.add_argument("--exports", default="exports/cascade_bench")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cascade_vs_fine.json"))
    args = p.parse_args()

    data = load_config(REPO / "configs" / "cascade_det.yaml").data  # the subtypes set, for all three runs
    s = data.synthetic
    generate_dataset(data.root, s.num_train, s.num_val, s.image_size, s.seed, progress=False, variant=s.variant)
    det = _detector("cascade_det.yaml", args.budget_min, args.reuse)
    fine = _detector("cascade_fine_det.yaml", args.budget_min, args.reuse)
    cls_cfg = load_classifier_config(REPO / "configs" / "cascade_cls.yaml",
                                     [f"time_budget_min={args.cls_budget_min}", f"detector={det}", *args.cls_set])
    cls = cls_cfg.run_dir / "best.pt"
    if not (args.reuse and cls.is_file()):
        train_classifier(cls_cfg, progress=False)
    exports = Path(args.exports)
    export_triton(det, cls, exports / f"triton_{cls_cfg.name}")  # the served form (benchmarks/serve_load.py)
    cls_dir = exports / cls_cfg.name
    if not (args.reuse and (cls_dir / "report.json").is_file()):
        export_classifier(cls, exports, name=cls_cfg.name, progress=False)
    files = {
        "onnx": (_static_onnx(det, exports / "det.onnx"), _static_onnx(cls, cls_dir / "model_batch1.onnx"),
                 _static_onnx(fine, exports / "fine_det.onnx")),
        "tflite": (_tflite(det, exports, args.reuse), cls_dir / f"model_{args.tflite_classifier}.tflite",
                   _tflite(fine, exports, args.reuse)),
    }
    start = time.perf_counter()
    rows = {backend: evaluate_cascade(d, c, baseline=f, latency_images=args.latency_images,
                                      latency_rounds=args.latency_rounds, progress=False)
            for backend, (d, c, f) in files.items()}
    rows["runs"] = {"detector": str(det), "fine_detector": str(fine), "classifier": str(cls),
                    "classifier_summary": json.loads((cls.parent / "summary.json").read_text()),
                    "detector_metrics": json.loads((det.parent / "metrics.json").read_text()),
                    "fine_detector_metrics": json.loads((fine.parent / "metrics.json").read_text())}
    rows["eval_s"] = time.perf_counter() - start
    rows["date"] = time.strftime("%Y-%m-%d")
    out = Path(args.out)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=2, default=str)))
    for backend in files:
        print(f"{backend}:\n{cascade_table(rows[backend])}\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
