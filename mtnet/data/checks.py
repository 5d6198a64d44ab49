"""``mtnet data check``: list every problem of a data set with its file and annotation id.

Unlike the readers (which stop at the first structural error, because training cannot go on), the
checker keeps going and reports everything it finds. Errors make training fail or learn wrong labels
(missing/unreadable images, unknown or duplicate ids, malformed fields, visibility flags out of range,
masks whose size differs from the image); warnings are handled by the readers but worth knowing
(zero-area boxes that are skipped, boxes or keypoints partly outside the image that are clipped,
classes absent from a split).

Images and label maps are decoded in full by default (``decode=True``), in a few threads (Pillow's
decoders release the GIL): a header-only pass misses files cut short, whose header is intact but whose
pixels end early, and those are what stop a training run hours in. ``decode=False`` (``--fast``) reads
headers only.
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from .sample import DataError
from .semantic import check_segmentation, find_panoptic_pngs
from .voc import VocLabels, voc_labels

TOLERANCE = 1.0  # pixels a box or keypoint may exceed the image before it is reported
DECODE_WORKERS = min(8, os.cpu_count() or 1)  # threads decoding images in full


@dataclass(frozen=True)
class Issue:
    severity: str  # "error" | "warning"
    file: str
    where: str  # "annotation id 12", "image id 3", "" for the whole file
    message: str

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.severity.upper():7s} {self.file}: {where}{self.message}"


def _num(v: Any) -> bool:
    if not isinstance(v, int | float) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v) and abs(v) < 1e12
    except OverflowError:
        return False


def _id(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


Size = tuple[int, int] | str  # (width, height), or why the file cannot be used


def _image_size(path: Path, decode: bool = False) -> Size:
    """(width, height) of an image, read from the header or (``decode``) after decoding every pixel."""
    try:
        with Image.open(path) as im:
            if decode:
                im.load()
            return im.size
    except FileNotFoundError:
        return "image file not found"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        return f"cannot read image ({e})"


class _Report:
    def __init__(self, decode: bool = True, progress: bool = False) -> None:
        self.issues: list[Issue] = []
        self.decode, self.progress = decode, progress

    def sizes(self, paths: Sequence[Path], what: str = "images",
              read: Callable[[Path], Size] | None = None) -> list[Size]:
        """``read`` (default: ``_image_size``) of every path; decoding runs in threads with a progress bar."""
        if read is None:
            read = lambda p: _image_size(p, self.decode)  # noqa: E731
        if not self.decode or len(paths) < 2:
            return [read(p) for p in paths]
        with ThreadPoolExecutor(DECODE_WORKERS) as pool:
            return list(tqdm(pool.map(read, paths), total=len(paths), desc=f"decoding {what}", unit="file",
                             disable=not self.progress, leave=False))

    def error(self, file: Path | str, where: str, message: str) -> None:
        self.issues.append(Issue("error", str(file), where, message))

    def warn(self, file: Path | str, where: str, message: str) -> None:
        self.issues.append(Issue("warning", str(file), where, message))


def _load(report: _Report, path: Path) -> dict | None:
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        report.error(path, "", f"not valid JSON ({e})")
        return None
    if not isinstance(data, dict):
        report.error(path, "", "top level must be an object")
        return None
    for key in ("images", "categories", "annotations"):
        if not isinstance(data.get(key, []), list) or (key != "annotations" and key not in data):
            report.error(path, "", f"missing or invalid '{key}' list")
            return None
    return data


def _check_images(report: _Report, path: Path, data: dict, image_dir: Path | None) -> dict[int, dict]:
    images: dict[int, dict] = {}
    files: list[tuple[Path, dict]] = []
    for im in data["images"]:
        if not isinstance(im, dict) or not _id(im.get("id")):
            report.error(path, "", f"image entry {str(im)[:60]} has no integer 'id'")
            continue
        where = f"image id {im['id']}"
        if im["id"] in images:
            report.error(path, where, "duplicate image id")
            continue
        if not isinstance(im.get("file_name"), str):
            report.error(path, where, "missing 'file_name'")
            continue
        for k in ("width", "height"):
            if not _num(im.get(k)) or im[k] <= 0:
                report.error(path, where, f"invalid {k} {im.get(k)!r}")
        images[im["id"]] = im
        if image_dir is not None:
            files.append((image_dir / im["file_name"], im))
    for (file, im), size in zip(files, report.sizes([f for f, _ in files]), strict=True):
        where = f"image id {im['id']}"
        if isinstance(size, str):
            report.error(file, where, size)
        elif _num(im.get("width")) and _num(im.get("height")) and size != (im["width"], im["height"]):
            report.error(file, where, f"image is {size[0]}x{size[1]} but the json says {im['width']}x{im['height']}")
    return images


def _check_categories(report: _Report, path: Path, data: dict) -> dict[int, dict]:
    cats: dict[int, dict] = {}
    for c in data["categories"]:
        if not isinstance(c, dict) or not _id(c.get("id")):
            report.error(path, "", f"category {str(c)[:60]} has no integer 'id'")
        elif c["id"] in cats:
            report.error(path, f"category id {c['id']}", "duplicate category id")
        else:
            cats[c["id"]] = c
            if not isinstance(c.get("name"), str):
                report.error(path, f"category id {c['id']}", "missing 'name'")
            names = c.get("keypoints")
            if isinstance(names, list) and names:
                skeleton = c.get("skeleton", [])
                if not isinstance(skeleton, list) or not all(
                        isinstance(e, list) and len(e) == 2 and all(
                            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= len(names) for v in e)
                        for e in skeleton):
                    report.error(path, f"category id {c['id']}", "'skeleton' must be pairs of 1-based keypoint indices")
    return cats


def _check_keypoints(report: _Report, path: Path, where: str, kp: Any, k: int, w: float, h: float) -> None:
    if not isinstance(kp, list) or len(kp) != 3 * k or not all(_num(v) for v in kp):
        report.error(path, where, f"'keypoints' must be {3 * k} finite numbers")
        return
    if any(v not in (0, 1, 2) for v in kp[2::3]):
        report.error(path, where, "visibility flags must be 0, 1 or 2")
    outside = [i for i in range(k) if kp[3 * i + 2] > 0 and not (
        -TOLERANCE <= kp[3 * i] <= w + TOLERANCE and -TOLERANCE <= kp[3 * i + 1] <= h + TOLERANCE)]
    if outside:
        report.warn(path, where, f"labelled keypoints {outside} lie outside the {w}x{h} image")


def check_coco_file(report: _Report, path: Path, image_dir: Path | None,
                    kind: str = "instances") -> tuple[dict, dict] | None:
    """Check one COCO json (``kind``: instances / keypoints / stuff); returns (images, categories)."""
    data = _load(report, path)
    if data is None:
        return None
    images = _check_images(report, path, data, image_dir)
    cats = _check_categories(report, path, data)
    kpt_cats = {cid: len(c["keypoints"]) for cid, c in cats.items() if isinstance(c.get("keypoints"), list)
                and c["keypoints"]}
    if kind == "keypoints" and not kpt_cats:
        report.error(path, "", "no category has a non-empty 'keypoints' name list")
    seen: set[int] = set()
    used: set[int] = set()
    for ann in data.get("annotations", []):
        if not isinstance(ann, dict) or not _id(ann.get("id")):
            report.error(path, "", f"annotation {str(ann)[:60]} has no integer 'id'")
            continue
        where = f"annotation id {ann['id']}"
        if ann["id"] in seen:
            report.error(path, where, "duplicate annotation id")
        seen.add(ann["id"])
        im = images.get(ann["image_id"]) if _id(ann.get("image_id")) else None
        if im is None:
            report.error(path, where, f"unknown image_id {ann.get('image_id')!r}")
        cid = ann.get("category_id")
        if not _id(cid) or cid not in cats:
            report.error(path, where, f"unknown category_id {cid!r}")
        else:
            used.add(cid)
        if kind == "stuff":  # a stuff region is nothing but its segmentation
            why = check_segmentation(path, ann["id"], ann.get("segmentation"))
            if why:
                report.error(path, where, why)
        elif "segmentation" in ann:
            why = check_segmentation(path, ann["id"], ann["segmentation"])
            if why:
                report.warn(path, where, f"{why} (its box is ignored by semantic masks)")
        box = ann.get("bbox")
        if box is None and kind == "stuff":
            continue  # stuff annotations need no box
        if not isinstance(box, list) or len(box) != 4 or not all(_num(v) for v in box):
            report.error(path, where, f"'bbox' must be 4 finite numbers [x, y, w, h], got {str(box)[:60]}")
            continue
        x, y, bw, bh = box
        if bw < 0 or bh < 0:
            report.error(path, where, f"negative box size {box}")
        elif bw * bh == 0 or bw < 1 or bh < 1:
            report.warn(path, where, f"zero-area box {box} (skipped in training)")
        if im is not None and _num(im.get("width")) and _num(im.get("height")):
            w, h = im["width"], im["height"]
            if x >= w or y >= h or x + bw <= 0 or y + bh <= 0:
                report.error(path, where, f"box {box} lies entirely outside the {w}x{h} image")
            elif x < -TOLERANCE or y < -TOLERANCE or x + bw > w + TOLERANCE or y + bh > h + TOLERANCE:
                report.warn(path, where, f"box {box} extends outside the {w}x{h} image (clipped in training)")
        if kpt_cats:  # every annotation of a keypoint file carries the keypoints of its (person) category
            k = kpt_cats.get(cid, next(iter(kpt_cats.values()))) if _id(cid) else next(iter(kpt_cats.values()))
            w, h = (im["width"], im["height"]) if im is not None and _num(im.get("width")) and _num(
                im.get("height")) else (math.inf, math.inf)
            _check_keypoints(report, path, where, ann.get("keypoints"), k, w, h)
    if data.get("annotations"):
        for cid in sorted(set(cats) - used):
            if cid != 183:  # COCO-Stuff's merged "other" may be absent
                report.warn(path, f"category id {cid}", f"class '{cats[cid].get('name')}' has no annotation in this split")
    return images, cats


def _check_label_maps(report: _Report, folder: Path, images: dict[int, dict], panoptic: dict | None = None) -> None:
    """Every mask must exist and match its image's size."""
    names = {iid: Path(im["file_name"]).stem + ".png" for iid, im in images.items()}
    if panoptic is not None:
        names = {a["image_id"]: a["file_name"] for a in panoptic.get("annotations", [])
                 if isinstance(a, dict) and isinstance(a.get("file_name"), str) and a.get("image_id") in images}
        for iid in sorted(set(images) - set(names)):
            report.error(folder, f"image id {iid}", "no panoptic annotation for this image")
    sizes = report.sizes([folder / name for name in names.values()], "label maps")
    for (iid, name), size in zip(names.items(), sizes, strict=True):
        im = images[iid]
        if isinstance(size, str):
            report.error(folder / name, f"image id {iid}", size.replace("image", "mask"))
        elif _num(im.get("width")) and _num(im.get("height")) and size != (im["width"], im["height"]):
            report.error(folder / name, f"image id {iid}",
                         f"mask is {size[0]}x{size[1]} but the image is {im['width']}x{im['height']}")


def check_coco(root: Path, split: str, *, instances: Path | None = None, keypoints: Path | None = None,
               image_dir: Path | None = None, images: bool = True, decode: bool = True,
               progress: bool = False) -> list[Issue]:
    """All COCO-format files of one split: instances, person_keypoints, stuff, stuff maps, panoptic.

    ``images``: open the image and label-map files; ``decode``: decode them in full (else headers only).
    """
    report = _Report(decode, progress)
    ann_dir = root / "annotations"
    if image_dir is None:
        image_dir = next((d for d in (root / split, root / "images" / split, root / "images") if d.is_dir()), None)
        if image_dir is None:
            report.error(root, "", f"no image folder for split '{split}' ({split}/ or images/{split}/)")
    files = [instances or ann_dir / f"instances_{split}.json", keypoints or ann_dir / f"person_keypoints_{split}.json",
             ann_dir / f"stuff_{split}.json"]
    found = [f for f in files if f.is_file()]
    if not (files[0].is_file() or files[1].is_file()):
        report.error(root, "", f"neither {files[0].name} nor {files[1].name} found")
    checked: dict[int, dict] | None = None
    for i, f in enumerate(found):
        kind = ("instances", "keypoints", "stuff")[files.index(f)]
        result = check_coco_file(report, f, image_dir if images and i == 0 else None, kind)
        if result is not None and checked is None:
            checked = result[0]
    if checked is not None and images:
        maps = next((c / split for c in sorted(root.glob("stuffthingmaps*")) if (c / split).is_dir()), None)
        if maps is not None:
            _check_label_maps(report, maps, checked)
        pan_json, pan_pngs = ann_dir / f"panoptic_{split}.json", find_panoptic_pngs(root, split)
        if pan_json.is_file() and pan_pngs is not None:
            data = _load(report, pan_json)
            if data is not None:
                _check_label_maps(report, pan_pngs, checked, data)
    return report.issues


def check_voc(root: Path, split: str, *, images: bool = True, decode: bool = True, classes: Sequence[str] | None = None,
              progress: bool = False) -> list[Issue]:
    """One VOC split: class list (labelmap.txt / ``classes`` / VOC 2012), image list, JPEGs, XML fields and
    classes, SegmentationClass masks (size; with ``decode`` also every value is a class of the list)."""
    report = _Report(decode, progress)
    try:
        labels = voc_labels(root, classes)
    except DataError as e:
        report.error(root, "", str(e))
        return report.issues
    lists = [root / "ImageSets" / s / f"{split}.txt" for s in ("Main", "Segmentation")]
    ids: list[str] = []
    for f in lists:
        if f.is_file():
            ids += [ln.split()[0] for ln in f.read_text(errors="replace").splitlines() if ln.strip()]
    if not ids:
        report.error(root, "", f"no ImageSets/Main/{split}.txt or ImageSets/Segmentation/{split}.txt")
    ids = list(dict.fromkeys(ids))
    jpgs = [root / "JPEGImages" / f"{image_id}.jpg" for image_id in ids]
    sizes = report.sizes(jpgs) if images else [None] * len(ids)
    pngs = [root / "SegmentationClass" / f"{image_id}.png" for image_id in ids]
    pngs = [p for p in pngs if images and p.is_file()]
    masks = dict(zip(pngs, report.sizes(pngs, "masks", lambda p: _voc_mask_size(p, labels, report.decode)),
                     strict=True))
    present = set()
    for image_id, jpg, size in zip(ids, jpgs, sizes, strict=True):
        where = f"image id {image_id}"
        if isinstance(size, str):
            report.error(jpg, where, size)
            size = None
        xml = root / "Annotations" / f"{image_id}.xml"
        if xml.is_file():
            present |= _check_voc_xml(report, xml, size, labels.det_classes)
        png = root / "SegmentationClass" / f"{image_id}.png"
        msize = masks.get(png)
        if isinstance(msize, str):
            report.error(png, where, msize)
        elif msize is not None and size is not None and msize != size:
            report.error(png, where, f"mask is {msize[0]}x{msize[1]} but the image is {size[0]}x{size[1]}")
    if ids and present:
        for name in labels.det_classes:
            if name not in present:
                report.warn(root, "", f"class '{name}' has no object in split '{split}'")
    return report.issues


def _voc_mask_size(path: Path, labels: VocLabels, decode: bool) -> Size:
    """A mask's size; decoded, also every value checked against the class list (the reader's rule)."""
    if not decode:
        size = _image_size(path)
        return size.replace("image", "mask", 1) if isinstance(size, str) else size
    try:
        h, w = labels.mask(path).shape
    except DataError as e:
        return str(e).removeprefix(f"{path}: ")
    return w, h


def _check_voc_xml(report: _Report, xml: Path, size: tuple[int, int] | None, classes: list[str]) -> set[str]:
    try:
        root = ET.parse(xml).getroot()
    except (ET.ParseError, UnicodeDecodeError) as e:
        report.error(xml, "", f"not valid XML ({e})")
        return set()
    names = set()
    for i, obj in enumerate(root.iter("object")):
        where = f"object {i}"
        name = (obj.findtext("name") or "").strip()
        if name not in classes:
            report.error(xml, where, f"unknown class name {name!r}")
        names.add(name)
        try:
            x1, y1, x2, y2 = (float(obj.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            report.error(xml, where, "bndbox needs numeric xmin, ymin, xmax, ymax")
            continue
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            report.error(xml, where, "non-finite box coordinates")
        elif x2 < x1 or y2 < y1:
            report.error(xml, where, f"xmax < xmin or ymax < ymin ({x1}, {y1}, {x2}, {y2})")
        elif size is not None and (x1 < 1 - TOLERANCE or y1 < 1 - TOLERANCE or x2 > size[0] + TOLERANCE
                                   or y2 > size[1] + TOLERANCE):
            report.warn(xml, where, f"box ({x1}, {y1}, {x2}, {y2}) extends outside the {size[0]}x{size[1]} image")
    return names
