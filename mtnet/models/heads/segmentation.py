"""Semantic segmentation head on the stride-8 pyramid level, refined with the stride-4 lateral."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import DWSeparable, resize_to


class SegmentationHead(nn.Module):
    def __init__(self, channels: int, hidden: int, num_classes: int):
        super().__init__()
        self.context = DWSeparable(channels, hidden)
        self.refine = nn.Sequential(DWSeparable(hidden, hidden), DWSeparable(hidden, hidden))
        self.proj_c2 = nn.Identity() if channels == hidden else nn.Conv2d(channels, hidden, 1)
        self.classifier = nn.Conv2d(hidden, num_classes, 1)
        self.num_classes = num_classes

    def forward(self, p3: torch.Tensor, c2: torch.Tensor | None) -> torch.Tensor:
        """Logits at stride 4 (stride 8 without a C2 lateral); callers resize bilinearly to the input."""
        x = self.context(p3)
        if c2 is not None:
            x = resize_to(x, c2, mode="bilinear") + self.proj_c2(c2)
        return self.classifier(self.refine(x))
