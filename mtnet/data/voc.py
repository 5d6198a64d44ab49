"""Pascal VOC reader: XML boxes (``Annotations/``) and ``SegmentationClass/`` masks, with the set's own classes.

Layout (the VOCdevkit/VOC2012 folder as unpacked, or a CVAT / Datumaro "Pascal VOC" export)::

    <root>/JPEGImages/<id>.jpg
    <root>/Annotations/<id>.xml                 boxes; optional per image
    <root>/SegmentationClass/<id>.png           optional per image: palette index = class, 255 = border/ignore
                                                (or an RGB PNG whose colours are those of labelmap.txt)
    <root>/ImageSets/Main/<split>.txt           image ids of the split (or ImageSets/Segmentation/<split>.txt)
    <root>/labelmap.txt                         optional: the set's classes and colours (CVAT format)

Classes come from, in order: ``labelmap.txt`` (one ``name:r,g,b:parts:actions`` line per class, ``#``
lines are comments, the line order is the mask index, background usually first), else the ``classes``
option of the source (names in mask-index order), else the 20 VOC 2012 classes after "background". A
class named "background" (any case) is a segmentation class only; every other class is also a detection
class whose category id is its mask index (so VOC 2012's ids are 1-20). When both a labelmap and a
``classes`` option exist they must name the same classes, so neither silently wins.

Masks: a palette or greyscale PNG holds class indices (VOC's convention; the palette colours are not
read); an RGB PNG is mapped through the class colours (labelmap.txt's, else the VOC colour map), and
VOC's border colour (224, 224, 192) is ignored like index 255. Any other value is an error naming the file.

Follows the devkit: box corners are 1-based inclusive pixels, so ``xmin - 1`` / ``ymin - 1`` become the
0-based top-left and ``xmax`` / ``ymax`` the exclusive bottom-right. ``difficult`` objects are left out of
training (as the devkit leaves them out of scoring) and reported in ``skipped``. Each sample carries only
the tasks its files exist for: no XML -> ``has_det`` False, no PNG -> ``has_seg`` False.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .meta import DatasetMeta
from .sample import IGNORE_INDEX, DataError, Sample, read_image

VOC_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]
LABELMAP = "labelmap.txt"
BORDER_COLOR = (224, 224, 192)  # VOC's object-border colour (index 255 of its palette)

Color = tuple[int, int, int]


def voc_colormap(n: int = 256) -> list[Color]:
    """The devkit's colour map (``VOClabelcolormap.m``): bits of the index spread over r, g, b."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= (c & 1) << (7 - j)
            g |= (c >> 1 & 1) << (7 - j)
            b |= (c >> 2 & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


def is_background(name: str) -> bool:
    return name.strip().lower() == "background"


@dataclass(frozen=True)
class VocLabels:
    """A VOC set's classes: ``names[i]`` is mask index i; ``colors[i]`` its colour in RGB masks."""

    names: list[str]
    colors: list[Color | None]
    origin: str  # where the list came from (labelmap.txt path, "data.sources classes", "VOC 2012")

    @property
    def det_classes(self) -> list[str]:
        return [n for n in self.names if not is_background(n)]

    @property
    def det_category_ids(self) -> list[int]:
        return [i for i, n in enumerate(self.names) if not is_background(n)]

    def mask(self, path: Path) -> np.ndarray:
        """Class indices (uint8, 255 = ignore) of one SegmentationClass PNG; bad content raises DataError."""
        try:
            with Image.open(path) as im:
                im.load()
                rgb = im.mode in ("RGB", "RGBA")
                if not rgb and im.mode not in ("P", "L", "I", "I;16"):
                    raise DataError(f"{path}: mask must be a palette, greyscale or RGB PNG, got mode {im.mode}")
                arr = np.asarray(im.convert("RGB") if rgb else im)
        except FileNotFoundError:
            raise DataError(f"{path}: mask not found") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise DataError(f"{path}: cannot read mask ({e})") from None
        if rgb:
            return self._from_colors(path, arr)
        bad = np.setdiff1d(np.unique(arr), [*range(len(self.names)), IGNORE_INDEX])
        if bad.size:
            raise DataError(f"{path}: mask values {bad[:5].tolist()} are not class indices "
                            f"(0-{len(self.names) - 1} from {self.origin}) or 255")
        return arr.astype(np.uint8)

    def _from_colors(self, path: Path, rgb: np.ndarray) -> np.ndarray:
        keys = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
        lut = {(r << 16) | (g << 8) | b: i for i, c in enumerate(self.colors) if c is not None for r, g, b in [c]}
        lut.setdefault((BORDER_COLOR[0] << 16) | (BORDER_COLOR[1] << 8) | BORDER_COLOR[2], IGNORE_INDEX)
        uniq, inverse = np.unique(keys, return_inverse=True)
        unknown = [int(k) for k in uniq if int(k) not in lut]
        if unknown:
            shown = ", ".join(str((k >> 16, k >> 8 & 255, k & 255)) for k in unknown[:5])
            raise DataError(f"{path}: colours {shown} are not classes of {self.origin}")
        return np.array([lut[int(k)] for k in uniq], np.uint8)[inverse.reshape(keys.shape)]


def read_labelmap(path: Path) -> VocLabels:
    """CVAT's ``labelmap.txt``: ``name:r,g,b:parts:actions`` per line (colour may be empty), ``#`` comments."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the label map ({e})") from None
    names: list[str] = []
    colors: list[Color | None] = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.rsplit(":", 3)
        name, color = fields[0].strip(), fields[1].strip() if len(fields) > 1 else ""
        try:
            rgb = tuple(int(v) for v in color.split(",")) if color else None
        except ValueError:
            rgb = ()
        if not name or (rgb is not None and (len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb))):
            raise DataError(f"{path}: line {n}: expected 'name:r,g,b:parts:actions', got {line.strip()[:80]!r}")
        if name in names:
            raise DataError(f"{path}: line {n}: class {name!r} is listed twice")
        names.append(name)
        colors.append(rgb)
    if not names:
        raise DataError(f"{path}: no class listed")
    if len(names) > IGNORE_INDEX:
        raise DataError(f"{path}: {len(names)} classes; masks hold at most {IGNORE_INDEX} (255 = ignore)")
    return VocLabels(names, colors, str(path))


def voc_labels(root: Path, classes: Sequence[str] | None = None) -> VocLabels:
    """The classes of the VOC folder ``root`` (order of precedence in the module docstring)."""
    path = Path(root) / LABELMAP
    if path.is_file():
        labels = read_labelmap(path)
        if classes and list(classes) != labels.names:
            raise DataError(f"{path} lists {labels.names} but the source's classes option says {list(classes)}: "
                            "make them agree or drop the option")
        return labels
    if classes:
        names = [str(c).strip() for c in classes]
        if len(set(names)) != len(names) or not all(names) or len(names) > IGNORE_INDEX:
            raise DataError(f"{root}: the classes option needs 1-{IGNORE_INDEX} distinct names, got {names}")
        return VocLabels(names, voc_colormap(len(names)), "the source's classes option")
    names = ["background"] + VOC_CLASSES
    return VocLabels(names, voc_colormap(len(names)), "the VOC 2012 classes")


def parse_voc_xml(path: Path, classes: Sequence[str] = VOC_CLASSES) -> tuple[list[list[float]], list[int], list[str]]:
    """Return (boxes xyxy 0-based, labels = index in ``classes``, skip notes) of one annotation file;
    bad content raises DataError."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable VOC XML file ({e})") from None
    index = {name: i for i, name in enumerate(classes)}
    boxes, labels, skipped = [], [], []
    for i, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        if name not in index:
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
        labels.append(index[name])
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

    def __init__(self, root: str | Path, split: str, *, image_set: str = "auto", classes: Sequence[str] | None = None):
        self.root = Path(root)
        if not (self.root / "JPEGImages").is_dir():
            raise DataError(f"{self.root}: not a VOC folder (no JPEGImages/)")
        self.split = split
        self.labels = voc_labels(self.root, classes)
        self.ids = voc_image_ids(self.root, split, image_set)
        self.skipped: list[str] = []
        self.targets: list[tuple[np.ndarray, np.ndarray] | None] = []
        for image_id in self.ids:
            xml = self.root / "Annotations" / f"{image_id}.xml"
            if not xml.is_file():
                self.targets.append(None)
                continue
            boxes, labels, skipped = parse_voc_xml(xml, self.labels.det_classes)
            self.skipped += skipped
            self.targets.append((np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64)))
        self.num_keypoints = 0
        self.instances_path = None  # set by mtnet.data.build.open_split (a COCO box file built from the XML)
        self.keypoints_path = None
        self.meta = DatasetMeta(
            det_classes=self.labels.det_classes, det_category_ids=self.labels.det_category_ids,
            seg_classes=list(self.labels.names), seg_category_ids=list(range(len(self.labels.names))),
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
        image = read_image(str(path), image_id=self.ids[index])
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
            mask = self.labels.mask(mpath)
            if mask.shape != (h, w):
                raise DataError(f"{mpath}: mask is {mask.shape[1]}x{mask.shape[0]} but the image is {w}x{h}")
            sample.mask, sample.has_seg = mask, True
        return sample
