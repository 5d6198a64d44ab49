"""Raw deploy-mode tensors -> boxes, scores, labels, keypoints, masks.

One NumPy implementation used by every backend (PyTorch, ONNX Runtime, LiteRT), so an exported
artifact is evaluated with exactly the decoding the PyTorch model is evaluated with.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Greedy-NMS IoU used everywhere (eval, predict, in-graph NMS). 0.5 rather than 0.6/0.7: the quickstart
# model leaves overlapping near-duplicates that a looser threshold keeps (v6 checkpoint, 100 val images:
# bbox AP50 0.757 -> 0.784, keypoint AP50 0.477 -> 0.499, AP 0.382 -> 0.379 going from 0.6 to 0.5).
NMS_IOU = 0.5
# A kept person's skeleton is the score-weighted mean over the anchors of its class that overlap its box by more
# than this IoU and score at least half as high (``vote_keypoints``): one anchor's skeleton often misses OKS 0.5 by
# a little where the mean clears it (equal-budget runs: keypoint AP50 +0.04, AP +0.05 over four seeds,
# docs/benchmarks.md#equal-cpu-budget-vs-yolo11n).
KEYPOINT_VOTE_IOU = 0.7
# score threshold for drawn predictions: scores estimate box IoU (quality focal loss), so true positives of a
# short CPU run score ~0.3-0.8 while duplicates and partial boxes cluster at 0.2-0.3
DISPLAY_CONF = 0.3


@dataclass
class Detections:
    boxes: np.ndarray  # [N, 4] xyxy pixels
    scores: np.ndarray  # [N]
    labels: np.ndarray  # [N] contiguous class labels
    keypoints: np.ndarray | None = None  # [N, K, 3] x, y pixels and visibility probability
    index: np.ndarray | None = None  # [N] row of each detection in the raw per-anchor outputs (anchor or NMS row)

    def __len__(self) -> int:
        return len(self.scores)

    def scaled(self, factor: float) -> Detections:
        """Divide coordinates by ``factor`` (letterbox scale -> original image pixels)."""
        kp = None
        if self.keypoints is not None:
            kp = self.keypoints.copy()
            kp[..., :2] /= factor
        return Detections(self.boxes / factor, self.scores, self.labels, kp, self.index)


def iou_to(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each of ``boxes`` [N, 4] (empty boxes have zero area)."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    return inter / (area + areas - inter + 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS; returns kept indices in descending score order. (The IoU is written out over coordinate
    columns and areas computed once: ``iou_to`` per kept box would gather [N, 4] rows every round, 1.6x slower
    at 1000 candidates.)"""
    order = np.argsort(-scores, kind="stable")
    x0, y0, x1, y1 = boxes.T
    areas = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        h = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def vote_keypoints(keypoints: np.ndarray, boxes: np.ndarray, scores: np.ndarray, det: Detections, *,
                   conf: float, iou: float = KEYPOINT_VOTE_IOU) -> np.ndarray:
    """Skeletons of ``det`` (decoded from these raw outputs) [N, K, 3]: each detection's (x, y) are the
    score-weighted mean over the anchors whose score for its class is above ``conf`` and at least half its
    own and whose box overlaps its box by IoU > ``iou`` (itself included); visibility stays its own anchor's.

    ``keypoints`` [A, K, 3], ``boxes`` [A, 4] and ``scores`` [A, C] are one image's per-anchor outputs; the
    means are taken in float64 (the Java decoder does the same)."""
    out = keypoints[det.index].copy()
    pool = np.nonzero((scores > conf).any(1))[0]  # anchors above conf for some class: the only possible voters
    for i, (anchor, label, score) in enumerate(zip(det.index, det.labels, det.scores, strict=True)):
        voters = pool[(scores[pool, label] > conf) & (scores[pool, label] >= 0.5 * float(score))]
        voters = voters[iou_to(boxes[anchor], boxes[voters]) > iou]
        weight = scores[voters, label].astype(np.float64)[:, None, None]
        out[i, :, :2] = (keypoints[voters, :, :2].astype(np.float64) * weight).sum(0) / weight.sum()
    return out


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other (coordinate-offset trick)."""
    if boxes.size == 0:
        return np.zeros((0,), np.int64)
    offset = labels.astype(np.float32)[:, None] * (boxes.max() + 1.0)
    return nms(boxes + offset, scores, iou_threshold)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, ties at the cut resolved by lowest index, in index order: the same
    set under any NumPy version (``argpartition`` alone picks among equal scores by its algorithm, and a
    Triton server's NumPy 1.x would then keep other boxes than the Python API's NumPy 2.x)."""
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    above = np.nonzero(scores > kth)[0]
    tied = np.nonzero(scores == kth)[0][: k - len(above)]
    return np.sort(np.concatenate([above, tied]))


def decode_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    keypoints: np.ndarray | None = None,
    *,
    conf: float = 0.25,
    iou: float = NMS_IOU,
    max_det: int = 100,
    max_candidates: int = 1000,
    multi_label: bool = True,
) -> Detections:
    """One image's deploy outputs: ``boxes`` [A, 4], ``scores`` [A, C], ``keypoints`` [A, K*3] or [A, K, 3].

    ``multi_label`` keeps every (anchor, class) pair above ``conf`` (best for mAP); otherwise only the
    top class per anchor (what an app usually wants).
    """
    boxes = np.asarray(boxes, np.float32)
    scores = np.asarray(scores, np.float32)
    if multi_label:
        anchor_idx, labels = np.nonzero(scores > conf)
        cand_scores = scores[anchor_idx, labels]
    else:
        labels = scores.argmax(1)
        cand_scores = scores[np.arange(len(scores)), labels]
        anchor_idx = np.nonzero(cand_scores > conf)[0]
        labels, cand_scores = labels[anchor_idx], cand_scores[anchor_idx]
    if len(cand_scores) > max_candidates:
        top = _top_k(cand_scores, max_candidates)
        anchor_idx, labels, cand_scores = anchor_idx[top], labels[top], cand_scores[top]
    keep = batched_nms(boxes[anchor_idx], cand_scores, labels, iou)[:max_det]
    anchor_idx = anchor_idx[keep]
    kp = None
    if keypoints is not None:
        kp = np.asarray(keypoints, np.float32)
        kp = kp.reshape(kp.shape[0], -1, 3)[anchor_idx]
    return Detections(boxes[anchor_idx], cand_scores[keep], labels[keep].astype(np.int64), kp, anchor_idx)


def decode_nms_outputs(
    detections: np.ndarray,
    num_detections: int,
    keypoints: np.ndarray | None = None,
    *,
    conf: float = 0.25,
    max_det: int = 100,
) -> Detections:
    """One image's outputs of a graph exported with in-graph NMS (``mtnet export --nms``).

    ``detections`` [max_det, 6] rows (x1, y1, x2, y2, score, class), the first ``num_detections`` valid
    and in descending score order; ``keypoints`` [max_det, K*3]. The graph already applied its own
    threshold and IoU; ``conf`` / ``max_det`` here can only tighten them.
    """
    det = np.asarray(detections, np.float32)[: int(num_detections)]
    keep = np.nonzero(det[:, 4] > conf)[0][:max_det]
    kp = None
    if keypoints is not None:
        kp = np.asarray(keypoints, np.float32)[keep].reshape(len(keep), -1, 3)
    return Detections(det[keep, :4], det[keep, 4], det[keep, 5].round().astype(np.int64), kp, keep)


def upsample_logits(logits: np.ndarray, size: int) -> np.ndarray:
    """[S, h, w] logits -> [S, size, size], bilinear with half-pixel centres (= torch ``interpolate(...,
    mode="bilinear", align_corners=False)``, what training evaluates against)."""
    hwc = np.ascontiguousarray(np.asarray(logits, np.float32).transpose(1, 2, 0))
    out = cv2.resize(hwc, (size, size), interpolation=cv2.INTER_LINEAR)
    return (out[..., None] if out.ndim == 2 else out).transpose(2, 0, 1)


def decode_segmentation(seg: np.ndarray, size: int | None = None) -> np.ndarray:
    """[S, h, w] logits (stride 4 from deploy graphs; upsampled to ``size`` x ``size`` first) or an
    [H, W] argmax map -> [H, W] uint8 class labels."""
    seg = np.asarray(seg)
    if seg.ndim == 2:
        return seg.astype(np.uint8)
    if size is not None and seg.shape[1:] != (size, size):
        seg = upsample_logits(seg, size)
    return seg.argmax(0).astype(np.uint8)


def unletterbox_mask(labels: np.ndarray, scale: float, shape: tuple[int, int]) -> np.ndarray:
    """Crop the letterbox padding off a label map and resize it (nearest) to the original image size."""
    h, w = shape
    nh, nw = min(labels.shape[0], round(h * scale)), min(labels.shape[1], round(w * scale))
    crop = labels[:nh, :nw]
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_NEAREST) if (nh, nw) != (h, w) else crop
