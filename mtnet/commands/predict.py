"""mtnet predict MODEL IMAGES... --out DIR: draw boxes, skeletons and the segmentation overlay."""

from __future__ import annotations

import argparse

from ..decode import DISPLAY_CONF, NMS_IOU


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="checkpoint (.pt) or exported model")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--out", default="predictions", help="output folder")
    p.add_argument("--conf", type=float, default=DISPLAY_CONF, help="score threshold of drawn detections")
    p.add_argument("--iou", type=float, default=NMS_IOU)


def run(args: argparse.Namespace) -> int:
    from ..workflows import predict_files

    for path in predict_files(args.model, args.images, args.out, conf=args.conf, iou=args.iou):
        print(path)
    return 0
