"""Learning-rate schedules as per-step multipliers of the peak LR (for ``torch.optim.lr_scheduler.LambdaLR``).

Linear warmup from ``start_factor`` (Goyal et al. 2017: large-batch training needs it), then cosine
decay to ``min_ratio`` — or a one-cycle shape (Smith 2018: cosine up over the warmup, cosine down after).
With SWA the last epochs hold a constant LR instead (``with_swa``).
"""

from __future__ import annotations

import math
from collections.abc import Callable


def warmup_cosine(total_steps: int, warmup_steps: int, start_factor: float = 0.01,
                  min_ratio: float = 0.02) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup_steps:
            return start_factor + (1 - start_factor) * step / max(1, warmup_steps)
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def one_cycle(total_steps: int, warmup_steps: int, start_factor: float = 0.04,
              min_ratio: float = 1e-3) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup_steps:
            t = step / max(1, warmup_steps)
            return start_factor + (1 - start_factor) * 0.5 * (1 - math.cos(math.pi * t))
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def build_schedule(name: str, total_steps: int, warmup_steps: int, start_factor: float,
                   min_ratio: float) -> Callable[[int], float]:
    if name == "cosine":
        return warmup_cosine(total_steps, warmup_steps, start_factor, min_ratio)
    if name == "onecycle":
        return one_cycle(total_steps, warmup_steps, start_factor, min_ratio)
    raise ValueError(f"unknown schedule {name!r} (cosine | onecycle)")


def with_swa(schedule: Callable[[int], float], swa_start_step: int, swa_ratio: float) -> Callable[[int], float]:
    """``schedule`` until ``swa_start_step``, then the constant ``swa_ratio`` (SWA averages over a flat LR)."""

    def f(step: int) -> float:
        return schedule(step) if step < swa_start_step else swa_ratio

    return f


def warmup_length(steps_per_epoch: int, warmup_epochs: float, warmup_steps: int) -> int:
    """Warmup in optimizer steps: ``warmup_steps`` when set (> 0), else ``warmup_epochs`` epochs."""
    return warmup_steps if warmup_steps > 0 else int(round(warmup_epochs * steps_per_epoch))


def scaled_lr(base_lr: float, effective_batch: int, reference_batch: int = 256) -> float:
    """Linear scaling rule: the LR grows with the effective batch (Goyal et al. 2017)."""
    return base_lr * effective_batch / reference_batch
