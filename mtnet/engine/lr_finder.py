"""Smith's LR range test (Smith 2017, "Cyclical Learning Rates"): train for a few hundred steps while the LR
grows geometrically from tiny to huge, record the loss, and read the usable peak LR off the curve.

It uses the real trainer's model, criterion, optimizer (no decay on BN/bias) and data, so the curve is the
one the run will see. The loss is smoothed with a bias-corrected EMA; the test stops once the smoothed loss
exceeds ``diverge_factor`` x its minimum. Suggested peak LR = LR at the minimum / 10: at the minimum the
loss is already about to blow up, and one-cycle/cosine runs spend many steps near the peak.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..config import Config
from ..errors import UserError
from .schedules import scaled_lr


@dataclass
class LRFinderResult:
    lrs: list[float]
    losses: list[float]  # raw per-step losses
    smoothed: list[float]
    batch_size: int  # images per step of the test
    suggested_lr: float  # peak LR to use at ``batch_size``
    min_loss_lr: float
    steepest_lr: float
    diverged: bool
    notes: list[str] = field(default_factory=list)

    @property
    def suggested_base_lr(self) -> float:
        """The suggestion as ``train.base_lr`` (per 256 images, the linear scaling rule's unit)."""
        return self.suggested_lr / scaled_lr(1.0, self.batch_size)


def geometric_lrs(min_lr: float, max_lr: float, steps: int) -> list[float]:
    if not 0 < min_lr < max_lr or steps < 2:
        raise UserError(f"LR range test needs 0 < min_lr < max_lr and >= 2 steps (got {min_lr}, {max_lr}, {steps})")
    return [min_lr * (max_lr / min_lr) ** (i / (steps - 1)) for i in range(steps)]


def smooth(losses: list[float], beta: float = 0.98) -> list[float]:
    """Bias-corrected exponential moving average (as in Adam): early values are not pulled towards 0."""
    out, avg = [], 0.0
    for i, v in enumerate(losses):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def suggest_lr(lrs: list[float], smoothed: list[float]) -> tuple[float, float, float]:
    """(suggested peak LR, LR at the smoothed minimum, LR of the steepest descent in log-LR)."""
    if len(lrs) < 3:
        raise UserError("LR range test stopped after fewer than 3 steps: lower --min-lr")
    i_min = min(range(len(smoothed)), key=smoothed.__getitem__)
    slopes = [(smoothed[i + 1] - smoothed[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i]))
              for i in range(max(1, i_min))]
    i_steep = min(range(len(slopes)), key=slopes.__getitem__)
    return lrs[i_min] / 10, lrs[i_min], lrs[i_steep]


def lr_range_test(cfg: Config, *, min_lr: float = 1e-6, max_lr: float = 1.0, steps: int = 100,
                  diverge_factor: float = 4.0, progress: bool = True) -> LRFinderResult:
    """Run the test on a fresh model built from ``cfg`` (nothing is written; see :func:`save_result`)."""
    from ..engine.trainer import Trainer

    lrs = geometric_lrs(min_lr, max_lr, steps)
    trainer = Trainer(cfg, progress=False)
    if trainer.dist.enabled:
        raise UserError("mtnet lr-find runs in one process: start it without torchrun")
    trainer.model.train()
    losses: list[float] = []
    epoch = 0
    batches = iter(trainer.loader(skip=0, epoch=epoch))
    diverged = False
    for lr in _bar(lrs, progress):
        try:
            batch = next(batches)
        except StopIteration:
            epoch += 1
            batches = iter(trainer.loader(skip=0, epoch=epoch))
            batch = next(batches)
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr
        loss, _ = trainer.criterion(trainer.forward_model(trainer.images(batch)), batch)
        value = float(loss.detach())
        if not math.isfinite(value):
            diverged = True
            break
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), cfg.train.grad_clip)
        trainer.optimizer.step()
        losses.append(value)
        sm = smooth(losses)
        if len(sm) > 5 and sm[-1] > diverge_factor * min(sm):
            diverged = True
            break
    smoothed = smooth(losses)
    tried = lrs[: len(losses)]
    suggested, at_min, steepest = suggest_lr(tried, smoothed)
    notes = []
    if not diverged:
        notes.append(f"the loss never diverged up to {tried[-1]:.3g}: the minimum may lie beyond --max-lr")
    return LRFinderResult(tried, losses, smoothed, cfg.train.batch_size, suggested, at_min, steepest, diverged, notes)


def _bar(items, progress: bool):
    from tqdm import tqdm

    return tqdm(items, desc="LR range test", disable=not progress, leave=False)


def save_result(result: LRFinderResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``lr_find.json`` and ``lr_find.png`` (loss vs LR, log x, the suggestion marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / "lr_find.json", out_dir / "lr_find.png"
    json_path.write_text(json.dumps({**asdict(result), "suggested_base_lr": result.suggested_base_lr}, indent=2))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(result.lrs, result.losses, alpha=0.3, label="loss")
    ax.plot(result.lrs, result.smoothed, label="smoothed loss")
    ax.axvline(result.suggested_lr, color="C2", ls="--", label=f"suggested peak LR {result.suggested_lr:.2g}")
    ax.axvline(result.min_loss_lr, color="C3", ls=":", label=f"minimum {result.min_loss_lr:.2g}")
    ax.set(xscale="log", xlabel=f"learning rate (batch {result.batch_size})", ylabel="training loss",
           title="LR range test")
    hi = max(result.smoothed[: max(1, len(result.smoothed) // 5)] + [min(result.smoothed)])
    ax.set_ylim(min(result.smoothed) * 0.9, hi * 1.5)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return json_path, png_path
