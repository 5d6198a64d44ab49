"""The crop classifier: a small MobileNetV2 (the detector's backbone, ``mtnet.models.mobilenetv2``) with
global average pooling and one linear layer.

Why a separate network and not a head on the detector's neck: it reads its own input, a crop of the
*original* image at its own resolution (``input_size``), so it sees detail the detector's downscaled input
has lost, and it can be retrained or swapped without touching the detector.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.layers import ConvBNAct, make_divisible
from ..models.mobilenetv2 import MobileNetV2

OUTPUT_NAME = "probs"  # deploy output: softmax probabilities [N, num_classes]


class CropClassifier(nn.Module):
    """Crops (normalised float NCHW, ``input_size`` square) -> class logits; ``deploy=True`` -> softmax."""

    def __init__(self, num_classes: int, *, width: float = 0.35, input_size: int = 48, head_channels: int = 256,
                 dropout: float = 0.1):
        super().__init__()
        self.backbone = MobileNetV2(width)
        cin = self.backbone.out_channels[-1]
        self.head = ConvBNAct(cin, make_divisible(head_channels), 1)  # the 1x1 "last conv" of MobileNetV2, narrow
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(make_divisible(head_channels), num_classes)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)
        self.num_classes, self.width, self.input_size = num_classes, width, input_size
        self.deploy = False

    def output_names(self) -> list[str]:
        """Deploy output names (the exporter's contract, as ``MultiTaskNet.output_names``)."""
        return [OUTPUT_NAME]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(self.backbone(x)[-1]).mean((2, 3))
        logits = self.fc(self.dropout(feat))
        return logits.softmax(1) if self.deploy else logits
