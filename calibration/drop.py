"""Accuracy drop of a quantized artifact against its float reference, in metric points."""

from __future__ import annotations

from mtnet.tasks import gated_metrics, metric_keys

DEFAULT_BUDGET = 1.0


def accuracy_drop(reference: dict, quantized: dict, *, budget: float = DEFAULT_BUDGET) -> dict:
    """Per-metric drop in points (metrics are fractions in [0, 1]; positive = worse) and pass/fail."""
    drops = {k: round(100.0 * (reference[k] - quantized[k]), 3) for k in metric_keys()
             if reference.get(k) is not None and quantized.get(k) is not None}
    gated = {k: v for k, v in drops.items() if k in gated_metrics()}  # each task's gate: within ``budget`` points
    return {"points": drops, "budget": budget, "passed": all(v <= budget for v in gated.values()),
            "gated": sorted(gated)}
