"""Affine int8 (de)quantisation as TFLite defines it: ``real = (q - zero_point) * scale``.

Used by the LiteRT backend and by the exporter (output binding, float copies of int8 constants); the
``*_tensor`` helpers take a LiteRT tensor-details dict (``quantization = (scale, zero_point)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype | type = np.int8) -> np.ndarray:
    """float -> integer ``clip(round(x / scale) + zero_point)`` to ``dtype``'s range."""
    info = np.iinfo(dtype)
    q = np.round(x / np.float32(scale)) + np.float32(zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """integer -> float32 ``(q - zero_point) * scale``."""
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def quantize_input(x: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    """``x`` as the input tensor described by ``details`` takes it: quantised when it is an integer tensor."""
    if np.issubdtype(details["dtype"], np.floating):
        return x
    scale, zero_point = details["quantization"]
    return quantize(x, scale, zero_point, details["dtype"])


def dequantize_output(y: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    """An output tensor's values as float32 when it is quantised (int8/uint8 with a scale); else ``y``.

    int32 outputs (e.g. ``num_detections``) are counts, never dequantised.
    """
    scale, zero_point = details["quantization"]
    if not scale or not np.issubdtype(y.dtype, np.integer) or y.dtype == np.int32:
        return y
    return dequantize(y, scale, zero_point)
