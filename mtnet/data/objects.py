"""Per-object pixel maps (``Sample.objects``) from COCO instance outlines, for tasks that learn object masks.

Value k marks a pixel of object row k - 1, 0 a pixel of no object, 255 an unknown pixel: crowd regions
(COCO: not a target, ignored by the evaluator too) and the box of an object whose outline is missing or
broken (its pixels are unknown, never background). Larger objects are painted first, so where outlines
overlap the smaller (usually the occluding) object keeps the pixel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .sample import IGNORE_INDEX, MAX_OBJECTS
from .semantic import check_segmentation, decode_segmentation


def outline_of(path: Path, ann: dict[str, Any]) -> dict[str, Any] | None:
    """What ``object_map`` needs of an annotation with a valid ``segmentation`` (polygons or RLE), else None."""
    seg = ann.get("segmentation")
    if seg is None or check_segmentation(path, ann["id"], seg) is not None:
        return None
    x, y, w, h = ann["bbox"]
    area = ann.get("area")
    return {"id": ann["id"], "segmentation": seg, "area": float(area) if isinstance(area, (int, float)) else w * h}


def object_map(path: Path, anns: list[dict[str, Any]], crowds: list[dict[str, Any]], h: int, w: int) -> np.ndarray:
    """H x W uint8 object map of an image's objects (``anns`` in box-row order: ``bbox`` xyxy and, where
    known, ``outline`` from :func:`outline_of`) and its crowd outlines."""
    out = np.zeros((h, w), np.uint8)
    for a in anns:  # unknown regions first: painted objects then claim their own pixels
        if "outline" not in a:
            x0, y0, x1, y1 = (int(round(v)) for v in a["bbox"])
            out[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = IGNORE_INDEX
    rows = sorted((i for i, a in enumerate(anns) if "outline" in a), key=lambda i: -anns[i]["outline"]["area"])
    for i in rows:
        value = i + 1 if i < MAX_OBJECTS else IGNORE_INDEX
        out[decode_segmentation(path, anns[i]["outline"]["id"], anns[i]["outline"]["segmentation"], h, w)] = value
    for c in crowds:
        out[decode_segmentation(path, c["id"], c["segmentation"], h, w)] = IGNORE_INDEX
    return out
