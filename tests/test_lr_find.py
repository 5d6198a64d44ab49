"""LR range test: the suggestion rule on a known curve, and a real sweep through the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mtnet.cli import main
from mtnet.engine.lr_finder import geometric_lrs, smooth, suggest_lr

from .ddp_worker import OVERRIDES


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine two spinning OpenMP threads are several times slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_suggestion_is_a_tenth_of_the_loss_minimum_on_a_known_curve():
    lrs = geometric_lrs(1e-6, 1.0, 61)
    losses = [(math.log10(lr) + 2) ** 2 + 1 for lr in lrs]  # minimum at LR 1e-2
    suggested, at_min, steepest = suggest_lr(lrs, losses)
    assert at_min == lrs[40] and math.isclose(at_min, 1e-2)
    assert math.isclose(suggested, 1e-3)
    assert steepest == lrs[0]  # the parabola falls fastest at its left end


def test_lrs_grow_geometrically_and_smoothing_is_bias_corrected():
    lrs = geometric_lrs(1e-4, 1.0, 5)
    assert [round(math.log10(x), 6) for x in lrs] == [-4, -3, -2, -1, 0]
    assert all(math.isclose(v, 2.0) for v in smooth([2.0, 2.0, 2.0]))  # no pull towards 0 at the start


def test_lr_find_command_sweeps_until_divergence_and_writes_plot(tmp_path, capsys, one_thread):
    over = [o for o in OVERRIDES if not o.startswith(("train.optimizer", "train.base_lr"))]  # AdamW
    code = main(["lr-find", "quickstart", *over, f"data.root={tmp_path / 'data'}", "train.batch_size=4",
                 f"output_dir={tmp_path}", "name=lrf", "--min-lr", "1e-5", "--max-lr", "1e4", "--steps", "24",
                 "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "suggested max LR" in out and "train.base_lr=" in out
    result = json.loads((tmp_path / "lrf" / "lr_find.json").read_text())
    assert (tmp_path / "lrf" / "lr_find.png").stat().st_size > 10_000
    assert result["diverged"], "AdamW at LR 100 must blow the loss up"
    assert len(result["lrs"]) < 24  # stopped early on divergence
    assert 1e-5 <= result["suggested_lr"] < result["min_loss_lr"] < 1e4
    assert math.isclose(result["suggested_base_lr"], result["suggested_lr"] * 256 / 4)
