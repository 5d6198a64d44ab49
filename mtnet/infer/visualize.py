"""Draw predictions: segmentation overlay, boxes with labels, person skeletons."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..data.meta import DatasetMeta
from .predictor import Prediction


def palette(n: int) -> np.ndarray:
    """n well-separated RGB colours (golden-ratio hue steps)."""
    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.95)] for i in range(max(n, 1))],
                    np.uint8)


def draw_prediction(image: np.ndarray, pred: Prediction, meta: DatasetMeta, *, seg_alpha: float = 0.45,
                    kpt_threshold: float = 0.5) -> np.ndarray:
    out = image.astype(np.float32)
    if pred.seg is not None and meta.seg_classes:
        colors = palette(len(meta.seg_classes)).astype(np.float32)
        valid = pred.seg < len(colors)
        out[valid] = (1 - seg_alpha) * out[valid] + seg_alpha * colors[pred.seg[valid]]
    canvas = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    det = pred.detections
    if det is not None:
        colors = palette(len(meta.det_classes))
        for i in range(len(det)):
            color = tuple(int(c) for c in colors[int(det.labels[i]) % len(colors)])
            x0, y0, x1, y1 = (float(v) for v in det.boxes[i])
            draw.rectangle([x0, y0, x1, y1], outline=color, width=2)
            name = meta.det_classes[int(det.labels[i])] if int(det.labels[i]) < len(meta.det_classes) else "?"
            text = f"{name} {det.scores[i]:.2f}"
            tw = draw.textlength(text)
            draw.rectangle([x0, max(0, y0 - 11), x0 + tw + 4, max(11, y0)], fill=color)
            draw.text((x0 + 2, max(0, y0 - 11)), text, fill=(0, 0, 0))
            if det.keypoints is not None and int(det.labels[i]) == meta.keypoint_class:
                kp = det.keypoints[i]
                shown = kp[:, 2] >= kpt_threshold
                for a, b in meta.skeleton:
                    if shown[a] and shown[b]:
                        draw.line([tuple(kp[a, :2]), tuple(kp[b, :2])], fill=(255, 255, 0), width=2)
                for x, y, _ in kp[shown]:
                    draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(255, 0, 0))
    return np.asarray(canvas)


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
