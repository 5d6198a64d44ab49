"""mtnet eval MODEL [--data DIR] [--split val] [--tta]: every task's metrics (box AP, keypoint OKS-AP, mIoU) of any model file."""

from __future__ import annotations

import argparse

from ..decode import NMS_IOU


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="checkpoint (.pt) or exported model")
    p.add_argument("--data", help="COCO or VOC data folder (default, for a .pt: the data it was trained on)")
    p.add_argument("--split", default="val", help="a split of --data; without --data: val or train")
    p.add_argument("--conf", type=float, default=0.001)
    p.add_argument("--iou", type=float, default=NMS_IOU)
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: also a mirrored (keypoints swapped) and a 1.2x view, merged")
    p.add_argument("--json", help="also write the metrics to this JSON file")
    c = p.add_argument_group("cascade (fine-grained labels)")
    c.add_argument("--cascade", metavar="CLASSIFIER", help="crop classifier (.pt/.onnx/.tflite): score MODEL + it as a "
                   "cascade with fine-grained box AP and latency = detector + classifier x crops")
    c.add_argument("--baseline", metavar="FINE_DETECTOR", help="with --cascade: a same-size detector trained on the fine "
                   "classes, scored next to it")
    c.add_argument("--latency-images", type=int, default=100, help="with --cascade: images timed (interleaved)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..eval.report import metrics_table, write_metrics_json

    if args.cascade:
        from ..cascade.evaluate import cascade_table, evaluate_cascade

        rows = evaluate_cascade(args.model, args.cascade, baseline=args.baseline, data_root=args.data, split=args.split,
                                latency_images=args.latency_images, progress=not args.no_progress)
        print(cascade_table(rows))
        if args.json:
            write_metrics_json(rows, args.json)
        return 0
    from ..workflows import evaluate_model

    metrics = evaluate_model(args.model, args.data, args.split, conf=args.conf, iou=args.iou,
                             progress=not args.no_progress, tta=args.tta)
    print(metrics_table(metrics))
    if args.json:
        write_metrics_json(metrics, args.json)
    return 0
