"""Stochastic Weight Averaging over the last epochs (Izmailov et al. 2018), on ``torch.optim.swa_utils``.

The trainer holds the LR constant at ``swa_lr_ratio`` x peak during the SWA epochs (see
``schedules.with_swa``), averages the weights at the end of each of those epochs, and finally re-estimates
the BatchNorm statistics of the averaged weights with one pass over the training data: averaged weights
do not match any running statistics seen during training, so without this step SWA models score badly.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn


class SWA:
    def __init__(self, model: nn.Module):
        self.averaged = AveragedModel(model)

    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)

    @property
    def module(self) -> nn.Module:
        return self.averaged.module

    @property
    def num_averaged(self) -> int:
        return int(self.averaged.n_averaged)

    def reestimate_bn(self, images: Iterable[torch.Tensor]) -> None:
        """Recompute BN running statistics as a cumulative average over ``images`` (normalized batches)."""
        update_bn(images, self.averaged)
        self.averaged.eval()

    def state_dict(self) -> dict:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.averaged.load_state_dict(state)
