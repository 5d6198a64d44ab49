"""The multi-task criterion: every enabled task's loss, then balancing, honouring partial labels.

Partial labels: a sample contributes to a task's loss only when its source labels that task
(``has_<task>`` in the batch). A sample without boxes from a source that does label boxes is a true
negative; a sample from a source without boxes contributes nothing to detection. The losses themselves
live with their tasks (``mtnet.tasks``); tasks run in registry order and share a context (pose reads the
detection assignment).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import LossConfig
from ..data.meta import DatasetMeta
from ..tasks import resolve_tasks
from .balance import TaskBalancer


class MultiTaskCriterion(nn.Module):
    def __init__(self, meta: DatasetMeta, tasks: list[str], cfg: LossConfig):
        super().__init__()
        self.meta = meta
        self.task_set = resolve_tasks(tasks)
        self.tasks = self.task_set.names
        self.cfg = cfg
        self.balancer = TaskBalancer({t.name: t.loss_weight(cfg) for t in self.task_set}, cfg.balance)

    def forward(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        losses: dict[str, torch.Tensor] = {}
        logs: dict[str, float] = {}
        context: dict[str, Any] = {}
        for task in self.task_set:
            losses[task.name], task_logs = task.loss(out, batch, context, self.meta, self.cfg)
            logs.update(task_logs)
        total, weights = self.balancer(losses)
        logs.update({f"w_{k}": v for k, v in weights.items()})
        logs["loss"] = float(total.detach())
        return total, logs
