"""COCO-format reader: instances (boxes), person_keypoints (17 keypoints), COCO-Stuff pixel maps (semantic).

Layout (the one COCO downloads unpack to; the synthetic generator writes the same)::

    <root>/<split>/*.jpg                                   (or <root>/images/<split>/)
    <root>/annotations/instances_<split>.json
    <root>/annotations/person_keypoints_<split>.json       optional
    <root>/stuffthingmaps*/<split>/*.png                   optional, value = category id - 1, 255 = unlabeled
    <root>/annotations/stuff_<split>.json                  optional, COCO-Stuff RLE
    <root>/annotations/panoptic_<split>.json + panoptic_<split>/*.png   optional, COCO panoptic

Semantic masks come from the first of these that exists (``seg="auto"``), else are rasterised from the
instance polygons; see ``semantic.py`` for each class-space rule.

Category ids are remapped to contiguous labels in sorted-id order; the mapping is kept in
``DatasetMeta`` and travels with checkpoints and exports. Structurally malformed annotations raise
``DataError`` naming the file and annotation id; degenerate boxes (zero area) and crowd regions are
skipped for training and counted in ``CocoSource.skipped``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .meta import DatasetMeta, default_sigmas, flip_index_from_names
from .objects import object_map, outline_of
from .sample import DataError, Sample, read_image
from .semantic import (
    MAX_COORD,
    SEG_MODES,
    STUFF_OTHER_ID,
    Panoptic,
    Polygons,
    StuffJson,
    StuffMaps,
    check_segmentation,
    find_panoptic_pngs,
)


def load_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: top level must be an object with 'images', 'annotations', 'categories'")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: missing or invalid '{key}' list")
    if not isinstance(data.get("annotations", []), list):
        raise DataError(f"{path}: 'annotations' must be a list")
    return data


def _is_number(v: Any) -> bool:
    if not isinstance(v, int | float) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v) and abs(v) < 1e12  # beyond this no image coordinate is meaningful
    except OverflowError:  # an integer too large for a float
        return False


def _is_id(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _categories(path: Path, data: dict[str, Any]) -> list[dict[str, Any]]:
    cats = []
    for c in data["categories"]:
        if not isinstance(c, dict) or not _is_id(c.get("id")):
            raise DataError(f"{path}: category {c!r} has no integer 'id'")
        if not isinstance(c.get("name"), str):
            raise DataError(f"{path}: category id {c['id']} has no 'name'")
        cats.append(c)
    ids = [c["id"] for c in cats]
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: duplicate category ids {sorted({i for i in ids if ids.count(i) > 1})}")
    return sorted(cats, key=lambda c: c["id"])


def _images(path: Path, data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    images = {}
    for im in data["images"]:
        if not isinstance(im, dict) or not _is_id(im.get("id")) or not isinstance(im.get("file_name"), str):
            raise DataError(f"{path}: image entry {str(im)[:80]} needs an integer 'id' and a 'file_name'")
        for k in ("width", "height"):
            if k in im and (not _is_number(im[k]) or im[k] <= 0):
                raise DataError(f"{path}: image id {im['id']} has invalid {k} {im[k]!r}")
        if im["id"] in images:
            raise DataError(f"{path}: duplicate image id {im['id']}")
        images[im["id"]] = im
    return images


def _find_stuff_maps(root: Path, split: str) -> Path | None:
    for cand in sorted(root.glob("stuffthingmaps*")):
        if (cand / split).is_dir():
            return cand / split
    return None


def _find_image_dir(root: Path, split: str) -> Path:
    for cand in (root / split, root / "images" / split, root / "images"):
        if cand.is_dir():
            return cand
    raise DataError(f"{root}: no image folder for split '{split}' (looked for {split}/ and images/{split}/)")


def _skeleton(path: Path, cat: dict[str, Any], num_keypoints: int) -> list[list[int]]:
    """COCO skeletons are 1-based index pairs; return them 0-based after checking every pair."""
    raw = cat.get("skeleton", [])
    ok = isinstance(raw, list) and all(
        isinstance(e, list) and len(e) == 2 and all(_is_id(v) and 1 <= v <= num_keypoints for v in e) for e in raw)
    if not ok:
        raise DataError(f"{path}: category id {cat['id']}: 'skeleton' must be pairs of 1-based keypoint indices")
    return [[a - 1, b - 1] for a, b in raw]


@dataclass
class _Record:
    info: dict[str, Any]
    anns: list[dict[str, Any]] = field(default_factory=list)
    crowds: list[dict[str, Any]] = field(default_factory=list)  # regions ignored by the semantic mask
    crowd_outlines: list[dict[str, Any]] = field(default_factory=list)  # regions ignored by object maps


class CocoSource:
    """One split of a COCO-format data set, read into memory once (annotations only, not images)."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        instances: str | Path | None = None,
        keypoints: str | Path | None = None,
        stuff_maps: str | Path | None = None,
        image_dir: str | Path | None = None,
        seg: str = "auto",
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: data folder not found")
        ann_dir = self.root / "annotations"
        inst_path = Path(instances) if instances else ann_dir / f"instances_{split}.json"
        kpt_path = Path(keypoints) if keypoints else ann_dir / f"person_keypoints_{split}.json"
        if not inst_path.is_file() and not kpt_path.is_file():
            raise DataError(f"{self.root}: neither {inst_path.name} nor {kpt_path.name} found under {inst_path.parent}")
        self.split = split
        self.image_dir = Path(image_dir) if image_dir else _find_image_dir(self.root, split)
        self.instances_path = inst_path if inst_path.is_file() else None
        self.keypoints_path = kpt_path if kpt_path.is_file() else None
        maps = Path(stuff_maps) if stuff_maps else _find_stuff_maps(self.root, split)
        self.stuff_maps = maps if maps is not None and maps.is_dir() else None
        if seg not in SEG_MODES:
            raise DataError(f"{self.root}: unknown semantic-mask mode '{seg}' (choose from {', '.join(SEG_MODES)})")
        self.seg_mode = seg
        self.skipped: list[str] = []
        self._load()

    # -- annotation parsing ---------------------------------------------------------------------------
    def _load(self) -> None:
        det_data = load_json(self.instances_path) if self.instances_path else None
        kpt_data = load_json(self.keypoints_path) if self.keypoints_path else None
        main_path = self.instances_path or self.keypoints_path
        main = det_data or kpt_data
        self.images = _images(main_path, main)
        det_cats = _categories(main_path, main)
        self.cat_to_label = {c["id"]: i for i, c in enumerate(det_cats)}

        names: list[str] = []
        skeleton: list[list[int]] = []
        kpt_cat_id = None
        if kpt_data is not None:
            for c in _categories(self.keypoints_path, kpt_data):
                if isinstance(c.get("keypoints"), list) and c["keypoints"]:
                    kpt_cat_id, names = c["id"], [str(n) for n in c["keypoints"]]
                    skeleton = _skeleton(self.keypoints_path, c, len(names))
                    break
            if kpt_cat_id is None:
                raise DataError(f"{self.keypoints_path}: no category has a non-empty 'keypoints' name list")
            if kpt_cat_id not in self.cat_to_label:
                raise DataError(f"{self.keypoints_path}: keypoint category id {kpt_cat_id} is not a category of {main_path.name}")
        self.num_keypoints = len(names)
        seg_cats = self._semantic_reader(det_cats, main_path, main)
        self.meta = DatasetMeta(
            det_classes=[c["name"] for c in det_cats],
            det_category_ids=[c["id"] for c in det_cats],
            seg_classes=[c["name"] for c in seg_cats],
            seg_category_ids=[c["id"] for c in seg_cats],
            keypoint_names=names,
            skeleton=skeleton,
            flip_index=flip_index_from_names(names),
            keypoint_class=self.cat_to_label.get(kpt_cat_id, -1) if kpt_cat_id is not None else -1,
            keypoint_sigmas=default_sigmas(len(names)) if names else [],
        )

        records = {iid: _Record(info) for iid, info in self.images.items()}
        kpts_by_ann: dict[int, list[float]] = {}
        if kpt_data is not None:
            for ann in kpt_data.get("annotations", []):
                self._check_ann(self.keypoints_path, ann)
                kp = ann.get("keypoints")
                if not isinstance(kp, list) or len(kp) != 3 * self.num_keypoints or not all(_is_number(v) for v in kp):
                    raise DataError(f"{self.keypoints_path}: annotation id {ann['id']}: 'keypoints' must be "
                                    f"{3 * self.num_keypoints} finite numbers")
                if any(v not in (0, 1, 2) for v in kp[2::3]):
                    raise DataError(f"{self.keypoints_path}: annotation id {ann['id']}: visibility flags must be 0, 1 or 2")
                kpts_by_ann[ann["id"]] = kp
        if det_data is not None:
            ann_source, path = det_data.get("annotations", []), self.instances_path
        else:
            ann_source, path = kpt_data.get("annotations", []), self.keypoints_path
        seen: set[int] = set()
        self.has_outlines = False  # any object has an instance outline: samples then carry object maps
        for ann in ann_source:
            self._check_ann(path, ann)
            if ann["id"] in seen:
                raise DataError(f"{path}: duplicate annotation id {ann['id']}")
            seen.add(ann["id"])
            rec = records[ann["image_id"]]
            x, y, w, h = ann["bbox"]
            seg_ann = self._seg_annotation(path, ann)
            outline = outline_of(path, ann)
            if ann.get("iscrowd", 0):
                self.skipped.append(f"{path.name}: annotation id {ann['id']}: crowd region (not a training target)")
                if seg_ann is not None:
                    rec.crowds.append(seg_ann)
                rec.crowd_outlines += [outline] if outline is not None else []
                continue
            if w < 1 or h < 1:
                self.skipped.append(f"{path.name}: annotation id {ann['id']}: degenerate box {ann['bbox']}")
                continue
            rec_ann = {"id": ann["id"], "bbox": [x, y, x + w, y + h], "label": self.cat_to_label[ann["category_id"]]}
            if ann["id"] in kpts_by_ann:
                rec_ann["keypoints"] = kpts_by_ann[ann["id"]]
            if outline is not None:
                rec_ann["outline"] = outline
                self.has_outlines = True
            if seg_ann is not None and seg_ann.get("ignore"):
                rec.crowds.append(seg_ann)
            elif seg_ann is not None:
                rec_ann.update(seg_ann)
            rec.anns.append(rec_ann)
        self.records = [records[i] for i in sorted(records)]
        self.has_pose = kpt_data is not None and self.num_keypoints > 0
        self.has_det = det_data is not None

    def _semantic_reader(self, det_cats: list[dict[str, Any]], main_path: Path, main: dict) -> list[dict[str, Any]]:
        """Pick the semantic-mask format (see module docstring) and return its categories."""
        ann_dir = self.root / "annotations"
        stuff_json = ann_dir / f"stuff_{self.split}.json"
        pan_json = ann_dir / f"panoptic_{self.split}.json"
        pan_pngs = find_panoptic_pngs(self.root, self.split)
        mode = self.seg_mode
        if mode == "auto":
            has_polygons = any(isinstance(a, dict) and "segmentation" in a for a in main.get("annotations", []))
            mode = ("stuffmaps" if self.stuff_maps is not None else "stuff" if stuff_json.is_file()
                    else "panoptic" if pan_json.is_file() and pan_pngs is not None
                    else "polygons" if has_polygons else "none")
        self.seg_mode = mode
        self.semantic = None
        if mode == "none":
            return []
        if mode == "panoptic":
            if not pan_json.is_file() or pan_pngs is None:
                raise DataError(f"{self.root}: seg=panoptic needs {pan_json} and a panoptic_{self.split}/ PNG folder")
            data = load_json(pan_json)
            cats = _categories(pan_json, data)
            self.semantic = Panoptic(pan_json, data, pan_pngs, [c["id"] for c in cats])
            return cats
        if mode == "polygons":
            self.semantic = Polygons(main_path, [c["id"] for c in det_cats])
            return [{"id": 0, "name": "background"}] + det_cats
        cats = det_cats[:]
        stuff_data = load_json(stuff_json) if stuff_json.is_file() else None
        if stuff_data is not None:
            stuff_cats = [c for c in _categories(stuff_json, stuff_data) if c["id"] != STUFF_OTHER_ID]
            cats = sorted({c["id"]: c for c in det_cats + stuff_cats}.values(), key=lambda c: c["id"])
        ids = [c["id"] for c in cats]
        if mode == "stuffmaps":
            if self.stuff_maps is None:
                raise DataError(f"{self.root}: seg=stuffmaps needs a stuffthingmaps*/{self.split}/ folder")
            if stuff_data is None:
                self.skipped.append(f"{stuff_json.name} not found: stuff pixels of the maps are ignored (255)")
            self.semantic = StuffMaps(self.stuff_maps, ids)
        else:
            if stuff_data is None:
                raise DataError(f"{self.root}: seg=stuff needs {stuff_json}")
            self.semantic = StuffJson(stuff_json, stuff_data, ids, main_path)
        return cats

    def _seg_annotation(self, path: Path, ann: dict[str, Any]) -> dict[str, Any] | None:
        """What the semantic reader needs of an instance; a broken outline makes its box an ignore region."""
        if self.seg_mode not in ("stuff", "polygons"):
            return None
        out = {"id": ann["id"], "category_id": ann["category_id"], "area": ann.get("area") if _is_number(
            ann.get("area")) else ann["bbox"][2] * ann["bbox"][3]}
        why = check_segmentation(path, ann["id"], ann["segmentation"]) if "segmentation" in ann else "no 'segmentation'"
        if why is None:
            return {**out, "segmentation": ann["segmentation"]}
        x1, y1, x2, y2 = np.clip([ann["bbox"][0], ann["bbox"][1], ann["bbox"][0] + ann["bbox"][2],
                                  ann["bbox"][1] + ann["bbox"][3]], 0, MAX_COORD).tolist()
        self.skipped.append(f"{path.name}: annotation id {ann['id']}: {why}; its box is ignored by the semantic mask")
        return {**out, "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]], "ignore": True}

    def _check_ann(self, path: Path, ann: Any) -> None:
        if not isinstance(ann, dict) or not _is_id(ann.get("id")):
            raise DataError(f"{path}: annotation {str(ann)[:80]} has no integer 'id'")
        aid = ann["id"]
        if not _is_id(ann.get("image_id")) or ann["image_id"] not in self.images:
            raise DataError(f"{path}: annotation id {aid}: unknown image_id {ann.get('image_id')!r}")
        if not _is_id(ann.get("category_id")) or ann["category_id"] not in self.cat_to_label:
            raise DataError(f"{path}: annotation id {aid}: unknown category_id {ann.get('category_id')!r}")
        box = ann.get("bbox")
        if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
            raise DataError(f"{path}: annotation id {aid}: 'bbox' must be 4 finite numbers [x, y, w, h], got {box!r}")
        if box[2] < 0 or box[3] < 0:
            raise DataError(f"{path}: annotation id {aid}: negative box size {box}")

    # -- samples ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def image_path(self, index: int) -> Path:
        return self.image_dir / self.records[index].info["file_name"]

    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes xyxy, labels, keypoints) of one image without reading it (for statistics)."""
        anns = self.records[index].anns
        kpts = np.zeros((len(anns), self.num_keypoints, 3), np.float32)
        for i, a in enumerate(anns):
            if "keypoints" in a:
                kpts[i] = np.asarray(a["keypoints"], np.float32).reshape(-1, 3)
        return (np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4),
                np.array([a["label"] for a in anns], np.int64), kpts)

    def load(self, index: int) -> Sample:
        rec = self.records[index]
        path = self.image_path(index)
        image = read_image(str(path), image_id=rec.info["id"])
        h, w = image.shape[:2]
        K = self.num_keypoints
        boxes = np.array([a["bbox"] for a in rec.anns], np.float32).reshape(-1, 4)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        labels = np.array([a["label"] for a in rec.anns], np.int64)
        kpts = np.zeros((len(rec.anns), K, 3), np.float32)
        for i, a in enumerate(rec.anns):
            if "keypoints" in a:
                kpts[i] = np.asarray(a["keypoints"], np.float32).reshape(K, 3)
        mask = None
        if self.semantic is not None:
            things = [a for a in rec.anns if "segmentation" in a]
            mask = self.semantic.read(rec.info, things, rec.crowds, h, w)
        objects = object_map(path, rec.anns, rec.crowd_outlines, h, w) if self.has_outlines else None
        return Sample(image=image, boxes=boxes, labels=labels, keypoints=kpts, mask=mask,
                      has_det=self.has_det, has_pose=self.has_pose, has_seg=mask is not None,
                      image_id=int(rec.info["id"]), path=str(path), objects=objects)
