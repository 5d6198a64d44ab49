"""ModelEMA: the batched update is the Polyak average with the warmed-up decay; integer buffers are copied."""

from __future__ import annotations

import math

import torch
from torch import nn

from mtnet.engine.ema import ModelEMA


def test_ema_update_matches_the_formula_and_copies_integer_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    ema = ModelEMA(model, decay=0.9, tau=2.0)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model.train()(torch.randn(2, 3, 8, 8))  # moves BN running stats and num_batches_tracked
    ema.update(model)
    d = 0.9 * (1 - math.exp(-1 / 2.0))
    current = model.state_dict()
    for k, v in ema.module.state_dict().items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(v, d * before[k] + (1 - d) * current[k])
            assert not torch.equal(v, current[k])
        else:
            assert torch.equal(v, current[k])  # num_batches_tracked
    assert ema.updates == 1
