"""mtnet: one MobileNetV2 backbone and one neck for detection, segmentation and pose, built for phones.

    import mtnet
    metrics = mtnet.train("quickstart", overrides={"train.epochs": 5, "name": "demo"})
    model = mtnet.load("runs/demo/best.pt")         # or .onnx / .tflite
    preds = model.predict([image])
    mtnet.evaluate("runs/demo/best.pt")
    mtnet.export("runs/demo/best.pt", formats=["onnx", "tflite"])
    mtnet.list_tasks()                              # tasks are plug-ins: mtnet.register_task

Importing ``mtnet`` is light: torch and the heavy export dependencies load when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from .version import __version__

_LAZY = {
    "load": "mtnet.api", "train": "mtnet.api", "evaluate": "mtnet.api",
    "list_tasks": "mtnet.tasks", "get_task": "mtnet.tasks", "register_task": "mtnet.tasks",
}


def __getattr__(name: str) -> Any:
    if name == "export":  # the mtnet.export subpackage, callable as mtnet.api.export
        return importlib.import_module("mtnet.export")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mtnet' has no attribute {name!r}")


__all__ = ["__version__", "evaluate", "export", "get_task", "list_tasks", "load", "register_task", "train"]
