"""Instance masks from the prototype-mask head's deploy outputs, in NumPy: one implementation for every backend
(PyTorch, ONNX Runtime, LiteRT), next to ``mtnet.decode`` (which picks the detections whose masks these are)."""

from __future__ import annotations

import cv2
import numpy as np

from .decode import upsample_logits


def assemble_masks(coefs: np.ndarray, protos: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Masks [N, size, size] (bool, network-input pixels) of N detections: sigmoid(coefs . protos) > 0.5,
    upsampled bilinearly (half-pixel centres) from the prototype grid, zero outside each box.

    ``coefs`` [N, P] (the detections' rows of ``mask_coefs``), ``protos`` [P, h, w], ``boxes`` [N, 4] xyxy in
    network-input pixels.
    """
    if not len(boxes):
        return np.zeros((0, size, size), bool)
    coefs = np.asarray(coefs, np.float32).reshape(len(boxes), -1)
    protos = np.asarray(protos, np.float32)
    p, h, w = protos.shape
    logits = (coefs @ protos.reshape(p, h * w)).reshape(-1, h, w)
    chunks = [upsample_logits(logits[i : i + 256], size) for i in range(0, len(logits), 256)]  # cv2: <= 512 channels
    masks = np.concatenate(chunks) > 0.0  # sigmoid(x) > 0.5
    centres = np.arange(size, dtype=np.float32) + 0.5
    b = np.asarray(boxes, np.float32)
    inside_x = (centres[None] >= b[:, 0:1]) & (centres[None] <= b[:, 2:3])  # [N, size]
    inside_y = (centres[None] >= b[:, 1:2]) & (centres[None] <= b[:, 3:4])
    return masks & inside_y[:, :, None] & inside_x[:, None, :]


def unletterbox_masks(masks: np.ndarray, scale: float, shape: tuple[int, int]) -> np.ndarray:
    """[N, S, S] masks on the letterboxed input -> [N, H, W] on the original image (padding cropped, nearest)."""
    h, w = shape
    nh, nw = min(masks.shape[1], round(h * scale)), min(masks.shape[2], round(w * scale))
    crop = masks[:, :nh, :nw]
    if (nh, nw) == (h, w):
        return crop
    return np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) for m in crop]).astype(bool) \
        if len(crop) else np.zeros((0, h, w), bool)
