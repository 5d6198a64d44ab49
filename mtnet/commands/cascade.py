"""mtnet cascade train CONFIG [key=value ...] | mtnet cascade export CLASSIFIER.pt: the crop classifier of a
detector -> classifier cascade (evaluate with `mtnet eval DETECTOR --cascade CLASSIFIER`, serve with
`mtnet export DETECTOR --formats triton --classifier CLASSIFIER` and `mtnet serve`)."""

from __future__ import annotations

import argparse
import json


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="cascade_command", required=True)
    train = sub.add_parser("train", help="train the crop classifier (ground-truth crops + the detector's detections)")
    train.add_argument("config", help="classifier YAML recipe (e.g. configs/cascade_cls.yaml)")
    train.add_argument("overrides", nargs="*", help="key=value overrides, e.g. epochs=5 input_size=96")
    train.add_argument("--no-progress", action="store_true")
    export = sub.add_parser("export", help="export the classifier to ONNX / TFLite fp32, int8 with an accuracy report")
    export.add_argument("checkpoint", help="classifier checkpoint (best.pt)")
    export.add_argument("--formats", type=_csv, default=("onnx", "tflite"), help="onnx,tflite")
    export.add_argument("--precision", type=_csv, default=("fp32", "int8"), help="fp32,int8 (TFLite)")
    export.add_argument("--out", default="exports", help="parent folder; artifacts go to OUT/NAME/")
    export.add_argument("--name", default=None, help="export name (default: the checkpoint's run folder name)")
    export.add_argument("--calib-crops", type=int, default=200, help="int8 calibration crops")
    export.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.cascade_command == "train":
        from ..cascade.config import load_classifier_config
        from ..cascade.train import train_classifier

        summary = train_classifier(load_classifier_config(args.config, args.overrides), progress=not args.no_progress)
        print(json.dumps(summary, indent=2))
        return 0
    from mtnet.export.classifier import export_classifier

    out = export_classifier(args.checkpoint, args.out, name=args.name, formats=args.formats, precisions=args.precision,
                            calib_crops=args.calib_crops, progress=not args.no_progress)
    print((out / "report.md").read_text())
    print(f"artifacts: {out}")
    return 0
