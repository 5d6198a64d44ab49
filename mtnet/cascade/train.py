"""Training the crop classifier with the engine's pieces: linearly scaled LR, warmup + cosine schedule
(``mtnet.engine.schedules``), AdamW without decay on BN/bias, EMA weights (``mtnet.engine.ema``), atomic
checkpoints (``mtnet.engine.checkpoint``) and a metrics.csv per epoch.

It does not go through ``mtnet.engine.trainer.Trainer``: that loop trains a ``MultiTaskNet`` on whole
images through the task registry (letterbox, mosaic, per-task targets and losses); the classifier trains
on a fixed set of crops (``crop_set.build_crop_set``) with one cross-entropy loss.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.coco import CocoSource
from ..data.fine import FineLabels, fine_paths, read_fine_labels
from ..data.preprocess import normalize
from ..engine.checkpoint import save_checkpoint
from ..engine.ema import ModelEMA
from ..engine.schedules import scaled_lr, warmup_cosine
from ..errors import UserError
from ..fileio import atomic_write
from ..infer.predictor import Predictor
from .config import ClassifierConfig
from .crop_set import CropSet, build_crop_set
from .model import CropClassifier

FORMAT_KIND = "crop_classifier"  # checkpoint "kind": tells it apart from a MultiTaskNet checkpoint


def fine_instances_path(cfg: ClassifierConfig, split: str) -> Path:
    """The fine instances json of ``split`` (``cfg.instances`` or the data folder's default)."""
    return Path(cfg.instances.replace("{split}", split)) if cfg.instances else fine_paths(cfg.data_root, split)[0]


def fine_labels_for(cfg: ClassifierConfig) -> FineLabels:
    """The fine label space of the recipe (its train split's categories and the fine -> coarse map)."""
    mapping = Path(cfg.fine_to_coarse) if cfg.fine_to_coarse else fine_paths(cfg.data_root, cfg.train_split)[1]
    return read_fine_labels(fine_instances_path(cfg, cfg.train_split), mapping)


def build_crop_sets(cfg: ClassifierConfig, *, progress: bool = True) -> tuple[FineLabels, CropSet, CropSet]:
    """The recipe's fine labels and its train / val crop sets (train with jittered ground-truth copies)."""
    fine = fine_labels_for(cfg)
    train_inst, val_inst = fine_instances_path(cfg, cfg.train_split), fine_instances_path(cfg, cfg.val_split)
    if not fine.split_coarse:
        raise UserError(f"{train_inst}: no coarse class has sub-types: nothing for a crop classifier to learn")
    detector = None
    if cfg.detector:
        # multi-label: every (box, sub-typed class) pair the detector scores above det_conf, as a cascade run
        # for mAP classifies them; at deployment (best class only) its crops are a subset of these
        detector = Predictor.from_checkpoint(cfg.detector, conf=cfg.det_conf, max_det=cfg.det_max_det, multi_label=True)
        missing = sorted(set(fine.split_coarse) - set(detector.meta.det_category_ids))
        if missing:
            raise UserError(f"{cfg.detector}: the detector does not detect the sub-typed categories {missing}")
    build = dict(detector=detector, context=cfg.context, pos_iou=cfg.pos_iou, neg_iou=cfg.neg_iou,
                 negatives_per_image=cfg.negatives_per_image, progress=progress)
    train_set = build_crop_set(CocoSource(cfg.data_root, cfg.train_split, instances=train_inst, seg="none"), fine,
                               cfg.input_size, jitter=cfg.jitter, jitter_copies=cfg.jitter_copies, seed=cfg.seed, **build)
    val_set = build_crop_set(CocoSource(cfg.data_root, cfg.val_split, instances=val_inst, seg="none"), fine,
                             cfg.input_size, **build)
    if len(train_set.labels) == 0:
        raise UserError(f"{train_inst}: no crops of the sub-typed classes in the {cfg.train_split} split")
    return fine, train_set, val_set


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal/vertical flips and brightness/contrast jitter of a uint8 NHWC batch."""
    n = x.shape[0]
    flip_w = torch.rand(n, generator=gen) < 0.5
    flip_h = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip_w[:, None, None, None], x.flip(2), x)
    x = torch.where(flip_h[:, None, None, None], x.flip(1), x)
    gain = 1 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.4
    bias = (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 40
    return (x.float() * gain + bias).clamp_(0, 255).round_().to(torch.uint8)


@torch.inference_mode()
def accuracy(model: nn.Module, crops: CropSet, batch: int = 256) -> dict[str, float]:
    """Top-1 accuracy on all crops and on the ground-truth / detection / hard-negative parts."""
    model.eval()
    preds = []
    for s in range(0, len(crops.crops), batch):
        preds.append(model(normalize(torch.from_numpy(crops.crops[s : s + batch]))).argmax(1).numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    ok = pred == crops.labels
    out = {"acc": float(ok.mean()) if len(ok) else float("nan")}
    for name, kind in (("acc_gt", 0), ("acc_det", 2), ("acc_negative", 3)):
        sel = crops.kinds == kind
        out[name] = float(ok[sel].mean()) if sel.any() else float("nan")
    return out


def train_classifier(cfg: ClassifierConfig, *, progress: bool = True) -> dict[str, Any]:
    """Build the crop sets, train, write ``<run>/best.pt`` (EMA weights) and ``<run>/summary.json``."""
    torch.manual_seed(cfg.seed)
    fine, train_set, val_set = build_crop_sets(cfg, progress=progress)
    num_classes = len(fine.classifier_ids) + 1
    arch = {"num_classes": num_classes, "width": cfg.width, "input_size": cfg.input_size, "head_channels": cfg.head_channels}
    model = CropClassifier(**arch)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    lr = scaled_lr(cfg.base_lr, cfg.batch_size)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    steps_per_epoch = max(1, len(train_set.labels) // cfg.batch_size)
    schedule = warmup_cosine(cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch), 0.01, cfg.min_lr_ratio)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    ema = ModelEMA(model, cfg.ema_decay, cfg.ema_tau)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    gen = torch.Generator().manual_seed(cfg.seed)
    crops, labels = torch.from_numpy(train_set.crops), torch.from_numpy(train_set.labels)
    run = cfg.run_dir
    run.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    best: dict[str, Any] = {"acc": -1.0}
    start = time.perf_counter()
    state_common = {"kind": FORMAT_KIND, "arch": arch, "fine": fine.to_dict(), "context": cfg.context,
                    "config": cfg.to_dict()}
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(labels), generator=gen)
        total, seen, t0 = 0.0, 0, time.perf_counter()
        for s in range(steps_per_epoch):
            idx = order[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            x = normalize(_augment(crops[idx], gen))
            loss = loss_fn(model(x), labels[idx])
            if not torch.isfinite(loss):
                raise UserError(f"classifier training diverged at epoch {epoch} (loss {loss.item()}); lower base_lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema.update(model)
            total, seen = total + loss.item() * len(idx), seen + len(idx)
        metrics = accuracy(ema.module, val_set)
        row = {"epoch": epoch, "loss": total / max(1, seen), "lr": sched.get_last_lr()[0],
               "epoch_s": time.perf_counter() - t0, **metrics}
        rows.append(row)
        _write_csv(run / "metrics.csv", rows)
        if metrics["acc"] > best["acc"]:
            best = {**metrics, "epoch": epoch}
            save_checkpoint({**state_common, "model": ema.module.state_dict(), "metrics": best}, run / "best.pt")
        save_checkpoint({**state_common, "model": ema.module.state_dict(), "metrics": metrics, "epoch": epoch},
                        run / "last.pt")
        if progress:
            print(f"classifier epoch {epoch}: loss {row['loss']:.4f} val acc {metrics['acc']:.3f} "
                  f"(gt {metrics['acc_gt']:.3f}, det {metrics['acc_det']:.3f}, negatives {metrics['acc_negative']:.3f})")
        if cfg.time_budget_min > 0 and time.perf_counter() - start > cfg.time_budget_min * 60:
            break
    summary = {"best": best, "epochs_run": len(rows), "train_s": time.perf_counter() - start,
               "train_crops": train_set.counts(), "val_crops": val_set.counts(), "classes": fine.classifier_names,
               "checkpoint": str(run / "best.pt")}
    atomic_write(run / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)))
    return summary


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)
