"""Pascal VOC reader: XML boxes (``Annotations/``) and ``SegmentationClass/`` palette PNGs.

Layout (the VOCdevkit/VOC2012 folder as unpacked)::

    <root>/JPEGImages/<id>.jpg
    <root>/Annotations/<id>.xml                 boxes; optional per image
    <root>/SegmentationClass/<id>.png           optional per image; palette index = class, 255 = border/ignore
    <root>/ImageSets/Main/<split>.txt           image ids of the split (or ImageSets/Segmentation/<split>.txt)

Follows the devkit: box corners are 1-based inclusive pixels, so ``xmin - 1`` / ``ymin - 1`` become the
0-based top-left and ``xmax`` / ``ymax`` the exclusive bottom-right. ``difficult`` objects are left out of
training (as the devkit leaves them out of scoring) and reported in ``skipped``. Each sample carries only
the tasks its files exist for: no XML -> ``has_det`` False, no PNG -> ``has_seg`` False.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from .meta import DatasetMeta
from .sample import IGNORE_INDEX, DataError, Sample, read_image, read_label_png

VOC_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]


def parse_voc_xml(path: Path) -> tuple[list[list[float]], list[int], list[str]]:
    """Return (boxes xyxy 0-based, labels, skip notes) of one annotation file; bad content raises DataError."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable VOC XML file ({e})") from None
    boxes, labels, skipped = [], [], []
    for i, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        if name not in VOC_CLASSES:
            raise DataError(f"{path}: object {i}: unknown class name {name!r}")
        bnd = obj.find("bndbox")
        try:
            x1, y1, x2, y2 = (float(bnd.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            raise DataError(f"{path}: object {i} ({name}): bndbox needs numeric xmin, ymin, xmax, ymax") from None
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise DataError(f"{path}: object {i} ({name}): non-finite box coordinates")
        if (obj.findtext("difficult") or "0").strip() == "1":
            skipped.append(f"{path.name}: object {i} ({name}): difficult (left out of training)")
            continue
        if x2 - (x1 - 1) < 1 or y2 - (y1 - 1) < 1:
            skipped.append(f"{path.name}: object {i} ({name}): degenerate box")
            continue
        boxes.append([x1 - 1, y1 - 1, x2, y2])
        labels.append(VOC_CLASSES.index(name))
    return boxes, labels, skipped


def voc_image_ids(root: Path, split: str, image_set: str = "auto") -> list[str]:
    """Image ids listed for ``split`` in ImageSets/Main (or ImageSets/Segmentation)."""
    sets = {"main": ["Main"], "segmentation": ["Segmentation"], "auto": ["Main", "Segmentation"]}[image_set]
    for sub in sets:
        path = root / "ImageSets" / sub / f"{split}.txt"
        if path.is_file():
            try:
                return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
            except UnicodeDecodeError:
                raise DataError(f"{path}: image list is not UTF-8 text") from None
    raise DataError(f"{root}: no ImageSets/{'|'.join(sets)}/{split}.txt")


class VocSource:
    """One split of a Pascal VOC folder; boxes are parsed once, images and masks on demand."""

    def __init__(self, root: str | Path, split: str, *, image_set: str = "auto"):
        self.root = Path(root)
        if not (self.root / "JPEGImages").is_dir():
            raise DataError(f"{self.root}: not a VOC folder (no JPEGImages/)")
        self.split = split
        self.ids = voc_image_ids(self.root, split, image_set)
        self.skipped: list[str] = []
        self.targets: list[tuple[np.ndarray, np.ndarray] | None] = []
        for image_id in self.ids:
            xml = self.root / "Annotations" / f"{image_id}.xml"
            if not xml.is_file():
                self.targets.append(None)
                continue
            boxes, labels, skipped = parse_voc_xml(xml)
            self.skipped += skipped
            self.targets.append((np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64)))
        self.num_keypoints = 0
        self.instances_path = None  # no COCO json: evaluation reports mIoU only
        self.keypoints_path = None
        self.meta = DatasetMeta(
            det_classes=list(VOC_CLASSES), det_category_ids=list(range(1, 21)),
            seg_classes=["background"] + VOC_CLASSES, seg_category_ids=list(range(21)),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, index: int) -> Path:
        return self.root / "JPEGImages" / f"{self.ids[index]}.jpg"

    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes xyxy, labels, keypoints) of one image without reading it (for statistics)."""
        boxes, labels = self.targets[index] or (np.zeros((0, 4), np.float32), np.zeros((0,), np.int64))
        return boxes, labels, np.zeros((len(boxes), 0, 3), np.float32)

    def mask_path(self, index: int) -> Path:
        return self.root / "SegmentationClass" / f"{self.ids[index]}.png"

    def load(self, index: int) -> Sample:
        path = self.image_path(index)
        image = read_image(str(path))
        h, w = image.shape[:2]
        sample = Sample.empty_targets(image, 0, has_det=self.targets[index] is not None, image_id=index,
                                      path=str(path))
        if self.targets[index] is not None:
            boxes, labels = self.targets[index]
            boxes = boxes.copy()
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
            sample.boxes, sample.labels = boxes, labels
        mpath = self.mask_path(index)
        if mpath.is_file():
            mask = read_label_png(str(mpath))
            if mask.shape != (h, w):
                raise DataError(f"{mpath}: mask is {mask.shape[1]}x{mask.shape[0]} but the image is {w}x{h}")
            bad = np.setdiff1d(np.unique(mask), [*range(21), IGNORE_INDEX])
            if bad.size:
                raise DataError(f"{mpath}: pixel values {bad[:5].tolist()} are not VOC classes (0-20) or 255")
            sample.mask, sample.has_seg = mask.astype(np.uint8), True
        return sample
