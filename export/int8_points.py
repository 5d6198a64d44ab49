"""PyTorch activation points bound to the TFLite quantizer's tensors: QAT ranges in, per-branch int8 out.

TF's converter names tensors after its own fused ops (``model_23/tf.nn.relu6_38/Relu6;...``), nothing that
names a PyTorch module. The calibrated model (TFLite's float model annotated with each tensor's min/max)
runs in LiteRT, so each activation point of ``calibration.qat`` (``backbone.features.3``,
``heads.det.cls_pred``, ...) is bound to the tensor holding the same values on a probe image (NHWC vs NCHW,
relative error below ``MATCH_REL``). Bound tensors then

* take the QAT run's learned ranges instead of the calibration min/max (``apply_qat_ranges``), and
* name the branch (backbone, neck, one task head) that each op belongs to (``branch_of_tensors``), so one
  branch at a time can be quantized with the rest float (``branch_denylist``).

Everything here runs in the quantizer's child process (TensorFlow and LiteRT loaded there).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MATCH_REL = 1e-3  # float32 conversions agree to ~1e-6 relative; a different tensor is off by tens of percent


def save_points(path: str | Path, probe_nhwc: np.ndarray, acts_nchw: dict[str, np.ndarray],
                ranges: dict[str, list[float]] | None = None) -> Path:
    """Write the probe image, the point activations on it and (QAT) the learned ranges for the child process."""
    arrays = {"__probe__": probe_nhwc.astype(np.float32)}
    arrays.update({f"act:{k}": np.ascontiguousarray(v.transpose(0, 2, 3, 1)) if v.ndim == 4 else v
                   for k, v in acts_nchw.items()})
    np.savez(path, **arrays)
    Path(f"{path}.ranges.json").write_text(json.dumps(ranges or {}))
    return Path(path)


def load_points(path: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, list[float]]]:
    data = np.load(path)
    acts = {k[4:]: data[k] for k in data.files if k.startswith("act:")}
    return data["__probe__"], acts, json.loads(Path(f"{path}.ranges.json").read_text())


def bind_points(model_bytes: bytes, probe_nhwc: np.ndarray, acts_nhwc: dict[str, np.ndarray]) -> dict[str, str]:
    """Point name -> name of the float tensor of ``model_bytes`` with the same values on the probe."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], probe_nhwc[:1])
    interp.invoke()
    by_shape: dict[tuple, list[tuple[str, np.ndarray]]] = {}
    for d in interp.get_tensor_details():
        if d["dtype"] != np.float32 or not d["name"]:
            continue
        try:
            v = interp.get_tensor(d["index"])
        except ValueError:  # constants folded away / tensors without data
            continue
        by_shape.setdefault(tuple(v.shape), []).append((d["name"], v))
    bound: dict[str, str] = {}
    for point, a in acts_nhwc.items():
        scale = float(np.abs(a).max()) + 1e-6
        errs = [(float(np.abs(v - a).max()) / scale, name) for name, v in by_shape.get(tuple(a.shape), [])]
        if errs and min(errs)[0] < MATCH_REL:
            bound[point] = min(errs)[1]
    return bound


def _model(model_bytes: bytes):
    from ai_edge_litert import schema_py_generated as schema

    return schema, schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(model_bytes), 0))


def _pack(model) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def apply_qat_ranges(calibrated: bytes, bound: dict[str, str], ranges: dict[str, list[float]]) -> tuple[bytes, list[dict]]:
    """``calibrated`` with the QAT range of each bound point on its tensor; returns (model, what was set)."""
    schema, model = _model(calibrated)
    graph = model.subgraphs[0]
    index = {t.name.decode(): t for t in graph.tensors}
    applied = []
    for point, name in sorted(bound.items()):
        if point not in ranges:
            continue
        lo, hi = ranges[point]
        t = index[name]
        if t.quantization is None:
            t.quantization = schema.QuantizationParametersT()
        old = [[] if v is None else list(v) for v in (t.quantization.min, t.quantization.max)]
        t.quantization.min, t.quantization.max = [float(lo)], [float(hi)]
        applied.append({"point": point, "tensor": name, "qat_range": [lo, hi],
                        "calibration_range": [float(old[0][0]), float(old[1][0])] if old[0] and old[1] else None})
    return _pack(model), applied


def apply_points(calibrated: bytes, points_npz: str | Path, dst: str | Path, *, qat: bool, nodes: list[str],
                 op_types: list[str], per_tensor: bool, float_branches: list[str],
                 sensitivity: bool) -> tuple[bytes, list[str]]:
    """Bind the points, set QAT ranges (``qat``), write the one-branch-int8 models (``sensitivity``); returns
    (calibrated model to quantize, extra op names to keep float for ``float_branches``). Writes
    ``<dst>.points.json``: the binding, the ranges set, each tensor's branch and the sensitivity files."""
    from tensorflow.lite.python import convert

    from .tflite import remove_float_requantization

    probe, acts, ranges = load_points(points_npz)
    bound = bind_points(calibrated, probe, acts)
    info: dict = {"points": sorted(acts), "bound": bound, "qat_applied": [], "sensitivity": {}}
    if qat:
        calibrated, info["qat_applied"] = apply_qat_ranges(calibrated, bound, ranges)
    branches = branch_of_tensors(calibrated, bound)
    info["branches"] = branches
    if sensitivity:
        for b in sorted(set(branches.values())):
            q = convert.mlir_quantize(calibrated, disable_per_channel=per_tensor, denylisted_ops=op_types or None,
                                      denylisted_nodes=nodes + branch_denylist(branches, b))
            path = Path(f"{dst}.only_{b}.tflite")
            path.write_bytes(remove_float_requantization(q)[0])
            info["sensitivity"][b] = str(path)
    extra = branches_float(branches, float_branches)
    info["float_branches"] = {"branches": float_branches, "ops": extra}
    Path(f"{dst}.points.json").write_text(json.dumps(info, indent=1))
    return calibrated, extra


def branch_of(point: str) -> str:
    """``heads.det.cls_pred`` -> ``det``; ``backbone.features.3`` -> ``backbone``; ``input`` -> ``backbone``."""
    parts = point.split(".")
    if parts[0] == "heads":
        return parts[1]
    return "backbone" if parts[0] == "input" else parts[0]


def branch_of_tensors(model_bytes: bytes, bound: dict[str, str]) -> dict[str, str]:
    """Every op output tensor name -> branch: bound tensors by their point, the others by their first input
    that has one (ops run in topological order), so the neck's adds and resizes, a head's reshapes and
    concatenations belong to whoever produced their input."""
    _, model = _model(model_bytes)
    graph = model.subgraphs[0]
    names = [t.name.decode() for t in graph.tensors]
    branch = {tensor: branch_of(point) for point, tensor in bound.items()}
    for op in graph.operators:
        outs = [names[i] for i in op.outputs]
        for out in outs:
            if out in branch:
                continue
            found = next((branch[names[i]] for i in op.inputs if i >= 0 and names[i] in branch), None)
            if found is not None:
                branch[out] = found
    return branch


def branch_denylist(branches: dict[str, str], keep_int8: str) -> list[str]:
    """Op (output tensor) names to keep float so that only branch ``keep_int8`` is quantized."""
    return sorted(name for name, b in branches.items() if b != keep_int8)


def branches_float(branches: dict[str, str], float_branches: list[str]) -> list[str]:
    """Op names of the branches that stay float32 in the shipped int8 model (``--int8-float``)."""
    return sorted(name for name, b in branches.items() if b in float_branches)
