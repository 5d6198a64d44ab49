"""A COCO-layout copy of a data set restricted to some categories (instances json filtered, images and the
keypoint json linked): how the peers' task sets are given to mtnet (YOLO11n-pose detects persons only)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from mtnet.fileio import atomic_write


def unlabelled_pose_ids(keypoints_json: Path) -> set[int]:
    """Annotation ids of keypoint-category objects with no labelled keypoint (COCO: persons under 32² px)."""
    gt = json.loads(keypoints_json.read_text())
    pose_cats = {c["id"] for c in gt["categories"] if c.get("keypoints")}
    return {a["id"] for a in gt["annotations"] if a["category_id"] in pose_cats and not any(a.get("keypoints", [])[2::3])}


def category_subset(data: Path, out: Path, names: list[str], splits: tuple[str, ...] = ("train", "val"),
                    pose_labelled_only: tuple[str, ...] = ()) -> Path:
    """Write ``out`` with ``annotations/instances_<split>.json`` keeping only the categories ``names``; the
    image folders and ``person_keypoints_<split>.json`` are symlinks into ``data``. Returns ``out``.

    ``pose_labelled_only``: splits whose persons without a labelled keypoint are dropped as well, the labels
    ultralytics' ``convert_coco`` gives a pose model (COCOeval ignores those persons for OKS-AP)."""
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for split in splits:
        gt = json.loads((data / "annotations" / f"instances_{split}.json").read_text())
        keep = {c["id"] for c in gt["categories"] if c["name"] in names}
        missing = set(names) - {c["name"] for c in gt["categories"] if c["id"] in keep}
        if missing:
            raise ValueError(f"{data}: no categories named {sorted(missing)}")
        drop = (unlabelled_pose_ids(data / "annotations" / f"person_keypoints_{split}.json")
                if split in pose_labelled_only else set())
        gt["categories"] = [c for c in gt["categories"] if c["id"] in keep]
        gt["annotations"] = [a for a in gt["annotations"] if a["category_id"] in keep and a["id"] not in drop]
        target = out / "annotations" / f"instances_{split}.json"
        atomic_write(target, lambda tmp, gt=gt: Path(tmp).write_text(json.dumps(gt)))
        for link, source in ((out / split, data / split),
                             (out / "annotations" / f"person_keypoints_{split}.json",
                              data / "annotations" / f"person_keypoints_{split}.json")):
            if source.exists() and not link.is_symlink():
                with contextlib.suppress(FileExistsError):  # another process linked it meanwhile
                    link.symlink_to(source.resolve())
    return out
