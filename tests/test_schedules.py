"""The large-batch recipe: warmup + cosine / one-cycle shapes, linear LR scaling with the effective batch, no
weight decay on BN/bias, SWA's constant-LR phase with BN re-estimation, and GPU precision choices."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from mtnet.engine.checkpoint import load_checkpoint
from mtnet.engine.precision import amp_dtype
from mtnet.engine.schedules import build_schedule, warmup_length, with_swa
from mtnet.engine.trainer import Trainer, TrainingError
from mtnet.errors import UserError

from .ddp_worker import config


@pytest.mark.parametrize("name", ["cosine", "onecycle"])
def test_warmup_starts_small_peaks_once_and_decays_to_the_floor(name):
    f = build_schedule(name, total_steps=100, warmup_steps=20, start_factor=0.01, min_ratio=0.05)
    values = [f(s) for s in range(101)]
    assert values[0] == pytest.approx(0.01)
    assert values[20] == pytest.approx(1.0) and max(values) == pytest.approx(1.0)
    assert all(a < b for a, b in zip(values[:20], values[1:21], strict=True))  # rising through the warmup
    assert all(a >= b for a, b in zip(values[20:], values[21:], strict=False))  # then never rising again
    assert values[100] == pytest.approx(0.05)


def test_warmup_in_steps_overrides_epochs_and_swa_holds_a_constant_lr():
    assert warmup_length(steps_per_epoch=10, warmup_epochs=2.5, warmup_steps=0) == 25
    assert warmup_length(steps_per_epoch=10, warmup_epochs=2.5, warmup_steps=7) == 7
    f = with_swa(build_schedule("cosine", 80, 10, 0.01, 0.02), swa_start_step=80, swa_ratio=0.05)
    assert f(79) == pytest.approx(0.02, abs=1e-3) and f(80) == f(99) == 0.05


def _trainer(tmp_path, *extra):
    return Trainer(config(tmp_path / "data", tmp_path, "t", *extra), progress=False)


def test_peak_lr_follows_the_linear_scaling_rule_and_bn_bias_get_no_decay(tmp_path):
    t = _trainer(tmp_path, "train.batch_size=4", "train.accumulate=4", "train.base_lr=0.032",
                 "train.optimizer=adamw", "train.weight_decay=0.05")
    assert t.effective_batch == 16 and t.lr == pytest.approx(0.032 * 16 / 256)
    assert t.steps_per_epoch == 1  # 8 images, 16 per step
    decay, no_decay = t.optimizer.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    no_decay_ids = {id(p) for p in no_decay["params"]}
    for m in t.model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert id(m.weight) in no_decay_ids and id(m.bias) in no_decay_ids
        elif isinstance(m, nn.Conv2d):
            assert id(m.weight) not in no_decay_ids
            assert m.bias is None or id(m.bias) in no_decay_ids


def test_non_finite_losses_are_skipped_counted_and_stop_a_diverged_run(tmp_path):
    t = _trainer(tmp_path, "train.batch_size=2", "train.max_bad_steps=3", "train.eval_interval=100")
    real, calls = t.criterion.forward, []

    def nan_on_call(*which):
        def forward(out, batch):
            loss, logs = real(out, batch)
            calls.append(1)
            return (loss * float("nan") if len(calls) in which or not which else loss), logs
        return forward

    t.criterion.forward = nan_on_call(2)  # one bad batch of four: skipped, counted, training goes on
    t.fit()
    assert t.nonfinite_batches == 1 and t.step == 3
    t = _trainer(tmp_path, "name=u", "train.batch_size=2", "train.max_bad_steps=3", "train.eval_interval=100")
    t.criterion.forward = nan_on_call()  # every loss non-finite: the run stops after max_bad_steps batches
    with pytest.raises(TrainingError, match="non-finite for 3 consecutive batches"):
        t.fit()
    assert t.nonfinite_batches == 3 and t.step == 0


def test_swa_averages_the_last_epochs_at_constant_lr_and_reestimates_bn(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t = _trainer(tmp_path, "train.batch_size=4", "train.epochs=3", "train.swa_epochs=2",
                     "train.swa_lr_ratio=0.1", "train.eval_interval=100")
        t.fit()
    finally:
        torch.set_num_threads(threads)
    with open(tmp_path / "t" / "steps.csv", newline="") as f:
        lrs = [float(r["lr"]) for r in csv.DictReader(f)]
    assert len(lrs) == 6 and lrs[2:] == [pytest.approx(0.1 * t.lr)] * 4  # epochs 2-3: constant SWA LR
    assert t.swa.num_averaged == 2
    swa = load_checkpoint(tmp_path / "t" / "swa.pt")["model"]
    last = load_checkpoint(tmp_path / "t" / "last.pt")["model"]
    name = "backbone.features.0.1"  # first BN
    assert not torch.equal(swa[f"{name}.weight"], last[f"{name}.weight"])  # an average, not the last weights
    # BN statistics were recomputed for the averaged weights in one pass over the 8 training images
    assert int(swa[f"{name}.num_batches_tracked"]) == 2
    assert not torch.allclose(swa[f"{name}.running_var"], last[f"{name}.running_var"])
    assert "swa_fitness" in t.last_metrics


def test_cpu_trains_in_fp32_and_gpu_amp_modes_resolve():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert all(amp_dtype(mode, cpu) is None for mode in ("auto", "bf16", "fp16", "off"))
    assert amp_dtype("fp16", cuda) == torch.float16 and amp_dtype("off", cuda) is None
    with pytest.raises(UserError, match="train.amp"):
        amp_dtype("fp8", cpu)
