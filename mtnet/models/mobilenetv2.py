"""MobileNetV2 backbone (Sandler et al. 2018) returning stride 4/8/16/32 features."""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBNAct, make_divisible

# (expansion t, channels c, repeats n, first stride s) from the paper, Table 2.
INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),  # -> stride 4
    (6, 32, 3, 2),  # -> stride 8
    (6, 64, 4, 2),
    (6, 96, 3, 1),  # -> stride 16
    (6, 160, 3, 2),
    (6, 320, 1, 1),  # -> stride 32
]


class InvertedResidual(nn.Module):
    """Expand 1x1 -> depthwise 3x3 -> linear project 1x1, with identity shortcut when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(cin, hidden, 1))
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden), ConvBNAct(hidden, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


class MobileNetV2(nn.Module):
    """Feature extractor; ``forward`` returns [C2 (s4), C3 (s8), C4 (s16), C5 (s32)].

    The final 1x1 conv to 1280 channels of the classifier is dropped: detection necks do not need it
    and it is the single most expensive layer at low width.
    """

    def __init__(self, width: float = 1.0):
        super().__init__()
        stem = make_divisible(32 * width)
        layers: list[nn.Module] = [ConvBNAct(3, stem, 3, 2)]
        cin = stem
        self.out_indices: list[int] = []
        self.out_channels: list[int] = []
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            cout = make_divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
            if c in (24, 32, 96, 320):
                self.out_indices.append(len(layers) - 1)
                self.out_channels.append(cout)
        self.features = nn.Sequential(*layers)
        self.width = width
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.out_indices:
                outs.append(x)
        return outs


def _init_weights(module: nn.Module) -> None:
    """He init for convs, BN to identity: the torchvision MobileNetV2 initialisation for training from scratch."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
