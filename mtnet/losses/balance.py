"""Multi-task loss balancing: fixed weights, learned homoscedastic uncertainty (Kendall et al. 2018), or
dynamic weight averaging (DWA, Liu et al. 2019).

* ``fixed``: L = sum_t w_t L_t.
* ``uncertainty``: L = sum_t exp(-s_t) w_t L_t + s_t with a learned log-variance s_t per task: a task whose
  loss stays high (noisy) is down-weighted, the + s_t term stops all weights collapsing to zero.
* ``dwa``: weights follow how fast each task's loss falls: with r_t = Lbar_t(k-1) / Lbar_t(k-2) (epoch means)
  lambda_t = T exp(r_t / temp) / sum_i exp(r_i / temp), so a task that stalls gets more weight. The first two
  epochs use lambda_t = 1. Epoch means live in buffers, so mid-epoch resume stays exact.
"""

from __future__ import annotations

import torch
from torch import nn

MODES = ("fixed", "uncertainty", "dwa")


class TaskBalancer(nn.Module):
    def __init__(self, weights: dict[str, float], mode: str = "fixed", dwa_temperature: float = 2.0):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown loss balance {mode!r} ({' | '.join(MODES)})")
        self.weights = dict(weights)
        self.tasks = list(weights)
        self.mode = mode
        self.temperature = dwa_temperature
        self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t in weights}) if mode == "uncertainty" else None
        if mode == "dwa":
            n = len(self.tasks)
            self.register_buffer("epoch_sums", torch.zeros(n, dtype=torch.float64))  # this epoch, per task
            self.register_buffer("epoch_count", torch.zeros((), dtype=torch.float64))
            self.register_buffer("history", torch.zeros(2, n, dtype=torch.float64))  # means of epochs k-2, k-1
            self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))

    def dwa_weights(self) -> torch.Tensor:
        """lambda per task for the current epoch (all ones until two epoch means exist)."""
        n = len(self.tasks)
        if int(self.epochs_seen) < 2:
            return torch.ones(n, dtype=torch.float64, device=self.history.device)
        ratio = self.history[1] / self.history[0].clamp(min=1e-12)
        return n * torch.softmax(ratio / self.temperature, dim=0)

    def end_epoch(self) -> None:
        """DWA: close the epoch (call after the per-process sums were reduced across processes)."""
        if self.mode != "dwa":
            return
        if float(self.epoch_count) > 0:
            self.history[0] = self.history[1]
            self.history[1] = self.epoch_sums / self.epoch_count
            self.epochs_seen += 1
        self.epoch_sums.zero_()
        self.epoch_count.zero_()

    def forward(self, losses: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        total = torch.zeros((), device=next(iter(losses.values())).device)
        effective: dict[str, float] = {}
        dwa = self.dwa_weights() if self.mode == "dwa" else None
        if dwa is not None and self.training:
            values = torch.stack([losses[t].detach().double() for t in self.tasks])
            if bool(torch.isfinite(values).all()):
                self.epoch_sums += values
                self.epoch_count += 1
        for task, loss in losses.items():
            w = self.weights[task]
            if self.log_vars is not None:
                s = self.log_vars[task]
                total = total + torch.exp(-s) * w * loss + s
                effective[task] = float(torch.exp(-s).detach()) * w
            elif dwa is not None:
                w = w * float(dwa[self.tasks.index(task)])
                total = total + w * loss
                effective[task] = w
            else:
                total = total + w * loss
                effective[task] = w
        return total, effective
