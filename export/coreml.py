"""PyTorch deploy graph -> CoreML ML Program (``.mlpackage``), fp16 compute, optional int8 weights.

The input is an RGB *image* (what Vision / CVPixelBuffer hand over): CoreML's ImageType applies one scalar
scale (1/255) and the per-channel MEAN/STD normalisation is the first op inside the model, so apps pass
pixels untouched. Conversion, saving and spec inspection work on Linux; ``predict`` needs macOS.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtnet.data.preprocess import mean_std
from mtnet.modeljson import METADATA_KEY, dumps


class _Normalized(nn.Module):
    """[0, 1] RGB NCHW -> the model's normalised input, then the deploy graph."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        mean, std = mean_std()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor):
        return self.model((x - self.mean) / self.std)


def convert_coreml(model: nn.Module, imgsz: int, doc: dict[str, Any]):
    """Trace the deploy graph and convert it to an fp16 ML Program with ``doc`` as user metadata."""
    import coremltools as ct

    model = model.eval()
    was = model.deploy
    model.deploy = True
    try:
        wrapped = _Normalized(model).eval()
        example = torch.rand(1, 3, imgsz, imgsz)
        with torch.no_grad():
            traced = torch.jit.trace(wrapped, example, check_trace=False)
        mlmodel = ct.convert(
            traced,
            inputs=[ct.ImageType(name="images", shape=example.shape, scale=1 / 255.0, bias=[0.0, 0.0, 0.0],
                                 color_layout=ct.colorlayout.RGB)],
            outputs=[ct.TensorType(name=n) for n in model.output_names()],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16,
            minimum_deployment_target=ct.target.iOS16,
        )
    finally:
        model.deploy = was
    _describe(mlmodel, doc)
    return mlmodel


def quantize_weights_int8(mlmodel, doc: dict[str, Any]):
    """Linear symmetric per-channel int8 weights (activations stay fp16): ~half the fp16 file size."""
    import coremltools as ct

    config = ct.optimize.coreml.OptimizationConfig(
        global_config=ct.optimize.coreml.OpLinearQuantizerConfig(mode="linear_symmetric", granularity="per_channel"))
    out = ct.optimize.coreml.linear_quantize_weights(mlmodel, config=config)
    _describe(out, doc)
    return out


def _describe(mlmodel, doc: dict[str, Any]) -> None:
    mlmodel.user_defined_metadata[METADATA_KEY] = dumps(doc)
    mlmodel.short_description = f"mtnet {'+'.join(doc['tasks'])} {doc['input']['imgsz']}px"
    mlmodel.input_description["images"] = "RGB image, letterboxed to the input size (pad bottom/right)"
    for spec in doc["outputs"]:
        mlmodel.output_description[spec["name"]] = f"{spec['axes']}: {spec['meaning']}"


def save_mlpackage(mlmodel, path: str | Path) -> Path:
    """Save to a temp folder beside ``path``, then swap it in: no half-written package under the name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        mlmodel.save(str(tmp / path.name))
        old = path.with_name(f".{path.name}.old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp / path.name, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
