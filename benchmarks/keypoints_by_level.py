"""Keypoint precision by pyramid level: which stride's anchors predict a person's skeleton, and how well.

    python benchmarks/keypoints_by_level.py CKPT --data DIR [--split val] [--out benchmarks/results/keypoints_by_level.json]

Why: detection and pose share anchors, so a person's skeleton comes from whichever anchor wins NMS. On the
quickstart (8/16/32 heads) the winner for the larger persons was a stride-16 anchor whose face keypoints
were ~4x further off than a stride-8 anchor's; that is what ``model.head_strides`` is for. For every
ground-truth person with labelled keypoints this takes the highest-scoring anchor whose box has IoU > 0.5
with it ("as deployed") and, separately, the best such anchor of each level, and reports per level: how
many persons it serves, the median face (nose, eyes, ears) and body keypoint error in pixels, and the
fraction of persons with OKS >= 0.5 (COCO's OKS with the annotation's area and the data set's sigmas).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from mtnet.checkpoint_io import load_model_from_checkpoint
from mtnet.data.coco import CocoSource, load_json
from mtnet.data.preprocess import letterbox, normalize
from mtnet.losses.boxes import box_iou_pairwise
from mtnet.losses.pose import keypoint_similarity
from mtnet.models.heads.detection import distances_to_boxes, distances_to_pixels
from mtnet.models.heads.pose import keypoints_to_pixels

FACE = slice(0, 5)  # COCO order: nose, eyes, ears come first


def person_areas(keypoints_json: Path) -> dict[int, list[tuple[list[float], float]]]:
    """image id -> [(xywh box, segment area)] of persons with labelled keypoints (OKS needs the area)."""
    out: dict[int, list[tuple[list[float], float]]] = {}
    for ann in load_json(keypoints_json)["annotations"]:
        if ann.get("num_keypoints", 0) > 0 and not ann.get("iscrowd", 0):
            out.setdefault(ann["image_id"], []).append((ann["bbox"], float(ann["area"])))
    return out


def area_of(box: np.ndarray, candidates: list[tuple[list[float], float]]) -> float:
    """The annotation area of the ground-truth box ``box`` (xyxy): the candidate with the nearest bbox."""
    xywh = np.array([box[0], box[1], box[2] - box[0], box[3] - box[1]])
    return min(candidates, key=lambda c: np.abs(np.array(c[0]) - xywh).sum())[1]


def oks(pred: np.ndarray, gt: np.ndarray, area: float, sigmas: np.ndarray) -> float:
    """COCO's object keypoint similarity over the labelled keypoints (the training loss's formula)."""
    sim = keypoint_similarity(torch.from_numpy(pred[None]), torch.from_numpy(gt[None]), torch.tensor([area]),
                              torch.from_numpy(sigmas))[0]
    return float(sim[torch.from_numpy(gt[:, 2] > 0)].mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="COCO-format folder with person_keypoints_<split>.json")
    p.add_argument("--split", default="val")
    p.add_argument("--out", default="benchmarks/results/keypoints_by_level.json")
    args = p.parse_args()
    torch.set_num_threads(2)
    model, cfg = load_model_from_checkpoint(args.checkpoint)
    if "pose" not in model.tasks:
        raise SystemExit(f"{args.checkpoint}: the model has no pose head")
    source = CocoSource(args.data, args.split)
    if source.keypoints_path is None:
        raise SystemExit(f"{args.data}: no person_keypoints_{args.split}.json")
    areas = person_areas(source.keypoints_path)
    sigmas = np.array(model.meta.keypoint_sigmas, dtype=np.float32)
    person = model.meta.keypoint_class
    rows: list[dict] = []  # one per (person, choice): choice = "deployed" or a stride
    for i in range(len(source)):
        sample = source.load(i)
        image, _, scale = letterbox(sample.image, cfg.data.imgsz)
        with torch.no_grad():
            out = model(normalize(torch.from_numpy(image[None])))
        points, strides = out["points"], out["strides"]
        boxes = distances_to_boxes(distances_to_pixels(out["box"][0], strides), points) / scale
        scores = out["cls"][0, :, person].sigmoid()
        kpts = (keypoints_to_pixels(out["kpt"][0], out["kpt_points"], out["kpt_strides"])[..., :2] / scale).numpy()
        for box, label, gt in zip(sample.boxes, sample.labels, sample.keypoints, strict=True):
            if label != person or not (gt[:, 2] > 0).any():
                continue
            area = area_of(box, areas[sample.image_id])
            near = box_iou_pairwise(torch.from_numpy(box[None]), boxes) > 0.5
            choices = {"deployed": near, **{int(s): near & (strides == s) for s in model.strides}}
            for choice, ok in choices.items():
                if not ok.any():
                    continue
                a = int(torch.where(ok, scores, torch.full_like(scores, -1)).argmax())
                err = np.linalg.norm(kpts[a] - gt[:, :2], axis=1)
                v = gt[:, 2] > 0
                rows.append({"choice": choice, "stride": int(strides[a]), "oks": oks(kpts[a], gt, area, sigmas),
                             "face_err": [float(e) for e in err[FACE][v[FACE]]],
                             "body_err": [float(e) for e in err[5:][v[5:]]]})
    report = summarise(rows, model.strides)
    print_table(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"checkpoint": args.checkpoint, "data": args.data, "split": args.split,
                                          "head_strides": list(model.strides), "rows": report}, indent=2))
    print(f"wrote {args.out}")


def summarise(rows: list[dict], head_strides: tuple[int, ...]) -> list[dict]:
    groups = [("deployed: top-scoring anchor, any level", [r for r in rows if r["choice"] == "deployed"])]
    groups += [(f"deployed, won by a stride-{s} anchor", [r for r in rows if r["choice"] == "deployed"
                                                          and r["stride"] == s]) for s in head_strides]
    groups += [(f"best stride-{s} anchor (forced)", [r for r in rows if r["choice"] == s]) for s in head_strides]
    out = []
    for name, g in groups:
        if not g:
            continue
        face = [e for r in g for e in r["face_err"]]
        body = [e for r in g for e in r["body_err"]]
        out.append({"anchors": name, "persons": len(g),
                    "oks_ge_0.5": sum(r["oks"] >= 0.5 for r in g) / len(g),
                    "median_face_err_px": statistics.median(face) if face else None,
                    "median_body_err_px": statistics.median(body) if body else None})
    return out


def print_table(report: list[dict]) -> None:
    print(f"{'anchors':<42} {'persons':>7} {'OKS>=0.5':>8} {'face px':>8} {'body px':>8}")
    for r in report:
        face, body = r["median_face_err_px"], r["median_body_err_px"]
        print(f"{r['anchors']:<42} {r['persons']:>7} {r['oks_ge_0.5']:>8.2f} "
              f"{face if face is None else round(face, 1):>8} {body if body is None else round(body, 1):>8}")


if __name__ == "__main__":
    main()
