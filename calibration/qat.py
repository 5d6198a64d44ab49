"""Quantisation-aware fine-tuning that matches TFLite's int8 scheme, and the ranges it hands to the exporter.

The scheme is the one TFLite's int8 kernels run (and ``export.tflite`` produces):

* BatchNorm folded into the conv before it, with the running statistics frozen: the conv trains on the folded
  weight ``w * gamma / sqrt(var + eps)`` and the BN becomes a bias (``weight 1, mean 0, var 1 - eps``), so the
  ONNX exporter's own folding reproduces the trained weight bit for bit;
* weights per output channel, symmetric, narrow range ``[-127, 127]``, ``scale = max|w| / 127`` (what TFLite's
  quantizer computes again from the baked weights: the same grid, so int8 weights equal the trained ones);
* activations per tensor, asymmetric ``[-128, 127]``, range widened to hold 0, ``scale = (max - min) / 255``,
  ``zero_point = round(-128 - min / scale)``; min/max are an exponential moving average of each batch's
  min/max (TF's QAT observer), initialised by a calibration pass.

Activation fake-quant sits where TFLite materialises int8 tensors: the network input, every ConvBNAct output
(conv + BN + ReLU6 are one fused TFLite op), every residual add (InvertedResidual output), every bare conv
(head predictions), and the adds that feed the neck's smoothing convs and the segmentation refiner (read as
those modules' inputs). The learned ranges go into the checkpoint's ``qat`` section by point name; the
exporter binds them to TFLite tensors by value (``export.qat_ranges``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from mtnet.errors import UserError

ROUTE = "mtnet-qat -> onnx2tf saved model -> TFLite quantizer with the QAT ranges and weights"
QMIN, QMAX = -128, 127
WEIGHT_QMAX = 127


class QATError(UserError):
    """A checkpoint is not usable for QAT or carries no QAT ranges."""


def activation_qparams(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """TFLite's per-tensor int8 (scale, zero point) for the real range [lo, hi] (widened to hold 0)."""
    lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
    scale = torch.clamp((hi - lo) / (QMAX - QMIN), min=1e-8)
    zero_point = torch.clamp(torch.round(QMIN - lo / scale), QMIN, QMAX)
    return scale, zero_point


class WeightFakeQuant(nn.Module):
    """Parametrisation of a conv weight: per-output-channel symmetric int8, straight-through gradient."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        scale = w.detach().abs().amax(dim=tuple(range(1, w.ndim))).clamp(min=1e-12) / WEIGHT_QMAX
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -WEIGHT_QMAX, WEIGHT_QMAX)


class ActivationFakeQuant(nn.Module):
    """Per-tensor asymmetric int8 fake-quant with a moving-average min/max observer."""

    def __init__(self, momentum: float = 0.01):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(0.0))
        self.register_buffer("seen", torch.tensor(0))
        self.observe = True  # update the range from this batch
        self.quantize = True  # apply fake quantisation
        self.calibrating = False  # running min/max (initial range) instead of the moving average

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observe:
            with torch.no_grad():
                lo, hi = x.detach().min().float(), x.detach().max().float()
                if self.seen == 0:
                    self.lo.copy_(lo), self.hi.copy_(hi)
                elif self.calibrating:
                    self.lo.copy_(torch.minimum(self.lo, lo)), self.hi.copy_(torch.maximum(self.hi, hi))
                else:
                    self.lo.lerp_(lo, self.momentum), self.hi.lerp_(hi, self.momentum)
                self.seen += 1
        if not self.quantize or self.seen == 0:
            return x
        scale, zero_point = activation_qparams(self.lo, self.hi)
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point.int(), QMIN, QMAX)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every conv -> BN pair of the model's ConvBNAct blocks in place; returns how many were folded."""
    from mtnet.models.layers import ConvBNAct

    folded = 0
    for block in model.modules():
        if not isinstance(block, ConvBNAct):
            continue
        conv, bn = block[0], block[1]
        with torch.no_grad():
            factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(factor.reshape(-1, 1, 1, 1))
            bn.bias.copy_(bn.bias - bn.running_mean * factor)
            bn.weight.fill_(1.0)
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        bn.weight.requires_grad_(False)
        folded += 1
    return folded


def _points(model: nn.Module) -> Iterator[tuple[str, nn.Module, str]]:
    """(point name, module, "pre" | "post") for every activation TFLite keeps as an int8 tensor."""
    from mtnet.models.heads.segmentation import SegmentationHead
    from mtnet.models.layers import ConvBNAct
    from mtnet.models.mobilenetv2 import InvertedResidual
    from mtnet.models.neck import FPNLite

    yield "input", model.backbone, "pre"
    parents = {id(c): p for p in model.modules() for c in p.children()}
    for name, m in model.named_modules():
        parent = parents.get(id(m))
        if isinstance(m, ConvBNAct) or (isinstance(m, InvertedResidual) and m.use_residual):
            yield name, m, "post"
        elif isinstance(m, nn.Conv2d) and not isinstance(parent, ConvBNAct):
            yield name, m, "post"
        elif isinstance(parent, FPNLite) and name.split(".")[-1] in ("smooth", "pan_smooth"):
            for i, child in enumerate(m):
                yield f"{name}.{i}:in", child, "pre"
        elif isinstance(m, SegmentationHead):
            yield f"{name}.refine:in", m.refine, "pre"


@dataclass
class QATModel:
    """A float model prepared for QAT: folded BN, fake-quant weights, activation observers on hooks."""

    model: nn.Module
    observers: nn.ModuleDict  # point name (dots replaced by "/") -> ActivationFakeQuant
    hooks: list

    def set_mode(self, *, observe: bool, quantize: bool, calibrating: bool = False) -> None:
        for o in self.observers.values():
            o.observe, o.quantize, o.calibrating = observe, quantize, calibrating

    def ranges(self) -> dict[str, list[float]]:
        """Learned real ranges [min, max] per point (before widening to hold 0)."""
        return {k.replace("/", "."): [float(o.lo), float(o.hi)] for k, o in self.observers.items() if int(o.seen)}

    def bake(self) -> nn.Module:
        """Remove hooks and parametrisations, leaving the float model with the int8-grid weights."""
        for h in self.hooks:
            h.remove()
        for m in self.model.modules():
            if isinstance(m, nn.Conv2d) and parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
        return self.model


def prepare_qat(model: nn.Module) -> QATModel:
    """Fold BN, put per-channel weight fake-quant on every conv and activation fake-quant on every point."""
    fold_batchnorm(model)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            parametrize.register_parametrization(m, "weight", WeightFakeQuant())
    observers = nn.ModuleDict()
    hooks = []
    for name, module, where in _points(model):
        obs = ActivationFakeQuant()
        observers[name.replace(".", "/")] = obs
        if where == "pre":
            hooks.append(module.register_forward_pre_hook(lambda _m, args, o=obs: (o(args[0]), *args[1:])))
        else:
            hooks.append(module.register_forward_hook(lambda _m, _a, out, o=obs: o(out)))
    return QATModel(model, observers, hooks)


def capture_points(model: nn.Module, images_nchw: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every activation point's float tensor for ``images_nchw`` (no fake quantisation; used for binding)."""
    captured: dict[str, torch.Tensor] = {}
    hooks = []
    for name, module, where in _points(model):
        if where == "pre":
            hooks.append(module.register_forward_pre_hook(
                lambda _m, args, n=name: captured.__setitem__(n, args[0].detach().clone())))
        else:
            hooks.append(module.register_forward_hook(
                lambda _m, _a, out, n=name: captured.__setitem__(n, out.detach().clone())))
    try:
        with torch.no_grad():
            model(images_nchw)
    finally:
        for h in hooks:
            h.remove()
    return captured


def _keep_bn_frozen(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


OBJECTIVES = ("labels", "teacher")


def teacher_matching_loss(student: dict[str, Any], teacher: dict[str, Any]) -> torch.Tensor:
    """Mean over the trainable raw outputs (class and box logits, keypoint offsets, segmentation logits, ...) of
    the squared error to the float teacher's, each divided by the teacher output's variance so that no output
    dominates by its units."""
    terms = [(s - teacher[k]).pow(2).mean() / (teacher[k].var() + 1e-6) for k, s in student.items()
             if torch.is_tensor(s) and s.requires_grad and torch.is_tensor(teacher.get(k))]
    if not terms:
        raise QATError("the model has no trainable outputs to match to the float teacher")
    return torch.stack(terms).mean()


def qat_finetune(checkpoint: str | Path, out: str | Path, *, epochs: int = 2, lr: float = 1e-4,
                 calib_batches: int = 8, ema: bool = False, objective: str = "labels", data_root: str | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Fine-tune ``checkpoint`` with fake quantisation for ``epochs`` and write the QAT checkpoint to ``out``.

    The written checkpoint loads like any other (same architecture; BN is the identity plus a bias, weights on
    their int8 grid) and adds a ``qat`` section: scheme, learned activation ranges, epochs, route.
    ``ema``: bake the moving average of the float weights (the checkpoint's ``train.ema_decay`` / ``ema_tau``)
    instead of the last step's, as a float ``best.pt`` holds EMA weights.
    ``objective``: ``labels`` trains on the task losses, as in training, so an undertrained model also keeps
    learning (and its int8 file can end up better or worse than its float one); ``teacher`` trains the
    fake-quantised network to reproduce the float checkpoint's raw outputs on the training images
    (``teacher_matching_loss``; labels unused): the int8 file then tracks the float model it replaces.
    Returns the ``qat`` section.
    """
    from tqdm import tqdm

    from mtnet.checkpoint_io import load_checkpoint, load_model_from_checkpoint
    from mtnet.data.build import build_train_dataset, open_split
    from mtnet.data.dataset import collate
    from mtnet.data.meta import DatasetMeta
    from mtnet.data.preprocess import normalize
    from mtnet.engine.checkpoint import save_checkpoint
    from mtnet.losses.criterion import MultiTaskCriterion

    if epochs < 1:
        raise QATError(f"--epochs must be at least 1, got {epochs}")
    if objective not in OBJECTIVES:
        raise QATError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    state = load_checkpoint(checkpoint)
    if state.get("qat"):
        raise QATError(f"{checkpoint} is already a QAT checkpoint; fine-tune the float checkpoint it came from")
    model, cfg = load_model_from_checkpoint(checkpoint)
    meta = DatasetMeta.from_dict(state["meta"])
    train_src = open_split(cfg, "train", data_root=data_root, meta=meta)
    dataset = build_train_dataset(cfg, train_src, meta)
    torch.manual_seed(cfg.train.seed)
    teacher = copy.deepcopy(model).eval() if objective == "teacher" else None  # the float model, before fake-quant
    qat = prepare_qat(model)
    criterion = MultiTaskCriterion(meta, model.tasks, cfg.loss)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    bs = cfg.train.batch_size
    start = time.perf_counter()

    def batches(epoch: int):
        dataset.set_epoch(epoch)
        g = torch.Generator().manual_seed(cfg.train.seed + epoch)
        return torch.utils.data.DataLoader(dataset, batch_size=bs, shuffle=True, generator=g, collate_fn=collate,
                                           num_workers=0, drop_last=len(dataset) > bs)

    # initial ranges: min/max over a few training batches with the float network (PTQ's starting point)
    model.eval()
    qat.set_mode(observe=True, quantize=False, calibrating=True)
    with torch.no_grad():
        for i, batch in enumerate(batches(0)):
            if i >= calib_batches:
                break
            model(normalize(batch["images"]))
    qat.set_mode(observe=True, quantize=True)
    steps = epochs * math.ceil(len(dataset) / bs)
    averaged = {n: p.detach().clone() for n, p in model.named_parameters()} if ema else None
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    losses = []
    bar = tqdm(total=steps, desc="qat", disable=not progress)
    for epoch in range(epochs):
        model.train()
        _keep_bn_frozen(model)
        for batch in batches(epoch + 1):
            images = normalize(batch["images"])
            if teacher is None:
                loss, _ = criterion(model(images), batch)
            else:
                with torch.no_grad():
                    target = teacher(images)
                loss = teacher_matching_loss(model(images), target)
            if not torch.isfinite(loss):
                raise QATError(f"QAT loss became non-finite at epoch {epoch + 1}: lower --lr (now {lr:g})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, cfg.train.grad_clip or 10.0)
            optimizer.step()
            scheduler.step()
            if averaged is not None:
                d = cfg.train.ema_decay * (1 - math.exp(-(len(losses) + 1) / max(cfg.train.ema_tau, 1.0)))
                with torch.no_grad():
                    for n, p in model.named_parameters():
                        averaged[n].lerp_(p.detach(), 1 - d)
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    model.eval()
    if averaged is not None:
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(averaged[n])
    section = {"scheme": {"weights": "int8 per output channel, symmetric, [-127, 127], BN folded",
                          "activations": "int8 per tensor, asymmetric, [-128, 127], moving-average min/max"},
               "ranges": qat.ranges(), "epochs": epochs, "lr": lr, "ema": ema, "objective": objective,
               "steps": steps, "source": str(checkpoint),
               "final_loss": sum(losses[-10:]) / max(1, len(losses[-10:])), "train_s": round(time.perf_counter() - start, 1),
               "route": ROUTE}
    baked = qat.bake()
    save_checkpoint({"model": baked.state_dict(), "config": cfg.to_dict(), "meta": meta.to_dict(),
                     "metrics": state.get("metrics", {}), "qat": section}, Path(out))
    return section


def load_qat_section(checkpoint: str | Path) -> dict[str, Any]:
    """The ``qat`` section of a QAT checkpoint; a float checkpoint raises QATError (no silent PTQ fallback)."""
    from mtnet.checkpoint_io import load_checkpoint

    section = load_checkpoint(checkpoint).get("qat")
    if not section or not section.get("ranges"):
        raise QATError(f"{checkpoint} has no QAT ranges: run `mtnet qat {checkpoint}` first and export its output "
                       "with --quant qat")
    return section
