"""Export a trained mtnet checkpoint to ONNX, TFLite (fp32 / fp16 / int8) and CoreML, and check every artifact.

Entry points: :func:`export` (also reachable as ``mtnet.export(...)``: this package is callable) and
:func:`mtnet.export.pipeline.export_checkpoint` (``mtnet export``). Heavy dependencies (onnx, TensorFlow via
onnx2tf, coremltools, LiteRT) are imported inside the functions that need them.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from pathlib import Path


def export(checkpoint: str | Path, *, out: str | Path = "exports", name: str | None = None,
           formats: Sequence[str] = ("onnx", "tflite", "coreml"), precisions: Sequence[str] = ("fp32", "fp16", "int8"),
           imgsz: int | None = None, data: str | Path | None = None, evaluate: bool = True) -> Path:
    """Export a checkpoint to ONNX / TFLite / CoreML with parity, accuracy and latency checks.

    Returns the export folder (``report.md``, ``report.json``, ``model.json`` and the artifacts).
    """
    from .pipeline import ExportOptions, export_checkpoint

    options = ExportOptions(formats=tuple(formats), precisions=tuple(precisions), imgsz=imgsz,
                            data_root=None if data is None else str(data), evaluate=evaluate)
    return export_checkpoint(checkpoint, out, name=name, options=options)


class _CallableModule(types.ModuleType):
    """``mtnet.export`` is both this package and the public ``export`` function."""

    def __call__(self, *args, **kwargs) -> Path:
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
