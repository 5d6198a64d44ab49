"""Training loop: from scratch, linear LR scaling, long warmup + cosine/one-cycle, EMA, SWA, exact resume.

Plain functions around one ``Trainer`` object (torchvision's references style): build everything from
the config, ``fit()`` runs epochs, evaluates the EMA weights, writes ``runs/<name>/``:
``last.pt`` (resumable), ``best.pt`` (EMA or SWA weights of the best evaluation), ``metrics.csv``
(per epoch), ``steps.csv`` (per step: LR, per-task losses and weights), ``config.yaml``,
``training_curves.png``.

Multi-process: under ``torchrun`` every process runs this same loop on its shard of each epoch's seeded
permutation; DDP averages gradients, so an optimizer step sees ``batch_size * accumulate * world`` images
(the effective batch the LR is scaled by). BatchNorm is synchronized (``train.sync_bn``) unless disabled:
without it each process normalizes with its own ``batch_size`` images — the same caveat as gradient
accumulation, where BN sees micro-batches of ``batch_size``, never the effective batch. Only rank 0 logs,
evaluates and writes files. With one process the loop is unchanged: same seed, same weights.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..checkpoint_io import stored_config
from ..config import Config, ConfigError, save_config
from ..data.build import build_sources, build_train_dataset
from ..data.dataset import collate
from ..data.meta import DatasetMeta
from ..data.preprocess import normalize
from ..errors import UserError
from ..eval.evaluator import evaluate
from ..infer.predictor import Predictor, TorchBackend
from ..losses.criterion import MultiTaskCriterion
from ..models import build_model
from ..tasks import fitness_metrics
from . import distributed
from .allocator import retain_freed_memory
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .ema import ModelEMA
from .logging import MetricsCSV, StepLog, plot_training_curves
from .precision import amp_dtype, autocast, grad_scaler
from .sampler import EpochSampler
from .schedules import build_schedule, scaled_lr, warmup_length, with_swa
from .swa import SWA
from .syncbn import convert_sync_batchnorm


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (e.g. the loss stayed non-finite); the message says what to change."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_optimizer(model: nn.Module, criterion: nn.Module, cfg, lr: float) -> torch.optim.Optimizer:
    """Weight decay on conv/linear weights only: BN affine parameters and biases are excluded (they are
    scale-free or shifts, and decaying them hurts small from-scratch models)."""
    decay, no_decay = [], []
    for module in list(model.modules()) + list(criterion.modules()):
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if isinstance(module, nn.modules.batchnorm._BatchNorm) or name == "bias" or p.ndim <= 1:
                no_decay.append(p)
            else:
                decay.append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # fused kernels (CPU and CUDA): PyTorch's default per-tensor loop on CPU took 13-20 ms of a ~470 ms
    # quickstart step for AdamW, the fused step ~3.5 ms (benchmarks/optimizer_step.py)
    fused = all(p.device.type in ("cpu", "cuda") for p in decay + no_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=True, fused=fused)
    return torch.optim.AdamW(groups, lr=lr, betas=(cfg.momentum, 0.999), fused=fused)


def fitness(metrics: dict) -> float:
    """Mean of the task metrics; COCO's -1 ("undefined": no ground truth of that kind) is left out."""
    vals = [metrics[k] for k in fitness_metrics() if k in metrics and metrics[k] >= 0]
    return float(sum(vals) / len(vals)) if vals else 0.0


@dataclass
class TrainResult:
    run_dir: Path
    best_fitness: float
    metrics: dict
    stopped_early: bool


class Trainer:
    def __init__(self, cfg: Config, *, resume: str | Path | bool = False, progress: bool = True):
        self.progress = progress
        self.run_dir = Path(cfg.output_dir) / cfg.name
        resume_state = None
        if resume:
            path = self.run_dir / "last.pt" if resume is True else Path(resume)
            resume_state = load_checkpoint(path)
            stored = stored_config(resume_state, path)
            # a resumed run keeps its recipe; only the stopping point may change
            stored.train.epochs = cfg.train.epochs
            stored.train.stop_after_steps = cfg.train.stop_after_steps
            cfg = stored
            self.run_dir = Path(cfg.output_dir) / cfg.name
        self.cfg = cfg
        tc = cfg.train
        self.dist, self.device = distributed.setup(resolve_device(tc.device))
        if self.device.type == "cpu" and tc.retain_freed_memory:
            retain_freed_memory()
        self.progress = progress and self.dist.is_main
        if resume_state is not None and int(resume_state.get("world_size", 1)) != self.dist.world_size:
            raise CheckpointError(f"cannot resume: the checkpoint was written by {resume_state.get('world_size', 1)} "
                                  f"process(es), this run has {self.dist.world_size}; use the same number")
        torch.manual_seed(tc.seed)
        if self.dist.is_main:  # rank 0 generates the synthetic set (if configured), the others then open it
            self.train_src, self.val_src = build_sources(cfg, self.progress)
        distributed.barrier()
        if not self.dist.is_main:
            self.train_src, self.val_src = build_sources(cfg, False)
        self.meta: DatasetMeta = self.train_src.meta
        if resume_state is not None:
            self.meta = DatasetMeta.from_dict(resume_state["meta"])
        self.model = build_model(cfg.model, self.meta).to(self.device)
        if self.dist.enabled and tc.sync_bn:
            self.model = convert_sync_batchnorm(self.model, self.device)
        self.channels_last = tc.channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.criterion = MultiTaskCriterion(self.meta, self.model.tasks, cfg.loss).to(self.device)
        self.forward_model: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_model = DistributedDataParallel(self.model, device_ids=ids, gradient_as_bucket_view=True)
        if tc.compile:
            self.forward_model = torch.compile(self.forward_model)
        self.amp = amp_dtype(tc.amp, self.device)
        self.scaler = grad_scaler(self.device, self.amp)
        self.dataset = build_train_dataset(cfg, self.train_src, self.meta)
        self.process_batch = tc.batch_size * tc.accumulate  # images per optimizer step on this process
        self.effective_batch = self.process_batch * self.dist.world_size
        shard = EpochSampler.shard_size(len(self.dataset), self.dist.world_size)
        self.steps_per_epoch = max(1, math.ceil(shard / self.process_batch))
        self.epoch_samples = shard  # this process's samples per epoch (data.max_bad_fraction is a share of it)
        if tc.time_budget_min > 0 and tc.swa_epochs:
            raise ConfigError("train.time_budget_min cannot be combined with train.swa_epochs (the SWA phase is "
                              "placed by the epoch count, which the budget changes)")
        self.max_epochs = tc.epochs  # the time budget may lower tc.epochs, never raise it above this
        self.train_elapsed_s = 0.0  # wall time spent in fit() epochs so far (persisted for the budget)
        self.lr = scaled_lr(tc.base_lr, self.effective_batch)
        self.optimizer = build_optimizer(self.model, self.criterion, tc, self.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._schedule(tc.epochs))
        self.ema = ModelEMA(self.model, tc.ema_decay, tc.ema_tau) if tc.ema_decay > 0 else None
        self.swa = SWA(self.model) if tc.swa_epochs else None
        self.epoch, self.epoch_step, self.step = 0, 0, 0
        self.best_fitness = -1.0
        self.last_metrics: dict = {}
        self.nonfinite_batches = 0  # batches the non-finite-loss guard skipped (this process's fit() calls)
        self.skipped_samples: dict[str, None] = {}  # unreadable samples seen (data.on_error: skip), logged once
        if resume_state is not None:
            self._restore(resume_state)

    def _schedule(self, epochs: int):
        """LR multiplier per optimizer step for a run of ``epochs`` epochs (warmup, then cosine/one-cycle)."""
        tc = self.cfg.train
        self.total_steps = self.steps_per_epoch * epochs
        warmup = warmup_length(self.steps_per_epoch, tc.warmup_epochs, tc.warmup_steps)
        swa_start = self.total_steps - tc.swa_epochs * self.steps_per_epoch
        schedule = build_schedule(tc.schedule, swa_start, warmup, tc.warmup_start_factor, tc.min_lr_ratio)
        return with_swa(schedule, swa_start, tc.swa_lr_ratio) if tc.swa_epochs else schedule

    def _set_epochs(self, epochs: int) -> None:
        """Change the run's length mid-way: the schedule is re-fitted and applied from the current step on."""
        self.cfg.train.epochs = epochs
        schedule = self._schedule(epochs)
        self.scheduler.lr_lambdas = [schedule] * len(self.optimizer.param_groups)
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * schedule(self.scheduler.last_epoch)
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def _fit_time_budget(self) -> None:
        """After an epoch: the number of epochs the remaining ``time_budget_min`` affords at the mean epoch
        time so far (evaluation and checkpointing included), between one more epoch and ``max_epochs``."""
        budget_s = self.cfg.train.time_budget_min * 60.0
        if budget_s <= 0 or self.epoch >= self.cfg.train.epochs:
            return
        per_epoch = self.train_elapsed_s / max(1, self.epoch)
        affordable = self.epoch + int((budget_s - self.train_elapsed_s) // per_epoch)
        epochs = max(self.epoch + 1, min(self.max_epochs, affordable))
        if epochs != self.cfg.train.epochs:
            if self.dist.is_main:
                tqdm.write(f"time budget {self.cfg.train.time_budget_min:g} min: {per_epoch:.1f} s/epoch -> "
                           f"{epochs} epochs (was {self.cfg.train.epochs})")
            self._set_epochs(epochs)

    # -- state ------------------------------------------------------------------------------------
    def _state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "criterion": self.criterion.state_dict(),
            "swa": self.swa.state_dict() if self.swa else None,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "world_size": self.dist.world_size,
            "epoch": self.epoch, "epoch_step": self.epoch_step, "step": self.step,
            "best_fitness": self.best_fitness,
            "epochs": self.cfg.train.epochs, "train_elapsed_s": self.train_elapsed_s,
            "torch_rng": torch.get_rng_state(),
            "config": self.cfg.to_dict(),
            "meta": self.meta.to_dict(),
            "metrics": self.last_metrics,
        }

    def _restore(self, state: dict) -> None:
        try:
            self.model.load_state_dict(state["model"])
            if self.ema and state.get("ema"):
                self.ema.load_state_dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.criterion.load_state_dict(state["criterion"])
            if self.swa and state.get("swa"):
                self.swa.load_state_dict(state["swa"])
            if self.scaler and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"cannot resume: checkpoint does not match the model ({str(e).splitlines()[0]})") from None
        self.epoch, self.epoch_step, self.step = int(state["epoch"]), int(state["epoch_step"]), int(state["step"])
        self.best_fitness = float(state["best_fitness"])
        self.last_metrics = dict(state.get("metrics") or {})
        self.train_elapsed_s = float(state.get("train_elapsed_s", 0.0))
        if self.cfg.train.time_budget_min > 0 and int(state.get("epochs", self.max_epochs)) < self.max_epochs:
            self._set_epochs(int(state["epochs"]))  # the length the budget had chosen before the interruption
        torch.set_rng_state(state["torch_rng"])

    def save_last(self) -> None:
        if self.dist.is_main:
            save_checkpoint(self._state(), self.run_dir / "last.pt")

    def save_best(self, metrics: dict, module: nn.Module | None = None, name: str = "best.pt") -> None:
        module = module if module is not None else self.eval_model()
        save_checkpoint({"model": module.state_dict(), "config": self.cfg.to_dict(), "meta": self.meta.to_dict(),
                         "metrics": metrics, "epoch": self.epoch, "step": self.step}, self.run_dir / name)

    # -- loop -------------------------------------------------------------------------------------
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema else self.model

    def validate(self, module: nn.Module | None = None) -> dict:
        ec = self.cfg.eval
        module = module if module is not None else self.eval_model()
        predictor = Predictor(TorchBackend(module, self.cfg.data.imgsz, self.device),
                              conf=ec.conf, iou=ec.iou, max_det=ec.max_det, multi_label=True)
        metrics = evaluate(predictor, self.val_src, progress=self.progress)
        self.model.train()
        return metrics

    def fit(self) -> TrainResult:
        tc = self.cfg.train
        main = self.dist.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.run_dir / "config.yaml")
            csv_log = MetricsCSV(self.run_dir / "metrics.csv", resume_epoch=self.epoch if self.step else None)
            self.step_log = StepLog(self.run_dir / "steps.csv", resume_step=self.step if self.step else None)
        bad_steps = 0
        stopped = False
        self.model.train()
        budget_clock = time.perf_counter()
        while self.epoch < tc.epochs:
            epoch_start = self._step_clock = time.perf_counter()
            loader = self.loader(skip=self.epoch_step * self.process_batch)
            num_batches = len(loader)
            sums: dict[str, float] = {}
            count = skipped = 0
            bar = tqdm(total=self.steps_per_epoch, initial=self.epoch_step, disable=not self.progress,
                       desc=f"epoch {self.epoch + 1}/{tc.epochs}", leave=False)
            micro = 0
            step_sums: dict[str, float] = {}
            try:
                for i, batch in enumerate(loader):
                    skipped = self._note_skips(batch, skipped)
                    # DDP all-reduces gradients only on the last micro-batch of an optimizer step
                    sync = micro + 1 == tc.accumulate or i + 1 == num_batches
                    with self._maybe_no_sync(not sync):
                        with autocast(self.device, self.amp):
                            out = self.forward_model(self.images(batch))
                        if self.amp is not None:  # assignment and losses in fp32: IoUs and exps in bf16 are too coarse
                            out = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v
                                   for k, v in out.items()}
                        loss, logs = self.criterion(out, batch)
                        if not distributed.all_true(bool(torch.isfinite(loss)), self.device):
                            bad_steps += 1
                            self.nonfinite_batches += 1
                            self.optimizer.zero_grad(set_to_none=True)
                            micro = 0
                            step_sums = {}
                            if bad_steps >= tc.max_bad_steps:
                                raise TrainingError(f"loss was non-finite for {bad_steps} consecutive batches at step "
                                                    f"{self.step} (lr {self.scheduler.get_last_lr()[0]:.3g}): lower "
                                                    "train.base_lr or lengthen train.warmup_epochs")
                            continue
                        bad_steps = 0
                        scaled = loss / tc.accumulate
                        (self.scaler.scale(scaled) if self.scaler else scaled).backward()
                    micro += 1
                    for k, v in logs.items():
                        sums[k] = sums.get(k, 0.0) + v
                        step_sums[k] = step_sums.get(k, 0.0) + v
                    count += 1
                    if micro % tc.accumulate:
                        continue
                    self._optimizer_step(step_sums, micro)
                    micro = 0
                    step_sums = {}
                    bar.update(1)
                    bar.set_postfix(loss=f"{logs['loss']:.3f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
                    if tc.stop_after_steps and self.step >= tc.stop_after_steps:
                        stopped = True
                        break
                if micro:  # a last partial accumulation at the end of the epoch
                    self._optimizer_step(step_sums, micro)
            except KeyboardInterrupt:
                bar.close()
                self.save_last()
                raise
            bar.close()
            if stopped:
                self.save_last()
                break
            self._end_epoch_balancer()
            row = self._epoch_means(sums, count)
            row.update(epoch=self.epoch, step=self.step, lr=self.scheduler.get_last_lr()[0],
                       epoch_s=time.perf_counter() - epoch_start, skipped=int(distributed.all_reduce_sum_(
                           torch.tensor([skipped], device=self.device)).item()))
            last_epoch = self.epoch + 1 == tc.epochs
            if self.swa and self.epoch >= tc.epochs - tc.swa_epochs:
                self.swa.update(self.model)
            metrics = None
            if main and (last_epoch or (self.epoch + 1) % max(1, tc.eval_interval) == 0):
                metrics = self.validate()
                metrics["fitness"] = fitness(metrics)
                row.update({k: v for k, v in metrics.items() if isinstance(v, float)})
                self.last_metrics = {k: v for k, v in metrics.items() if k != "per_class_IoU"}
            self.epoch += 1
            self.epoch_step = 0
            if metrics is not None and metrics["fitness"] > self.best_fitness:
                self.best_fitness = metrics["fitness"]
                self.save_best(metrics)
            if last_epoch and self.swa:
                self._finish_swa()
            # the same elapsed time on every process (mean), so all of them choose the same epoch count
            spent = torch.tensor([time.perf_counter() - budget_clock], dtype=torch.float64, device=self.device)
            self.train_elapsed_s += float(distributed.all_reduce_sum_(spent)) / self.dist.world_size
            budget_clock = time.perf_counter()
            self._fit_time_budget()
            self.save_last()
            if main:
                csv_log.append(row)
                plot_training_curves(self.run_dir / "metrics.csv", self.run_dir / "training_curves.png")
            distributed.barrier()  # the other processes wait while rank 0 evaluates and writes
        distributed.barrier()
        return TrainResult(self.run_dir, self.best_fitness, self.last_metrics, stopped)

    def loader(self, skip: int, epoch: int | None = None) -> DataLoader:
        """This process's shard of the epoch's seeded permutation, minus the ``skip`` samples already seen."""
        tc = self.cfg.train
        epoch = self.epoch if epoch is None else epoch
        self.dataset.set_epoch(epoch)
        sampler = EpochSampler(len(self.dataset), tc.seed, epoch, skip, self.dist.rank, self.dist.world_size)
        return DataLoader(self.dataset, batch_size=tc.batch_size, collate_fn=collate, sampler=sampler,
                          num_workers=self.cfg.data.workers, persistent_workers=False,
                          pin_memory=self.device.type == "cuda")

    def images(self, batch: dict) -> torch.Tensor:
        x = normalize(batch["images"].to(self.device, non_blocking=True))
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _maybe_no_sync(self, skip_sync: bool):
        ddp = self.forward_model._orig_mod if hasattr(self.forward_model, "_orig_mod") else self.forward_model
        if skip_sync and isinstance(ddp, DistributedDataParallel):
            return ddp.no_sync()
        return contextlib.nullcontext()

    def _note_skips(self, batch: dict, skipped: int) -> int:
        """Log each sample the data set replaced (once per message) and return the epoch's count so far;
        more than ``data.max_bad_fraction`` of the epoch's samples bad means a broken set, not a bad file."""
        failed = [m for extras in batch["extras"] for m in extras.get("skipped", ())]
        for message in failed:
            if message not in self.skipped_samples:
                self.skipped_samples[message] = None
                tqdm.write(f"skipped an unreadable sample (data.on_error: skip): {message}")
        skipped += len(failed)
        limit = self.cfg.data.max_bad_fraction
        if skipped > limit * self.epoch_samples:
            raise TrainingError(f"{skipped} of the {self.epoch_samples} samples of epoch {self.epoch + 1} could not be "
                                f"read (data.max_bad_fraction: {limit:g}), e.g. {failed[-1]}; `mtnet data check` "
                                "lists every unreadable file")
        return skipped

    def _epoch_means(self, sums: dict[str, float], count: int) -> dict[str, float]:
        """Per-epoch mean of the logged losses over every process."""
        if not self.dist.enabled:
            return {k: v / max(1, count) for k, v in sums.items()}
        keys = sorted(sums)
        t = torch.tensor([sums[k] for k in keys] + [float(count)], dtype=torch.float64, device=self.device)
        distributed.all_reduce_sum_(t)
        return {k: float(v) / max(1.0, float(t[-1])) for k, v in zip(keys, t[:-1], strict=True)}

    def _end_epoch_balancer(self) -> None:
        balancer = self.criterion.balancer
        if balancer.mode == "dwa":
            distributed.all_reduce_sum_(balancer.epoch_sums)
            distributed.all_reduce_sum_(balancer.epoch_count)
            balancer.end_epoch()

    def _finish_swa(self) -> None:
        """Re-estimate BN of the averaged weights on the training data (every process, so SyncBN can reduce),
        evaluate them, write ``swa.pt`` and make them ``best.pt`` when they score higher."""
        images = (self.images(b) for b in self.loader(skip=0, epoch=self.cfg.train.epochs - 1))
        self.swa.reestimate_bn(images)
        if not self.dist.is_main:
            return
        metrics = self.validate(self.swa.module)
        metrics["fitness"] = fitness(metrics)
        swa_metrics = {k: v for k, v in metrics.items() if k != "per_class_IoU"}
        self.save_best(swa_metrics, self.swa.module, "swa.pt")
        self.last_metrics.update({f"swa_{k}": v for k, v in swa_metrics.items() if isinstance(v, float)})
        if metrics["fitness"] > self.best_fitness:
            self.best_fitness = metrics["fitness"]
            self.save_best(swa_metrics, self.swa.module)

    def _optimizer_step(self, step_sums: dict[str, float], micro_batches: int) -> None:
        tc = self.cfg.train
        lr = self.scheduler.get_last_lr()[0]
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.dist.enabled:
            distributed.average_gradients(self.criterion.parameters())
        if tc.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema:
            self.ema.update(self.model)
        self.step += 1
        self.epoch_step += 1
        if self.dist.is_main:
            now = time.perf_counter()
            row = {"step": self.step, "epoch": self.epoch, "lr": lr, "step_s": now - self._step_clock}
            self._step_clock = now
            row.update({k: v / micro_batches for k, v in step_sums.items()})
            self.step_log.append(row)


def train(cfg: Config, *, resume: str | Path | bool = False, progress: bool = True) -> TrainResult:
    return Trainer(cfg, resume=resume, progress=progress).fit()
