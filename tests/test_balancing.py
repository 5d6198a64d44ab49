"""Multi-task balancing: uncertainty weighting learns w ~ 1/L, DWA follows loss ratios, both resume exactly,
and the trainer logs per-task losses and weights every step."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from mtnet.engine.trainer import Trainer
from mtnet.losses.balance import TaskBalancer

from .ddp_worker import config


def test_uncertainty_weighting_learns_inverse_loss_weights():
    """min_s exp(-s) L + s is at s = log L: a task with a 4x larger (noisier) loss gets a 4x smaller weight."""
    bal = TaskBalancer({"det": 1.0, "seg": 1.0}, "uncertainty")
    opt = torch.optim.Adam(bal.parameters(), lr=0.05)
    losses = {"det": torch.tensor(4.0), "seg": torch.tensor(1.0)}
    for _ in range(400):
        total, weights = bal(losses)
        opt.zero_grad()
        total.backward()
        opt.step()
    assert weights["det"] == pytest.approx(0.25, rel=0.02) and weights["seg"] == pytest.approx(1.0, rel=0.02)


def _epoch(bal: TaskBalancer, det: float, seg: float, steps: int = 3) -> dict[str, float]:
    for _ in range(steps):
        _, weights = bal({"det": torch.tensor(det), "seg": torch.tensor(seg)})
    bal.end_epoch()
    return weights


def test_dwa_gives_more_weight_to_the_task_whose_loss_stalls():
    bal = TaskBalancer({"det": 1.0, "seg": 2.0}, "dwa", dwa_temperature=2.0).train()
    assert _epoch(bal, 1.0, 1.0) == {"det": 1.0, "seg": 2.0}  # epochs 1 and 2: lambda = 1
    assert _epoch(bal, 1.0, 0.5) == {"det": 1.0, "seg": 2.0}
    _, weights = bal({"det": torch.tensor(1.0), "seg": torch.tensor(0.5)})
    # r_det = 1 / 1 = 1 (stalled), r_seg = 0.5 / 1 = 0.5 (falling): lambda = 2 softmax(r / 2)
    lam_det = 2 * math.exp(0.5) / (math.exp(0.5) + math.exp(0.25))
    assert weights["det"] == pytest.approx(lam_det)
    assert weights["seg"] == pytest.approx(2.0 * (2 - lam_det))  # fixed weight x lambda, lambdas sum to T
    assert weights["det"] > weights["seg"] / 2.0


def test_dwa_state_resumes_exactly_and_skips_non_finite_losses():
    bal = TaskBalancer({"det": 1.0, "seg": 1.0}, "dwa").train()
    _epoch(bal, 2.0, 1.0)
    _epoch(bal, 1.0, 1.0)
    bal({"det": torch.tensor(float("nan")), "seg": torch.tensor(1.0)})  # a skipped step must not poison the mean
    bal({"det": torch.tensor(0.5), "seg": torch.tensor(1.0)})
    restored = TaskBalancer({"det": 1.0, "seg": 1.0}, "dwa").train()
    restored.load_state_dict(bal.state_dict())
    assert float(restored.epoch_count) == 1.0
    assert torch.equal(restored.dwa_weights(), bal.dwa_weights())
    restored.end_epoch()
    assert restored.history[1].tolist() == [0.5, 1.0]


def test_trainer_logs_task_losses_and_dwa_weights_every_step(tmp_path):
    """3 epochs of 2 steps with DWA: weights are 1 for two epochs, then move; every step has a row."""
    cfg = config(tmp_path / "data", tmp_path, "dwa", "model.tasks=[det,seg,pose]", "loss.balance=dwa",
                 "train.batch_size=4", "train.epochs=4", "train.stop_after_steps=6", "train.optimizer=adamw",
                 "train.base_lr=0.016", "loss.pose=1.0")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Trainer(cfg, progress=False).fit()
    finally:
        torch.set_num_threads(threads)
    with open(tmp_path / "dwa" / "steps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {"det", "seg", "pose"} <= {k[2:] for k in rows[0] if k.startswith("w_")}
    assert all(float(r["cls"]) > 0 and float(r["seg"]) > 0 and float(r["step_s"]) > 0 for r in rows)
    weights = [[float(r[f"w_{t}"]) for t in ("det", "seg", "pose")] for r in rows]
    assert all(w == [1.0, 1.0, 1.0] for w in weights[:4])
    # steps.csv keeps 6 significant digits per weight
    assert weights[4] != [1.0, 1.0, 1.0] and sum(weights[4]) == pytest.approx(3.0, abs=1e-5)
