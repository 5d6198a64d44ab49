"""Semantic masks for COCO-format data: COCO-Stuff pixel maps, COCO-Stuff json, panoptic PNGs, or polygons.

Why several readers: COCO users hold one of these downloads, and each encodes "what class is this
pixel" differently. Every reader turns its format into the one canonical mask (contiguous labels,
255 = ignore) and declares its class list, so the rest of the library never sees the difference.

Class-space rules (written into ``DatasetMeta.seg_classes`` / ``seg_category_ids``):

* ``stuffmaps``: things of instances json + stuff categories of ``stuff_<split>.json`` (when present),
  sorted by category id; pixel value v is category id v + 1; 255 = unlabeled.
* ``stuff``: the same classes; stuff RLE / polygons are painted first, then thing instances on top.
  COCO-Stuff's merged class 183 "other" (all things) is ignored, since the things come from instances.
* ``panoptic``: the categories of ``panoptic_<split>.json`` sorted by id; void (segment id 0) and
  crowd segments are ignored.
* ``polygons``: "background" (id 0) + the thing classes; instances are painted largest first so a
  small object in front of a large one stays visible; crowd regions are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from .sample import IGNORE_INDEX, DataError, read_image, read_label_png

SEG_MODES = ("auto", "stuffmaps", "stuff", "panoptic", "polygons", "none")
STUFF_OTHER_ID = 183  # COCO-Stuff's "other": every thing pixel merged into one class
MAX_COORD = 100_000  # pixels; larger polygon coordinates are corrupt (and slow to rasterise)


def _is_id(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_segmentation(path: Path, ann_id: int, seg: Any) -> str | None:
    """Return why ``seg`` is not a valid COCO segmentation (polygon list or RLE dict), or None."""
    if isinstance(seg, list):
        if not seg:
            return "empty 'segmentation'"
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                return "polygon needs an even number (>= 6) of coordinates"
            if not all(isinstance(v, int | float) and not isinstance(v, bool) and -MAX_COORD < v < MAX_COORD
                       for v in poly):  # NaN fails the comparison too
                return f"polygon coordinates must be finite numbers within +-{MAX_COORD}"
        return None
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            return "RLE 'size' must be [height, width]"
        if not isinstance(counts, str | list):
            return "RLE 'counts' must be a string or a list of integers"
        if isinstance(counts, list) and not all(isinstance(v, int) and v >= 0 for v in counts):
            return "RLE 'counts' must be non-negative integers"
        return None
    return f"'segmentation' must be polygons or RLE, got {type(seg).__name__}"


def decode_segmentation(path: Path, ann_id: int, seg: Any, h: int, w: int) -> np.ndarray:
    """Polygons / RLE -> H x W bool; a mismatching RLE size or a corrupt RLE raises DataError."""
    try:
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        elif isinstance(seg["counts"], list):
            rle = mask_utils.frPyObjects(seg, *seg["size"])
        else:
            rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
        if list(rle["size"]) != [h, w]:
            raise DataError(f"{path}: annotation id {ann_id}: RLE size {list(rle['size'])} differs from image {h}x{w}")
        m = mask_utils.decode(rle)
    except (ValueError, TypeError, UnicodeEncodeError, IndexError) as e:
        raise DataError(f"{path}: annotation id {ann_id}: cannot decode segmentation ({e})") from None
    return m.astype(bool)


def paint_instances(mask: np.ndarray, path: Path, anns: list[dict], label_of) -> None:
    """Paint instance segmentations into ``mask`` largest first; ``label_of(ann)`` gives the value."""
    h, w = mask.shape
    for ann in sorted(anns, key=lambda a: -float(a.get("area") or 0.0)):
        if "segmentation" in ann:
            mask[decode_segmentation(path, ann["id"], ann["segmentation"], h, w)] = label_of(ann)


class StuffMaps:
    """COCO-Stuff ``stuffthingmaps_*/<split>/<stem>.png``: value = category id - 1, 255 = unlabeled."""

    def __init__(self, folder: Path, category_ids: list[int]):
        self.folder = folder
        self.lut = np.full(256, IGNORE_INDEX, np.uint8)
        for i, cid in enumerate(category_ids):
            if 1 <= cid <= 255:
                self.lut[cid - 1] = i

    def read(self, info: dict, things: list[dict], crowds: list[dict], h: int, w: int) -> np.ndarray:
        path = self.folder / (Path(info["file_name"]).stem + ".png")
        raw = read_label_png(str(path))
        if raw.shape != (h, w):
            raise DataError(f"{path}: label map is {raw.shape[1]}x{raw.shape[0]} but the image is {w}x{h}")
        return self.lut[raw.astype(np.int64).clip(0, 255)]


class StuffJson:
    """COCO-Stuff ``stuff_<split>.json`` (RLE per stuff class) + thing instances painted on top."""

    def __init__(self, path: Path, data: dict, category_ids: list[int], instances_path: Path | None):
        self.path, self.instances_path = path, instances_path
        self.label = {cid: i for i, cid in enumerate(category_ids)}
        self.by_image: dict[int, list[dict]] = {}
        for ann in data.get("annotations", []):
            if not isinstance(ann, dict) or not _is_id(ann.get("id")):
                raise DataError(f"{path}: annotation {str(ann)[:80]} has no integer 'id'")
            cid = ann.get("category_id")
            if not _is_id(ann.get("image_id")) or not _is_id(cid) or (cid not in self.label and cid != STUFF_OTHER_ID):
                raise DataError(f"{path}: annotation id {ann['id']}: unknown image_id or category_id")
            why = check_segmentation(path, ann["id"], ann.get("segmentation"))
            if why:
                raise DataError(f"{path}: annotation id {ann['id']}: {why}")
            self.by_image.setdefault(ann["image_id"], []).append(ann)

    def read(self, info: dict, things: list[dict], crowds: list[dict], h: int, w: int) -> np.ndarray:
        mask = np.full((h, w), IGNORE_INDEX, np.uint8)
        for ann in self.by_image.get(info["id"], []):
            region = decode_segmentation(self.path, ann["id"], ann["segmentation"], h, w)
            mask[region] = self.label.get(ann["category_id"], IGNORE_INDEX)
        paint_instances(mask, self.instances_path, things, lambda a: self.label[a["category_id"]])
        paint_instances(mask, self.instances_path, crowds, lambda a: IGNORE_INDEX)
        return mask


class Polygons:
    """Masks rasterised from instance polygons: 0 = background, thing label + 1 inside objects."""

    def __init__(self, instances_path: Path, category_ids: list[int]):
        self.path = instances_path
        self.label = {cid: i + 1 for i, cid in enumerate(category_ids)}

    def read(self, info: dict, things: list[dict], crowds: list[dict], h: int, w: int) -> np.ndarray:
        mask = np.zeros((h, w), np.uint8)
        paint_instances(mask, self.path, things, lambda a: self.label[a["category_id"]])
        paint_instances(mask, self.path, crowds, lambda a: IGNORE_INDEX)
        return mask


class Panoptic:
    """COCO panoptic: ``panoptic_<split>.json`` + RGB PNGs with segment id = R + 256 G + 256^2 B."""

    def __init__(self, path: Path, data: dict, png_dir: Path, category_ids: list[int]):
        self.path, self.png_dir = path, png_dir
        label = {cid: i for i, cid in enumerate(category_ids)}
        self.by_image: dict[int, tuple[str, dict[int, int]]] = {}
        for ann in data.get("annotations", []):
            if not isinstance(ann, dict) or not _is_id(ann.get("image_id")) \
                    or not isinstance(ann.get("file_name"), str) or not isinstance(ann.get("segments_info"), list):
                raise DataError(f"{path}: panoptic annotation {str(ann)[:80]} needs 'image_id', 'file_name', "
                                "'segments_info'")
            segments = {}
            for seg in ann["segments_info"]:
                if not isinstance(seg, dict) or not _is_id(seg.get("id")) or not _is_id(seg.get("category_id")) \
                        or seg["category_id"] not in label:
                    raise DataError(f"{path}: image id {ann['image_id']}: segment {str(seg)[:80]} has no integer 'id' "
                                    "or an unknown category_id")
                segments[seg["id"]] = IGNORE_INDEX if seg.get("iscrowd", 0) else label[seg["category_id"]]
            self.by_image[ann["image_id"]] = (ann["file_name"], segments)

    def read(self, info: dict, things: list[dict], crowds: list[dict], h: int, w: int) -> np.ndarray:
        entry = self.by_image.get(info["id"])
        if entry is None:
            raise DataError(f"{self.path}: no panoptic annotation for image id {info['id']}")
        png = self.png_dir / entry[0]
        rgb = read_image(str(png)).astype(np.int64)
        if rgb.shape[:2] != (h, w):
            raise DataError(f"{png}: panoptic PNG is {rgb.shape[1]}x{rgb.shape[0]} but the image is {w}x{h}")
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        mask = np.full((h, w), IGNORE_INDEX, np.uint8)
        present = np.unique(ids)
        unknown = [int(i) for i in present if i and int(i) not in entry[1]]
        if unknown:
            raise DataError(f"{png}: segment ids {unknown[:5]} are not in segments_info of image id {info['id']}")
        for sid in present:
            if sid:
                mask[ids == sid] = entry[1][int(sid)]
        return mask


def find_panoptic_pngs(root: Path, split: str) -> Path | None:
    for cand in (root / "annotations" / f"panoptic_{split}", root / f"panoptic_{split}"):
        if cand.is_dir():
            return cand
    return None
