"""Prototype-mask head (YOLACT / YOLO-seg): P prototype maps at stride 4 shared by all objects, and P mask
coefficients per detection anchor; an object's mask is sigmoid(coefficients . prototypes) cropped to its box.

The prototypes are built like the segmentation head's features (stride-8 pyramid level, bilinear resize to the
stride-4 lateral, add, depthwise-separable 3x3): no transposed or deformable convolutions, so the graph stays
inside the TFLite GPU delegate's op set. The coefficients sit on the same levels (and anchors) as detection.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import DWSeparable, at_level, nhwc_rows, per_level, resize_to


class PrototypeHead(nn.Module):
    """``num_protos`` linear prototype maps at stride 4 (stride 8 without a C2 lateral)."""

    def __init__(self, channels: int, hidden: int, num_protos: int):
        super().__init__()
        self.context = DWSeparable(channels, hidden)
        self.proj_c2 = nn.Identity() if channels == hidden else nn.Conv2d(channels, hidden, 1)
        self.refine = DWSeparable(hidden, hidden)
        self.pred = nn.Conv2d(hidden, num_protos, 1)

    def forward(self, p3: torch.Tensor, c2: torch.Tensor | None) -> torch.Tensor:
        x = self.context(p3)
        if c2 is not None:
            x = resize_to(x, c2, mode="bilinear") + self.proj_c2(c2)
        return self.pred(self.refine(x))


class CoefficientHead(nn.Module):
    """P mask coefficients per anchor of the detection levels (one tower per level unless ``share_levels``)."""

    def __init__(self, channels: int, hidden: int, num_protos: int, num_levels: int = 1, share_levels: bool = True):
        super().__init__()
        copies = 1 if share_levels else num_levels
        self.tower = per_level(lambda: DWSeparable(channels, hidden), copies)
        self.pred = per_level(lambda: nn.Conv2d(hidden, num_protos, 1), copies)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """[B, A, P] over all levels, rows in the detection head's anchor order."""
        return torch.cat([nhwc_rows(at_level(self.pred, i)(at_level(self.tower, i)(f))) for i, f in enumerate(feats)], 1)


class InstanceMaskHead(nn.Module):
    def __init__(self, channels: int, proto_hidden: int, coef_hidden: int, num_protos: int, num_levels: int = 1,
                 share_levels: bool = True):
        super().__init__()
        self.protos = PrototypeHead(channels, proto_hidden, num_protos)
        self.coefs = CoefficientHead(channels, coef_hidden, num_protos, num_levels, share_levels)
        self.num_protos = num_protos

    def forward(self, p3: torch.Tensor, c2: torch.Tensor | None, levels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prototypes [B, P, H/4, W/4] and coefficients [B, A, P]."""
        return self.protos(p3, c2), self.coefs(levels)
