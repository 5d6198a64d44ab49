"""Detection boxes -> classifier crops, in NumPy: one implementation for training, the ``Cascade``
predictor and the Triton crop step, so every path feeds the classifier the same pixels.

A crop is the box grown by ``context`` on each side (the classifier sees the object's edge against its
surroundings), clipped to the image, then letterboxed (``mtnet.data.preprocess.letterbox``) to a square
of ``size``: the aspect ratio is kept, as for the detector.
"""

from __future__ import annotations

import numpy as np

from ..data.preprocess import letterbox

CONTEXT = 0.1  # fraction of the box side added on each side


def crop_window(box: np.ndarray, shape: tuple[int, int], context: float = CONTEXT) -> tuple[int, int, int, int]:
    """Integer pixel window (x0, y0, x1, y1) of ``box`` (xyxy) grown by ``context``, clipped to ``shape``
    (height, width); at least one pixel each way."""
    h, w = shape
    x0, y0, x1, y1 = (float(v) for v in box)
    mx, my = (x1 - x0) * context, (y1 - y0) * context
    ix0 = int(np.clip(np.floor(x0 - mx), 0, w - 1))
    iy0 = int(np.clip(np.floor(y0 - my), 0, h - 1))
    ix1 = int(np.clip(np.ceil(x1 + mx), ix0 + 1, w))
    iy1 = int(np.clip(np.ceil(y1 + my), iy0 + 1, h))
    return ix0, iy0, ix1, iy1


def crop_boxes(image: np.ndarray, boxes: np.ndarray, size: int, context: float = CONTEXT) -> np.ndarray:
    """uint8 RGB ``image`` [H, W, 3] and ``boxes`` [K, 4] (xyxy, image pixels) -> uint8 crops [K, size, size, 3]."""
    out = np.empty((len(boxes), size, size, 3), np.uint8)
    for k, box in enumerate(np.asarray(boxes, np.float32).reshape(-1, 4)):
        x0, y0, x1, y1 = crop_window(box, image.shape[:2], context)
        out[k] = letterbox(np.ascontiguousarray(image[y0:y1, x0:x1]), size)[0]
    return out
