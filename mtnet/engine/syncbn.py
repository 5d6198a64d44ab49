"""Synchronized BatchNorm for CPU (gloo) processes.

Why: ``torch.nn.SyncBatchNorm`` only accepts GPU tensors, yet the 2-process CPU run (tests, laptops) must
see the same BN statistics as one process with the global batch. This layer reduces per-process sums
with a differentiable all-reduce (the backward of a sum is the sum of the gradients), so autograd gives the
exact global-batch gradient. On CUDA the trainer uses ``torch.nn.SyncBatchNorm`` (fused kernels) instead.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; gradient: the sum of every process's gradient (what
    ``torch.distributed.nn.functional.all_reduce`` does; that API is deprecated)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


def all_reduce(x: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(x)


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are taken over every process's batch (same state_dict keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        # two passes (mean, then centred squares) as torch's BN does: E[x^2] - E[x]^2 loses precision in fp32
        count = torch.tensor([x.numel() / c], dtype=x.dtype, device=x.device)
        sums = all_reduce(torch.cat([x.sum(dim=(0, 2, 3)), count]))  # SUM; gradient flows to every process
        n = sums[-1]
        mean = sums[:c] / n
        centred = x - mean[None, :, None, None]
        var = all_reduce((centred * centred).sum(dim=(0, 2, 3))) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp(min=1), alpha=m)
        y = centred * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm -> synchronized BatchNorm: torch's fused layer on GPUs, :class:`CPUSyncBatchNorm` on CPU."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            sync = CPUSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats).to(device)
            sync.load_state_dict(child.state_dict())
            setattr(model, name, sync)
        else:
            convert_sync_batchnorm(child, device)
    return model
