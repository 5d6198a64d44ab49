"""The wrapper for runtimes that hand the model plain pixels (CoreML's ImageType, MediaPipe Tasks): [0, 1] RGB
NCHW in, ImageNet mean/std as the graph's first op, then the wrapped model."""

from __future__ import annotations

import torch
from torch import nn

from mtnet.data.preprocess import mean_std


class InGraphNormalized(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        mean, std = mean_std()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor):
        return self.model(self.normalize(x))

    @property
    def meta(self):
        return self.model.meta

    @property
    def strides(self):
        return self.model.strides
