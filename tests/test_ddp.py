"""DDP equivalence: 2 gloo processes (forked with torchrun's environment, see ``ddp_worker.py``) with
per-process batch B take the same optimizer step as one process with batch 2B; ``--devices 2`` runs torchrun.

How BatchNorm is handled (it is the one layer where per-process batches differ from one big batch):
* SyncBN on (the default with > 1 process): BN statistics are reduced over both processes, so the DDP step
  must equal one step with the 2B batch — weights *and* BN running statistics.
* SyncBN off: each process normalizes its own B images. That is exactly what gradient accumulation does
  with micro-batches of B, so the reference is one process with batch B and ``accumulate=2``. With B = 1
  the two processes see the same images as the two micro-batches (the sampler deals the permutation out
  round-robin), so weights must match again; BN running statistics are not compared (rank 0 keeps its own).
The loss is the segmentation cross-entropy, a mean over every pixel of every sample (augmentation off, no
letterbox padding, so no ignored pixels): averaging per-process gradients equals the 2B-batch gradient.
The detection loss normalizes by the per-process sum of target scores, so it is left out here.
Steps run in float64 (see ``ddp_worker.py``) so that rounding noise cannot hide or fake a difference.
"""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

import pytest
import torch

from mtnet.cli import main
from mtnet.data.synthetic import generate_dataset
from mtnet.engine.checkpoint import load_checkpoint
from mtnet.engine.sampler import EpochSampler

from .ddp_worker import OVERRIDES, Float64Trainer, config, run_ddp


@contextlib.contextmanager
def float64():
    """float64 and one intra-op thread (as each torchrun worker has; faster on a shared 2-core machine)."""
    old, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_default_dtype(old)
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp_data")
    generate_dataset(root, num_train=8, num_val=2, size=64, seed=0, progress=False)
    return root


@pytest.fixture(scope="module")
def ddp_runs(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp_runs")
    run_ddp(data_root, out)
    return out


@pytest.fixture(scope="module")
def initial(data_root, tmp_path_factory) -> dict:
    """The seeded initial weights every run starts from."""
    with float64():
        model = Float64Trainer(config(data_root, tmp_path_factory.mktemp("init"), "init"), progress=False).model
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def reference(data_root, tmp_path_factory) -> dict[str, dict]:
    """One process, batch 2B = 4: the weights after step 1 and after step 2 of one uninterrupted run."""
    out = tmp_path_factory.mktemp("ref")
    with float64():
        trainer = Float64Trainer(config(data_root, out, "ref", "train.batch_size=4", "train.stop_after_steps=1"),
                                 progress=False)
        trainer.fit()
        step1 = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        trainer.cfg.train.stop_after_steps = 2  # carry on in memory, no checkpoint round trip
        trainer.fit()
    return {"step1": step1, "step2": trainer.model.state_dict()}


def _float_keys(state: dict, buffers: bool) -> list[str]:
    return [k for k, v in state.items() if v.dtype.is_floating_point and (buffers or "running" not in k)]


def _assert_same_update(ddp: dict, ref: dict, init: dict, keys: list[str]) -> None:
    """The weight updates agree to 1e-7 of their size, and are large enough for that to mean something."""
    worst = max(float((ddp[k] - ref[k]).abs().max()) for k in keys)
    size = max(float((ref[k] - init[k]).abs().max()) for k in keys)
    assert size > 1e-2, "the step barely moved the weights: the comparison would prove nothing"
    assert worst <= 1e-7 * size, f"max difference {worst:.3g} vs update size {size:.3g}"


def test_ddp_step_with_syncbn_equals_one_process_with_twice_the_batch(initial, reference, ddp_runs):
    # fixtures in this order: the processes fork after this one has imported what training needs
    ddp = load_checkpoint(ddp_runs / "ddp_sync_step1.pt")
    assert ddp["world_size"] == 2
    _assert_same_update(ddp["model"], reference["step1"], initial, _float_keys(initial, buffers=True))


def test_ddp_step_without_syncbn_equals_accumulation_over_per_process_batches(data_root, ddp_runs, initial,
                                                                               tmp_path):
    init = initial
    with float64():
        Float64Trainer(config(data_root, tmp_path, "acc", "train.batch_size=1", "train.accumulate=2",
                              "train.stop_after_steps=1"), progress=False).fit()
    ref = load_checkpoint(tmp_path / "acc" / "last.pt")
    local = load_checkpoint(ddp_runs / "ddp_local" / "last.pt")["model"]
    _assert_same_update(local, ref["model"], init, _float_keys(init, buffers=False))
    # per-process BN is a different step from global-batch BN: the check above can tell them apart
    synced = load_checkpoint(ddp_runs / "ddp_sync_step1.pt")["model"]
    assert max(float((local[k] - synced[k]).abs().max()) for k in _float_keys(init, buffers=False)) > 1e-3


def test_ddp_resume_mid_epoch_continues_the_same_run(ddp_runs, initial, reference):
    """1 DDP step, stop, resume (from last.pt) under DDP for step 2 == 2 single-process steps with 2B."""
    resumed = load_checkpoint(ddp_runs / "ddp_sync" / "last.pt")
    assert (resumed["step"], resumed["epoch_step"]) == (2, 2)
    _assert_same_update(resumed["model"], reference["step2"], initial, _float_keys(initial, buffers=True))


def test_devices_flag_launches_torchrun_and_only_rank0_writes(data_root, tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    code = main(["train", "quickstart", *OVERRIDES, f"data.root={data_root}", f"output_dir={tmp_path}", "name=cli",
                 "train.batch_size=2", "train.stop_after_steps=1", "--devices", "2", "--no-progress"])
    out, err = capfd.readouterr()  # the torchrun processes write to this process's stdout / stderr
    assert code == 0, out[-2000:] + err[-4000:]
    assert out.count("stopped after step 1") == 1  # rank 0 alone reports
    assert load_checkpoint(tmp_path / "cli" / "last.pt")["world_size"] == 2
    with open(tmp_path / "cli" / "steps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["1"]  # one writer, one row per optimizer step


@pytest.mark.parametrize("size,world", [(10, 1), (10, 2), (11, 2), (7, 3)])
def test_sampler_shards_cover_the_epoch_and_resume_skips_exactly(size, world):
    shards = [list(EpochSampler(size, seed=3, epoch=5, rank=r, world_size=world)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1, "every process must run the same number of steps"
    assert set().union(*shards) == set(range(size))
    if size % world == 0:
        assert sum(len(s) for s in shards) == size  # no padding: each index once
    for r in range(world):
        assert list(EpochSampler(size, 3, 5, skip=2, rank=r, world_size=world)) == shards[r][2:]


def test_one_process_sampler_is_the_plain_seeded_permutation():
    """Single-process runs keep the pre-DDP order (same seed -> same weights as before)."""
    g = torch.Generator().manual_seed(7 * 100003 + 2)
    assert list(EpochSampler(20, seed=7, epoch=2, skip=3)) == torch.randperm(20, generator=g).tolist()[3:]
