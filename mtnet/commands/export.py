"""mtnet export CHECKPOINT [--formats onnx,tflite,coreml] [--precision fp32,fp16,int8] [--imgsz 320] [--nms];
mtnet export DETECTOR --formats triton --classifier CLASSIFIER.pt: a Triton model repository of the cascade."""

from __future__ import annotations

import argparse

from ..decode import NMS_IOU


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="trained checkpoint (best.pt)")
    p.add_argument("--formats", type=_csv, default=("onnx", "tflite", "coreml"),
                   help="onnx,tflite,coreml; or triton alone (a detector -> classifier cascade, needs --classifier)")
    p.add_argument("--precision", type=_csv, default=("fp32", "fp16", "int8"), help="fp32,fp16,int8 (and dynamic: int8 weights, float activations)")
    p.add_argument("--imgsz", type=int, default=None, help="input size (default: the training size)")
    p.add_argument("--seg-output", choices=("logits", "argmax"), default="logits")
    p.add_argument("--out", default="exports", help="parent folder; artifacts go to OUT/NAME/")
    p.add_argument("--name", default=None, help="export name (default: the checkpoint's run folder name)")
    p.add_argument("--data", default=None, help="COCO or VOC data folder for calibration and accuracy "
                                                "(default: the checkpoint's data.root / data.sources)")
    p.add_argument("--target", choices=("mediapipe",), action="append", default=[],
                   help="mediapipe: also write model_mediapipe_detector.tflite (ObjectDetector: NMS in the graph, "
                        "--nms-* options) and model_mediapipe_segmenter.tflite (ImageSegmenter)")
    p.add_argument("--author", default="mtnet", help="author in model.json and the TFLite metadata")
    p.add_argument("--license", default="Apache-2.0", help="license of the weights, in model.json and the TFLite "
                   "metadata")
    q = p.add_argument_group("int8 quantization")
    q.add_argument("--quant", choices=("full-int8", "dynamic-range", "qat"), default="full-int8",
                   help="full-int8: calibrated PTQ of weights+activations; dynamic-range: int8 weights only; "
                        "qat: int8 with the ranges learned by `mtnet qat` (a QAT checkpoint)")
    q.add_argument("--calib-images", type=int, default=200, help="representative-set size")
    q.add_argument("--int8-io", action="store_true", help="int8 input tensor (scale/zero point in model.json); "
                   "outputs stay float32 (boxes/keypoints from the float decode tail). Default: float I/O")
    q.add_argument("--quant-type", choices=("per-channel", "per-tensor"), default="per-channel")
    q.add_argument("--int8-sensitivity", action="store_true",
                   help="also quantize one branch at a time (backbone, neck, each head), rest float; report each drop")
    q.add_argument("--int8-float", type=_csv, default=(), metavar="BRANCHES",
                   help="branches kept float32 in model_int8.tflite, e.g. pose (see the sensitivity report)")
    n = p.add_argument_group("in-graph NMS (ONNX / TFLite)")
    n.add_argument("--nms", action="store_true", help="put class-aware NMS in the graph (builtin TFLite "
                   "NON_MAX_SUPPRESSION_V4): outputs detections [1, max_det, 6] + num_detections")
    n.add_argument("--nms-conf", type=float, default=0.25, help="score threshold baked into the graph")
    n.add_argument("--nms-iou", type=float, default=NMS_IOU, help="NMS IoU threshold")
    n.add_argument("--max-det", type=int, default=100, help="detections kept per image")
    n.add_argument("--nms-candidates", type=int, default=1000, help="top-k anchors pre-selected before NMS")
    c = p.add_argument_group("checks")
    c.add_argument("--no-eval", action="store_true", help="skip the accuracy of each artifact on the val split")
    c.add_argument("--parity-images", type=int, default=8)
    c.add_argument("--bench-runs", type=int, default=50, help="timed runs per latency (0: skip latency)")
    c.add_argument("--bench-threads", type=lambda s: tuple(int(t) for t in _csv(s)), default=(1, 2))
    t = p.add_argument_group("triton (detector -> crop classifier cascade)")
    t.add_argument("--classifier", help="crop classifier checkpoint (mtnet cascade train)")
    t.add_argument("--triton-onnx-backend", choices=("python", "onnxruntime"), default="python",
                   help="python: ONNX Runtime inside the Python backend (mtnet serve); onnxruntime: Triton's ONNX "
                        "Runtime backend (NVIDIA's container)")
    t.add_argument("--conf", type=float, default=0.25, help="score threshold of the served detections")
    t.add_argument("--max-images", type=int, default=16, help="images per request")
    p.add_argument("--no-progress", action="store_true")


def _export_triton(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mtnet.errors import UserError
    from mtnet.export.triton import TritonOptions, export_triton

    if tuple(args.formats) != ("triton",):
        raise UserError("--formats triton is exported on its own (the repository holds its own ONNX files)")
    if not args.classifier:
        raise UserError("--formats triton needs --classifier (a crop classifier checkpoint from `mtnet cascade train`)")
    name = args.name or f"{Path(args.checkpoint).resolve().parent.name}_triton"
    opts = TritonOptions(conf=args.conf, iou=args.nms_iou, max_det=args.max_det, max_images=args.max_images,
                         onnx_backend=args.triton_onnx_backend)
    out = export_triton(args.checkpoint, args.classifier, Path(args.out) / name, options=opts)
    print(f"Triton model repository: {out} (run it with `mtnet serve {out}`; {out / 'README.md'})")
    return 0


def run(args: argparse.Namespace) -> int:
    if "triton" in args.formats:
        return _export_triton(args)
    from mtnet.calibration import QuantConfig
    from mtnet.export.nms import NMSOptions
    from mtnet.export.pipeline import ExportOptions, export_checkpoint

    nms = NMSOptions(conf=args.nms_conf, iou=args.nms_iou, max_det=args.max_det, candidates=args.nms_candidates)
    opts = ExportOptions(
        formats=args.formats, precisions=args.precision, imgsz=args.imgsz, seg_output=args.seg_output,
        quant=QuantConfig(method=args.quant, num_images=args.calib_images, int8_io=args.int8_io,
                          quant_type=args.quant_type, sensitivity=args.int8_sensitivity,
                          float_branches=args.int8_float),
        data_root=args.data, parity_images=args.parity_images, evaluate=not args.no_eval,
        bench_threads=args.bench_threads, bench_runs=args.bench_runs, progress=not args.no_progress,
        nms=nms if args.nms else None,
        author=args.author, license=args.license, mediapipe=nms if "mediapipe" in args.target else None,
    )
    out = export_checkpoint(args.checkpoint, args.out, name=args.name, options=opts)
    print((out / "report.md").read_text())
    print(f"artifacts: {out}")
    return 0
