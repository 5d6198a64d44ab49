"""Small building blocks shared by backbone, neck and heads (all TFLite-GPU-delegate friendly)."""

from __future__ import annotations

import torch
from torch import nn


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` (as in the MobileNet papers) without losing >10%."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) + BatchNorm + ReLU6 (or no activation)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__(
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True) if act else nn.Identity(),
        )


class DWSeparable(nn.Sequential):
    """Depthwise 3x3 + pointwise 1x1, each with BN + ReLU6: the cheap 3x3 of every mobile head."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(ConvBNAct(cin, cin, 3, stride, groups=cin), ConvBNAct(cin, cout, 1))


def resize_to(x: torch.Tensor, ref: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """Upsample ``x`` to ``ref``'s spatial size by resize (never transposed conv)."""
    size = ref.shape[-2:]
    if mode == "nearest":
        return nn.functional.interpolate(x, size=size, mode="nearest")
    return nn.functional.interpolate(x, size=size, mode=mode, align_corners=False)


def nhwc_rows(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, H*W, C], row-major over locations.

    Written as NCHW -> NHWC + reshape (not ``flatten(2).transpose(1, 2)``): converters that run in NHWC
    (onnx2tf) then drop the permute instead of emitting a TRANSPOSE pair per head output and level, and
    a channels_last training tensor needs no copy."""
    return x.permute(0, 2, 3, 1).flatten(1, 2)


def per_level(make, copies: int) -> nn.Module:
    """``make()`` once (shared by every pyramid level) or once per level in a ModuleList. The shared form keeps
    the plain module's state-dict keys, so checkpoints of shared heads load unchanged."""
    return make() if copies == 1 else nn.ModuleList([make() for _ in range(copies)])


def at_level(module: nn.Module, level: int) -> nn.Module:
    """The level's copy of a ``per_level`` module."""
    return module[level] if isinstance(module, nn.ModuleList) else module
