"""Accuracy drop of a quantized artifact against its float reference, in metric points."""

from __future__ import annotations

DROP_KEYS = ("bbox_AP", "bbox_AP50", "kpt_AP", "kpt_AP50", "mIoU")
GATED = ("bbox_AP50", "kpt_AP50", "mIoU")  # the acceptance gate: each within ``budget`` points
DEFAULT_BUDGET = 1.0


def accuracy_drop(reference: dict, quantized: dict, *, budget: float = DEFAULT_BUDGET) -> dict:
    """Per-metric drop in points (metrics are fractions in [0, 1]; positive = worse) and pass/fail."""
    drops = {k: round(100.0 * (reference[k] - quantized[k]), 3) for k in DROP_KEYS
             if reference.get(k) is not None and quantized.get(k) is not None}
    gated = {k: v for k, v in drops.items() if k in GATED}
    return {"points": drops, "budget": budget, "passed": all(v <= budget for v in gated.values()),
            "gated": sorted(gated)}
