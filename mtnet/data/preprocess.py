"""The network's input convention, in one place for training, every backend, export and calibration.

An RGB uint8 image becomes a network input in two steps:

1. :func:`letterbox`: resize the longer side to the input size and pad bottom/right with ``PAD_VALUE``.
   A point (x, y) of the image lands at (x * scale, y * scale), so mapping predictions back is one
   division by the returned scale.
2. Normalisation ``x = (pixel / 255 - MEAN) / STD``, computed in that order everywhere: :func:`normalize`
   (torch, uint8 NHWC -> float NCHW), :func:`normalize_nhwc` (NumPy, uint8 NHWC -> float32 NHWC) and
   :func:`to_unit_range` + :func:`normalize_unit` (the same two steps, for calibration images kept in
   [0, 1]) give bit-identical float32 values, so ONNX Runtime and LiteRT see exactly PyTorch's input.

Heavy imports (torch) happen inside the torch functions: NumPy-only backends stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from .sample import IGNORE_INDEX

if TYPE_CHECKING:
    import torch

MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics on [0, 1] inputs; written into every export's metadata
STD = (0.229, 0.224, 0.225)
PAD_VALUE = 114  # letterbox padding (grey), also the fill of augmentation padding and cutout

_MEAN32 = np.asarray(MEAN, np.float32)
_STD32 = np.asarray(STD, np.float32)


def letterbox(image: np.ndarray, size: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Resize the longer side to ``size`` and pad bottom/right; returns (image, mask, scale).

    A point (x, y) of the input lands at (x * scale, y * scale); padding at top-left origin keeps the
    inverse a single division, shared by every backend. ``mask`` (uint8 labels) is resized nearest and
    padded with ``IGNORE_INDEX``.
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = min(size, round(h * scale)), min(size, round(w * scale))
    out = np.full((size, size, 3), PAD_VALUE, np.uint8)
    out[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nh, nw) != (h, w) else image
    return out, letterbox_mask(mask, size, scale) if mask is not None else None, scale


def letterbox_mask(mask: np.ndarray, size: int, scale: float) -> np.ndarray:
    """A uint8 label map letterboxed like its image (``scale`` from :func:`letterbox`): nearest, padded with
    ``IGNORE_INDEX``."""
    h, w = mask.shape[:2]
    nh, nw = min(size, round(h * scale)), min(size, round(w * scale))
    out = np.full((size, size), IGNORE_INDEX, np.uint8)
    out[:nh, :nw] = cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_NEAREST) if (nh, nw) != (h, w) else mask
    return out


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1] (what onnx2tf's calibration takes)."""
    return images.astype(np.float32) / np.float32(255.0)


def normalize_unit(x: np.ndarray) -> np.ndarray:
    """[0, 1] RGB, channels last -> the network's input values ``(x - MEAN) / STD``."""
    return (x - _MEAN32) / _STD32


def normalize_nhwc(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NHWC network input; bit-identical to :func:`normalize` (transposed)."""
    return normalize_unit(to_unit_range(images))


def mean_std(dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MEAN and STD as [1, 3, 1, 1] tensors, for NCHW inputs in [0, 1] (default dtype float32)."""
    import torch

    mean = torch.tensor(MEAN, dtype=dtype or torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=dtype or torch.float32, device=device).view(1, 3, 1, 1)
    return mean, std


def normalize(images: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """uint8 NHWC batch -> NCHW network input in ``dtype`` (default float32), on the batch's device."""
    import torch

    x = images.permute(0, 3, 1, 2).to(dtype or torch.float32).div_(255.0)
    mean, std = mean_std(x.dtype, x.device)
    return (x - mean) / std
