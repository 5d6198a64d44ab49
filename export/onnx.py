"""PyTorch deploy graph -> ONNX (fixed input shape, opset 17).

Opset 17 is what the TorchScript exporter (``dynamo=False``) produces reliably with torch 2.13 and what
onnx2tf 1.28 and onnxruntime 1.32 both support fully; the dynamo exporter lands on the same opset but
emits a larger graph for onnx2tf to untangle. BatchNorm is folded by the exporter (eval mode).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch

from mtnet.fileio import atomic_write
from mtnet.modeljson import onnx_metadata_props

from .nms import nms_constants_to_initializers

OPSET = 17
INPUT_NAME = "images"


def export_onnx(model: torch.nn.Module, path: str | Path, imgsz: int, *, doc: dict | None = None,
                batch: int = 1, dynamic_batch: bool = False) -> Path:
    """Write ``model``'s deploy graph (``model.deploy = True``) to ``path`` atomically.

    Input ``images``: float32 [batch, 3, imgsz, imgsz], normalised with MEAN/STD. Outputs are named
    ``model.output_names()`` in that order. ``doc`` (``model.json``) is stored in the metadata props
    (``mtnet.modeljson``). ``dynamic_batch``: the batch axis of the input and every output is symbolic
    (``batch``), for servers that batch requests (Triton); a batch of 0 is not supported by every graph.
    """
    import onnx

    model = model.eval()
    was = model.deploy
    model.deploy = True
    try:
        buf = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            # shapes are fixed by design (fixed input size, batch 1): the tracer's "treated as a constant" is intended
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(model, (torch.zeros(batch, 3, imgsz, imgsz),), buf, dynamo=False, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=model.output_names(), do_constant_folding=True,
                              dynamic_axes={n: {0: "batch"} for n in [INPUT_NAME, *model.output_names()]} if dynamic_batch else None)
    finally:
        model.deploy = was
    proto = onnx.load_from_string(buf.getvalue())
    nms_constants_to_initializers(proto)  # no-op without in-graph NMS (``--nms``)
    onnx.checker.check_model(proto)
    if doc is not None:
        onnx.helper.set_model_props(proto, onnx_metadata_props(doc))
    path = Path(path)
    atomic_write(path, lambda tmp: onnx.save(proto, tmp))
    return path
