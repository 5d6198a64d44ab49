"""FPN-lite (optionally PAN-lite) neck: 1x1 laterals, nearest resize + add, depthwise-separable 3x3."""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBNAct, DWSeparable, resize_to


class FPNLite(nn.Module):
    """Fuses backbone C3..C5 into P3..P5 of a common width; also returns a stride-4 lateral for segmentation."""

    def __init__(self, in_channels: list[int], channels: int = 64, pan: bool = False, with_c2: bool = True):
        super().__init__()
        c2, c3, c4, c5 = in_channels
        self.lateral = nn.ModuleList([ConvBNAct(c, channels, 1) for c in (c3, c4, c5)])
        self.smooth = nn.ModuleList([DWSeparable(channels, channels) for _ in range(2)])  # after P4, P3 merges
        self.pan = pan
        if pan:
            self.down = nn.ModuleList([DWSeparable(channels, channels, stride=2) for _ in range(2)])
            self.pan_smooth = nn.ModuleList([DWSeparable(channels, channels) for _ in range(2)])
        self.c2_lateral = ConvBNAct(c2, channels, 1) if with_c2 else None
        self.channels = channels

    def forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        c2, c3, c4, c5 = feats
        l3, l4, l5 = (lat(f) for lat, f in zip(self.lateral, (c3, c4, c5), strict=True))
        p5 = l5
        p4 = self.smooth[0](l4 + resize_to(p5, l4))
        p3 = self.smooth[1](l3 + resize_to(p4, l3))
        if self.pan:
            p4 = self.pan_smooth[0](p4 + self.down[0](p3))
            p5 = self.pan_smooth[1](p5 + self.down[1](p4))
        lateral_c2 = self.c2_lateral(c2) if self.c2_lateral is not None else None
        return [p3, p4, p5], lateral_c2
