"""Numerical parity of an exported backend against the PyTorch model on the same letterboxed images.

Besides PyTorch fp32 (the acceptance reference), an fp32 artifact is also compared with the same model
run in float64 (:class:`Float64Reference`), and PyTorch fp32 itself with float64: that is the rounding
noise every float32 implementation carries. Measured on the quickstart model (192 px, 8 val images):
PyTorch fp32, ONNX Runtime and LiteRT (XNNPACK, builtin and reference kernels alike) are each ~1e-4 px
from float64 on boxes — ~1e-5 on the raw box logits (different summation orders through ~60 convs)
times the stride (up to 32) of the decode — so two of them differ by up to ~2e-4 px.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np


def compare_outputs(ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per output: max / mean absolute difference, max difference relative to the reference's largest
    magnitude, that magnitude (``max_ref``) and the float32 spacing there (``max_spacing``, 1 ulp).

    Integer outputs (segmentation argmax) report the fraction of pixels whose label differs.
    """
    result: dict[str, dict[str, float]] = {}
    for name, r in ref.items():
        g = got[name]
        if g.shape != r.shape:
            raise ValueError(f"output {name}: shape {list(g.shape)} != reference {list(r.shape)}")
        if np.issubdtype(r.dtype, np.integer):
            result[name] = {"label_mismatch": float((g != r).mean())}
            continue
        diff = np.abs(g.astype(np.float64) - r.astype(np.float64))
        magnitude = float(np.abs(r).max())
        scale = magnitude or 1.0
        # max_spacing: float32 spacing (1 ulp) at the largest |reference| value: max_abs / max_spacing = ulps
        result[name] = {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
                        "max_rel": float(diff.max() / scale), "max_ref": magnitude,
                        "max_spacing": float(np.spacing(np.float32(scale)))}
    return result


class Float64Reference:
    """The PyTorch deploy graph in float64: what every float32 implementation approximates.

    Same interface as ``TorchBackend`` (uint8 NHWC letterboxed batch -> outputs by name); the input is
    normalised in float64 too.
    """

    def __init__(self, model, imgsz: int):
        self.model = copy.deepcopy(model).double().eval()
        self.imgsz, self.meta = imgsz, model.meta

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        from mtnet.data.preprocess import normalize

        x = normalize(torch.from_numpy(np.ascontiguousarray(images)), torch.float64)
        was = self.model.deploy
        self.model.deploy = True
        try:
            with torch.inference_mode():
                outs = self.model(x)
        finally:
            self.model.deploy = was
        return {n: o.numpy() for n, o in zip(self.model.output_names(), outs, strict=True)}


def canonical_nms_order(outs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """In-graph NMS outputs (``--nms``) with each image's valid rows in one canonical order.

    NMS emits detections by descending score; equal scores (flat image regions give identical features)
    come out in an implementation-defined order, so two correct backends can differ row by row. Rows are
    sorted by score rounded to 1e-4, then class and corners; every other per-row output ([B, max_det, ...]:
    ``keypoints``, any task's per-anchor output) follows its rows.
    """
    if "detections" not in outs:
        return outs
    outs = dict(outs)
    det = outs["detections"].copy()
    per_row = [n for n, v in outs.items() if n != "detections" and np.ndim(v) >= 2 and v.shape[:2] == det.shape[:2]]
    rowed = {n: outs[n].copy() for n in per_row}
    for b, n in enumerate(np.asarray(outs["num_detections"]).reshape(-1)):
        rows = det[b, : int(n)]
        order = np.lexsort((rows[:, 3], rows[:, 2], rows[:, 1], rows[:, 0], rows[:, 5], -np.round(rows[:, 4], 4)))
        det[b, : int(n)] = rows[order]
        for v in rowed.values():
            v[b, : int(n)] = v[b, : int(n)][order]
    return {**outs, "detections": det, **rowed}


def parity(reference, backend, images: np.ndarray) -> dict[str, dict[str, float]]:
    """Run ``reference`` (e.g. ``TorchBackend``) and ``backend`` on uint8 NHWC ``images`` and compare.

    Aggregates over images: the worst ``max_*`` and the mean ``mean_abs`` / ``label_mismatch``. Graphs
    with in-graph NMS are compared in :func:`canonical_nms_order`.
    """
    rows = [compare_outputs(canonical_nms_order(reference(images[i : i + 1])),
                            canonical_nms_order(backend(images[i : i + 1]))) for i in range(len(images))]
    out: dict[str, dict[str, float]] = {}
    for name in rows[0]:
        out[name] = {k: float(max(r[name][k] for r in rows) if k.startswith("max") else np.mean([r[name][k] for r in rows]))
                     for k in rows[0][name]}
    return out


def within(parity_result: dict[str, dict[str, float]], *, max_rel: float) -> bool:
    """True when every float output is within ``max_rel`` of the reference's largest magnitude (the fp16 gate)."""
    return all(stats["max_rel"] <= max_rel for stats in parity_result.values() if "max_abs" in stats)


def ulp_gate(parity_result: dict[str, dict[str, float]], *, ulps: float, max_rel: float,
             own_rounding: dict[str, dict[str, float]] | None = None, rounding_factor: float = 4.0) -> dict[str, Any]:
    """The fp32 gate: each float output passes when its max abs difference from PyTorch fp32 is within the
    largest of: ``ulps`` float32 spacings at the output's magnitude, ``max_rel`` of that magnitude, and
    ``rounding_factor`` x PyTorch fp32's own distance from the float64 model (``own_rounding``).

    The magnitude is the output's largest |reference| value, but at least 1: probabilities live in [0, 1] and
    a score of 0.01 is not 100x more precise than one of 1 (ONNX Runtime's sigmoid is 45-400 ulp off for
    logits in [-6, -2], harmless in absolute terms). A fixed absolute bound cannot serve every output: two
    correct float32 implementations differ by their rounding, which grows with the magnitude and with the
    depth of the graph; on a longer-trained model PyTorch fp32 itself is 30-120 ulp from float64, so the
    third term keeps the gate about conversion errors, not about float32 itself.
    Returns the rule, per output the absolute ``bound`` it implies, the measured ``max_abs`` and ``ulp``,
    and whether each output and the whole artifact pass.
    """
    outputs = {}
    for name, s in parity_result.items():
        if "max_abs" not in s:  # integer outputs (argmax labels, detection counts) have no rounding to bound
            continue
        magnitude = max(s["max_ref"], 1.0)
        spacing = float(np.spacing(np.float32(magnitude)))
        own = (own_rounding or {}).get(name, {}).get("max_abs", 0.0)
        bound = max(ulps * spacing, max_rel * magnitude, rounding_factor * own)
        outputs[name] = {"bound": bound, "max_abs": s["max_abs"], "ulp": s["max_abs"] / spacing,
                         "passed": s["max_abs"] <= bound}
    return {"ulps": ulps, "max_rel": max_rel, "rounding_factor": rounding_factor, "outputs": outputs,
            "passed": all(o["passed"] for o in outputs.values())}
