"""Draw predictions (each task draws its own part) and tile drawn images into one picture."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.meta import DatasetMeta
from .predictor import Prediction


def palette(n: int) -> np.ndarray:
    """n well-separated RGB colours (golden-ratio hue steps)."""
    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.95)] for i in range(max(n, 1))],
                    np.uint8)


def draw_prediction(image: np.ndarray, pred: Prediction, meta: DatasetMeta) -> np.ndarray:
    """Every task draws its result (dense overlays first, then boxes, then skeletons: ``Task.draw_order``)."""
    from ..tasks import get_task, list_tasks

    canvas = np.ascontiguousarray(image, dtype=np.uint8)
    for task in sorted((get_task(n) for n in list_tasks()), key=lambda t: t.draw_order):
        canvas = task.draw(canvas, pred, meta)
    return canvas


def save_grid(images: list[np.ndarray], path: str | Path, cols: int = 4) -> None:
    """Tile images (padded to the largest) into one PNG."""
    if not images:
        return
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    cols = min(cols, len(images))
    rows = (len(images) + cols - 1) // cols
    grid = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * h : r * h + im.shape[0], c * w : c * w + im.shape[1]] = im
    Image.fromarray(grid).save(path)
