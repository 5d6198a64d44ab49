"""Test-time augmentation: a horizontal flip and a second scale, merged into one prediction per image.

Why here and not in the graph: every backend (PyTorch, ONNX Runtime, LiteRT) has a fixed input size, so the
views are made on the letterboxed canvas itself: the flip mirrors the image content (``[0:nh, 0:nw]``) in
place, and a second scale resizes the content by ``f`` on the same canvas (``f < 1`` shrinks it and pads
more; ``f > 1`` enlarges it and crops the overflow). All views run as one batch through the backend.

Merging happens on the raw deploy outputs, before decoding, so the task decoders run unchanged:

- per-anchor outputs are mapped back into the base view's frame (``x -> w_view - x`` for the flip, ``/ f``
  for the scale) and the anchors of all views are concatenated: detection's NMS runs over the union. The
  keypoints of a flipped view also swap left and right joints (``DatasetMeta.flip_index``), or a left wrist
  found in the mirror would be averaged with the right wrist;
- after NMS each kept box, and its keypoints, becomes the score-weighted mean of the best candidate of its
  class in each view that overlaps it by more than the NMS IoU (one per view: averaging a view's neighbouring
  anchors too pulled the joints off); its score stays the NMS winner's;
- segmentation logits are upsampled to the canvas, brought to the base view's pixels and averaged.

Graphs exported with in-graph NMS, or with outputs this module does not know how to map, are refused
(:class:`TTAError`): their per-anchor rows could not be merged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..data.preprocess import PAD_VALUE
from ..errors import UserError
from ..tasks import DecodeOptions

if TYPE_CHECKING:
    from .predictor import Prediction, Predictor

KNOWN_OUTPUTS = ("boxes", "scores", "keypoints", "seg")


class TTAError(UserError):
    """The model's outputs cannot be merged across augmented views."""


@dataclass(frozen=True)
class TTAConfig:
    """The views: the image itself, its mirror (``flip``) and the image at each of ``scales``."""

    flip: bool = True
    scales: tuple[float, ...] = (1.2,)  # > 1 enlarges small objects (the overflow is cropped); see benchmarks/tta.py

    def views(self) -> list[tuple[float, bool]]:
        """(scale, mirrored) per view; the first is the plain image (its frame is the merge target)."""
        out = [(1.0, False)] + ([(1.0, True)] if self.flip else [])
        out += [(float(s), False) for s in self.scales if s != 1.0]
        if len(out) < 2:
            raise TTAError("TTA needs a flip or a scale other than 1.0")
        if any(not 0.25 <= s <= 2.0 for s, _ in out):
            raise TTAError(f"TTA scales must be in [0.25, 2.0], got {list(self.scales)}")
        return out


def make_view(canvas: np.ndarray, content: tuple[int, int], scale: float, mirror: bool) -> tuple[np.ndarray, tuple[int, int]]:
    """One letterboxed image [S, S, 3] as a view; returns it and its content size (h, w) within the canvas."""
    nh, nw = content
    size = canvas.shape[0]
    image = canvas[:nh, :nw]
    vh, vw = max(1, round(nh * scale)), max(1, round(nw * scale))
    if (vh, vw) != (nh, nw):
        image = cv2.resize(image, (vw, vh), interpolation=cv2.INTER_LINEAR)
    if mirror:
        image = image[:, ::-1]
    out = np.full_like(canvas, PAD_VALUE)
    out[: min(vh, size), : min(vw, size)] = image[:size, :size]
    return out, (vh, vw)


def unmap_boxes(boxes: np.ndarray, view_w: int, fx: float, fy: float, mirror: bool) -> np.ndarray:
    """[A, 4] xyxy in a view's canvas -> the base view's canvas."""
    b = np.asarray(boxes, np.float32).copy()
    if mirror:
        b[:, [0, 2]] = view_w - b[:, [2, 0]]
    return b / np.array([fx, fy, fx, fy], np.float32)


def unmap_keypoints(kpts: np.ndarray, view_w: int, fx: float, fy: float, mirror: bool,
                    flip_index: list[int]) -> np.ndarray:
    """[A, K*3] or [A, K, 3] (x, y, visibility) in a view -> the base view, left/right swapped if mirrored."""
    k = np.asarray(kpts, np.float32).reshape(len(kpts), -1, 3).copy()
    if mirror:
        if len(flip_index) != k.shape[1]:
            raise TTAError(f"flip-TTA needs the keypoint flip index: the data-set metadata has "
                           f"{len(flip_index)} entries for {k.shape[1]} keypoints")
        k[..., 0] = view_w - k[..., 0]
        k = k[:, flip_index]
    k[..., 0] /= fx
    k[..., 1] /= fy
    return k.reshape(len(kpts), -1)


def _logits_hwc(logits: np.ndarray, size: int) -> np.ndarray:
    """[C, h, w] logits -> [size, size, C], bilinear with half-pixel centres (as ``decode.upsample_logits``)."""
    hwc = np.ascontiguousarray(np.asarray(logits, np.float32).transpose(1, 2, 0))
    out = cv2.resize(hwc, (size, size), interpolation=cv2.INTER_LINEAR)
    return out[..., None] if out.ndim == 2 else out


def unmap_seg_logits(logits: np.ndarray, size: int, content: tuple[int, int], view: tuple[int, int],
                     mirror: bool) -> np.ndarray:
    """[C, h, w] logits of a view -> [nh, nw, C] logits over the base view's content (or the part of it an
    enlarged view still shows)."""
    vh, vw = min(view[0], size), min(view[1], size)
    crop = _logits_hwc(logits, size)[:vh, :vw]
    if mirror:
        crop = crop[:, ::-1]
    nh, nw = round(vh * content[0] / view[0]), round(vw * content[1] / view[1])
    out = cv2.resize(np.ascontiguousarray(crop), (nw, nh), interpolation=cv2.INTER_LINEAR) if (vh, vw) != (nh, nw) else crop
    return out[..., None] if out.ndim == 2 else out


def merge_views(outs: dict[str, np.ndarray], views: list[tuple[float, bool]], view_sizes: list[tuple[int, int]],
                content: tuple[int, int], size: int, flip_index: list[int]) -> dict[str, np.ndarray]:
    """One image's deploy outputs of every view (leading axis: view) -> one set in the base view's frame."""
    unknown = sorted(set(outs) - set(KNOWN_OUTPUTS))
    if unknown:
        raise TTAError(f"TTA cannot merge output(s) {unknown} (a graph with in-graph NMS, or a task it does not "
                       f"know); run without TTA")
    nh, nw = content
    merged: dict[str, np.ndarray] = {}
    scales = [(vw / nw, vh / nh) for vh, vw in view_sizes]
    if "boxes" in outs:
        merged["boxes"] = np.concatenate([unmap_boxes(outs["boxes"][v], view_sizes[v][1], *scales[v], views[v][1])
                                          for v in range(len(views))])
        merged["scores"] = np.concatenate(list(outs["scores"]))
    if "keypoints" in outs:
        merged["keypoints"] = np.concatenate([
            unmap_keypoints(outs["keypoints"][v], view_sizes[v][1], *scales[v], views[v][1], flip_index)
            for v in range(len(views))])
    if "seg" in outs:
        seg = np.asarray(outs["seg"])
        if seg.ndim == 3:  # argmax graphs ([H, W] labels per view): nothing to average, keep the plain view
            merged["seg"] = seg[0]
        else:
            acc, count = _logits_hwc(seg[0], size), np.ones((size, size, 1), np.float32)
            for v in range(1, len(views)):
                part = unmap_seg_logits(seg[v], size, content, view_sizes[v], views[v][1])
                acc[: part.shape[0], : part.shape[1]] += part
                count[: part.shape[0], : part.shape[1]] += 1
            merged["seg"] = (acc / count).transpose(2, 0, 1)
    return merged


def fuse_detections(det, merged: dict[str, np.ndarray], scale: float, opts: DecodeOptions, num_views: int) -> None:
    """Replace each kept box (and its keypoints) by the score-weighted mean of the best overlapping candidate
    of its class in each view (IoU > ``opts.iou``, score > ``opts.conf``); in place, original pixels. One
    candidate per view: a view's neighbouring anchors predict the same object less well (worse joints)."""
    if det is None or not len(det) or det.index is None:
        return
    boxes, scores = merged["boxes"], merged["scores"]
    kpts = merged["keypoints"].reshape(len(boxes), -1, 3) if "keypoints" in merged else None
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    for n, (row, label) in enumerate(zip(det.index, det.labels, strict=True)):
        b = boxes[row]
        w = np.clip(np.minimum(b[2], boxes[:, 2]) - np.maximum(b[0], boxes[:, 0]), 0, None)
        h = np.clip(np.minimum(b[3], boxes[:, 3]) - np.maximum(b[1], boxes[:, 1]), 0, None)
        iou = w * h / (area[row] + area - w * h + 1e-9)
        cand = np.where((iou > opts.iou) & (scores[:, label] > opts.conf), scores[:, label], 0.0)
        cand[row] = scores[row, label]  # the winner always counts (also when it sits exactly at conf)
        per_view = cand.reshape(num_views, -1)
        best = per_view.argmax(1) + np.arange(num_views) * per_view.shape[1]
        weight = np.zeros_like(cand)
        weight[best] = cand[best]
        weight = weight / weight.sum()
        det.boxes[n] = (weight @ boxes) / scale
        if kpts is not None and det.keypoints is not None:
            fused = np.einsum("a,akc->kc", weight, kpts)
            fused[:, :2] /= scale
            det.keypoints[n] = fused


def predict_tta(predictor: Predictor, batch: np.ndarray, scales: list[float], shapes: list[tuple[int, int]],
                config: TTAConfig) -> list[Prediction]:
    """``Predictor.predict_letterboxed`` with every view of every image run as one batch, then merged."""
    from .predictor import Prediction

    views = config.views()
    size = batch.shape[1]
    contents = [(min(size, round(h * s)), min(size, round(w * s))) for (h, w), s in zip(shapes, scales, strict=True)]
    images, view_sizes = [], []
    for canvas, content in zip(batch, contents, strict=True):
        made = [make_view(canvas, content, f, mirror) for f, mirror in views]
        images += [m[0] for m in made]
        view_sizes.append([m[1] for m in made])
    outs = predictor.backend(np.stack(images))
    opts = DecodeOptions(predictor.conf, predictor.iou, predictor.max_det, predictor.multi_label, predictor.imgsz)
    results = []
    for i, (scale, shape) in enumerate(zip(scales, shapes, strict=True)):
        per_image = {k: v[i * len(views): (i + 1) * len(views)] for k, v in outs.items()}
        merged = merge_views(per_image, views, view_sizes[i], contents[i], size, predictor.meta.flip_index)
        batched = {k: v[None] for k, v in merged.items()}
        pred = Prediction(shape)
        for task in predictor.task_set:
            task.decode(batched, 0, pred.results, scale, shape, opts)
        fuse_detections(pred.results.get("det"), merged, scale, opts, len(views))
        results.append(pred)
    return results
