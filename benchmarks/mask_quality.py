"""Where instance masks lose against boxes, per class: how well each ground-truth object's mask is covered by
the mask of its best-matching detection, next to what a perfect mask on the prototype grid could reach.

    python benchmarks/mask_quality.py RUN/best.pt [--data data/synthetic] [--split val] [--out FILE.json]

For every ground-truth object (crowds skipped) the detection with the highest box IoU is matched; among
objects whose box is found (IoU > 0.5) it reports the share whose mask IoU exceeds 0.5 (what mask AP50 needs
beyond box AP50), the mean mask IoU, and the mask's recall (ground-truth pixels covered) and precision.
"grid bound": the ground-truth mask area-averaged onto the stride-4 prototype grid, upsampled and cropped the
way ``mtnet.decode_masks`` decodes, scored the same way: the ceiling that the prototype resolution sets.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch
from faster_coco_eval import COCO

from mtnet.cascade.crop_set import box_iou
from mtnet.decode_masks import assemble_masks
from mtnet.fileio import atomic_write
from mtnet.infer.predictor import Predictor
from mtnet.losses.instance import to_grid

PROTO_STRIDE = 4


def grid_bound(gt: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The ground-truth mask after a round trip through the prototype grid: area-averaged onto it as training
    targets are (``to_grid``), then decoded as predictions are (``assemble_masks``: bilinear upsampling,
    threshold, crop to ``box``) on a square canvas holding the image at its top left."""
    h, w = gt.shape
    side = -(-max(h, w) // PROTO_STRIDE) * PROTO_STRIDE
    canvas = np.zeros((side, side), np.float32)
    canvas[:h, :w] = gt
    ones = torch.ones(1, side, side)
    soft, _ = to_grid(torch.from_numpy(canvas)[None], ones, side // PROTO_STRIDE, side // PROTO_STRIDE)
    p = soft.clamp(1e-4, 1 - 1e-4).numpy()
    return assemble_masks(np.ones((1, 1), np.float32), np.log(p / (1 - p)), box[None], side)[0, :h, :w]


def overlap(mask: np.ndarray, gt: np.ndarray) -> tuple[float, float, float]:
    inter = float((mask & gt).sum())
    return inter / max(1.0, float((mask | gt).sum())), inter / max(1.0, float(gt.sum())), inter / max(1.0, float(mask.sum()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--data", default="data/synthetic")
    p.add_argument("--split", default="val")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    coco = COCO(str(Path(args.data) / "annotations" / f"instances_{args.split}.json"))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    predictor = Predictor.from_checkpoint(args.checkpoint, conf=0.25)
    per_class: dict[str, list[tuple[float, ...]]] = {}
    for img in coco.loadImgs(coco.getImgIds()):
        image = cv2.imread(str(Path(args.data) / args.split / img["file_name"]))
        if image is None:
            raise FileNotFoundError(f"cannot read {img['file_name']} under {args.data}/{args.split}")
        pred = predictor.predict([image[:, :, ::-1]])[0]
        det, masks = pred.detections, pred.results.get("inst")
        if masks is None:
            raise SystemExit(f"{args.checkpoint} has no inst task")
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"], iscrowd=False)):
            gt = coco.annToMask(ann) > 0
            x, y, w, h = ann["bbox"]
            box = np.array([x, y, x + w, y + h])
            bound = overlap(grid_bound(gt, box), gt)[0]
            if not len(det):
                per_class.setdefault(names[ann["category_id"]], []).append((0.0, 0.0, 0.0, 0.0, bound))
                continue
            ious = box_iou(det.boxes, box[None])[:, 0]
            j = int(np.argmax(ious))
            per_class.setdefault(names[ann["category_id"]], []).append((float(ious[j]), *overlap(masks[j], gt), bound))
    rows = {}
    for name, values in per_class.items():
        v = np.array(values)
        found = v[v[:, 0] > 0.5]
        rows[name] = {"objects": len(v), "box_found": round(len(found) / len(v), 3),
                      "mask_iou_over_0.5": round(float((found[:, 1] > 0.5).mean()), 3) if len(found) else None,
                      "mean_mask_iou": round(float(found[:, 1].mean()), 3) if len(found) else None,
                      "mask_recall": round(float(found[:, 2].mean()), 3) if len(found) else None,
                      "mask_precision": round(float(found[:, 3].mean()), 3) if len(found) else None,
                      "grid_bound_mean_iou": round(float(v[:, 4].mean()), 3)}
    print("| class | objects | box found | of those, mask IoU > 0.5 | mean mask IoU | mask recall | mask precision | grid bound IoU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['objects']} | {r['box_found']} | {r['mask_iou_over_0.5']} | {r['mean_mask_iou']} | "
              f"{r['mask_recall']} | {r['mask_precision']} | {r['grid_bound_mean_iou']} |")
    if args.out:
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(
            {"checkpoint": args.checkpoint, "data": args.data, "split": args.split, "classes": rows}, indent=2)))


if __name__ == "__main__":
    main()
