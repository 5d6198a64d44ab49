"""PTQ options with their defaults and the reason for each."""

from __future__ import annotations

from dataclasses import dataclass

from mtnet.errors import UserError

METHODS = ("full-int8", "dynamic-range", "qat")


@dataclass(frozen=True)
class QuantConfig:
    """How the int8 TFLite artifact is made.

    * ``method``: ``full-int8`` (weights and activations int8, calibrated; what NPUs/DSPs and XNNPACK's
      int8 path run) or ``dynamic-range`` (int8 weights, float activations; no calibration data, smaller
      file, float speed).
    * ``num_images``: calibration images; 200 saturates min/max statistics for a model this size, fewer
      than ~50 under-covers rare classes.
    * ``int8_io``: an int8 input tensor (its scale / zero point in ``model.json`` ``int8_input``) instead of a
      float32 input with a quantize op inside the graph; outputs stay float32 either way (boxes and keypoints
      come out of the float decode tail in pixels; see ``export.tflite``). Float I/O keeps the app side simple.
    * ``quant_type``: ``per-channel`` weights (accurate for depthwise convs) or ``per-tensor``.
    * ``method="qat"``: the checkpoint comes from ``mtnet qat`` (``calibration.qat``); its learned activation
      ranges replace the calibrated ones wherever a PyTorch point binds to a TFLite tensor, and its weights are
      already on the int8 grid. A checkpoint without QAT ranges is refused (never a silent PTQ).
    * ``sensitivity``: also quantize one branch at a time (backbone, neck, each task head), the rest float, and
      report each task's drop (``export.int8_points``).
    * ``float_branches``: branches kept float32 in the shipped int8 model (when one must, to meet the budget).
    """

    method: str = "full-int8"
    num_images: int = 200
    int8_io: bool = False
    quant_type: str = "per-channel"
    seed: int = 0
    sensitivity: bool = False
    float_branches: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"quantization method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.num_images < 1:
            raise UserError(f"calibration needs at least 1 image, got {self.num_images}")
        if self.quant_type not in ("per-channel", "per-tensor"):
            raise UserError(f"quant type must be 'per-channel' or 'per-tensor', got {self.quant_type!r}")
