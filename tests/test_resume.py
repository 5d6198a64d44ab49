"""Interrupt-and-resume must reproduce an uninterrupted run exactly (weights, optimizer, EMA, data order)."""

import pytest
import torch

from mtnet.engine.checkpoint import load_checkpoint
from mtnet.engine.trainer import Trainer

from .conftest import tiny_config


def _weights(path):
    return load_checkpoint(path)["model"]


def test_resume_mid_epoch_matches_uninterrupted_run(synthetic_root, tmp_path):
    extra = ["train.epochs=2", "train.eval_interval=100", "train.batch_size=6", "train.accumulate=2"]
    full = Trainer(tiny_config(synthetic_root, tmp_path / "a", "name=full", *extra), progress=False)
    full.fit()
    # 24 images / (6 x 2) = 2 steps per epoch: stop after 3 steps = in the middle of epoch 2
    first = Trainer(tiny_config(synthetic_root, tmp_path / "b", "name=cut", "train.stop_after_steps=3", *extra),
                    progress=False)
    assert first.fit().stopped_early
    state = load_checkpoint(tmp_path / "b/cut/last.pt")
    assert (state["epoch"], state["epoch_step"], state["step"]) == (1, 1, 3)
    resumed = Trainer(tiny_config(synthetic_root, tmp_path / "b", "name=cut", *extra), resume=True, progress=False)
    assert resumed.step == 3
    resumed.fit()
    a, b = _weights(tmp_path / "a/full/last.pt"), _weights(tmp_path / "b/cut/last.pt")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    ema_a = load_checkpoint(tmp_path / "a/full/last.pt")["ema"]["module"]
    ema_b = load_checkpoint(tmp_path / "b/cut/last.pt")["ema"]["module"]
    for k in ema_a:
        torch.testing.assert_close(ema_a[k], ema_b[k], rtol=0, atol=0, msg=k)
    # and training actually changed the weights (the comparison above is not vacuous)
    init = Trainer(tiny_config(synthetic_root, tmp_path / "c", "name=init", *extra), progress=False).model.state_dict()
    assert any(not torch.equal(init[k], a[k]) for k in a if a[k].dtype.is_floating_point)


def test_checkpoint_writes_are_atomic(tmp_path):
    from mtnet.engine.checkpoint import save_checkpoint

    target = tmp_path / "x.pt"
    save_checkpoint({"a": torch.ones(2)}, target)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint({"a": Boom()}, target)
    assert torch.equal(load_checkpoint(target)["a"], torch.ones(2))  # old file intact
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]  # no temp files left behind


def test_time_budget_shortens_the_run_and_refits_the_schedule(synthetic_root, tmp_path):
    """A budget too small for 4 epochs ends the run after the first epoch that shows it (epoch 2), with the
    cosine re-fitted so the LR still reaches its floor on the last step, and resume keeps that length."""
    extra = ["train.epochs=4", "train.eval_interval=100", "train.batch_size=12", "train.time_budget_min=0.0001",
             "train.warmup_epochs=0.5"]
    full = Trainer(tiny_config(synthetic_root, tmp_path / "a", "name=budget", *extra), progress=False)
    full.fit()
    assert (full.epoch, full.cfg.train.epochs, full.max_epochs) == (2, 2, 4)
    tc = full.cfg.train
    assert full.scheduler.get_last_lr()[0] == pytest.approx(full.lr * tc.min_lr_ratio, rel=1e-6)
    state = load_checkpoint(tmp_path / "a/budget/last.pt")
    assert state["epochs"] == 2 and state["train_elapsed_s"] > 0
    # interrupted in epoch 2 and resumed: same length, same weights as the uninterrupted budgeted run
    cut = Trainer(tiny_config(synthetic_root, tmp_path / "b", "name=budget", "train.stop_after_steps=3", *extra),
                  progress=False)
    assert cut.fit().stopped_early
    resumed = Trainer(tiny_config(synthetic_root, tmp_path / "b", "name=budget", *extra), resume=True, progress=False)
    assert resumed.cfg.train.epochs == 2
    resumed.fit()
    a, b = _weights(tmp_path / "a/budget/last.pt"), _weights(tmp_path / "b/budget/last.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
