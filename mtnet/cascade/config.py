"""The crop classifier's recipe: one typed dataclass, loaded from YAML like the main config
(``mtnet.config.load_yaml_dataclass``: unknown keys rejected, ``key=value`` overrides)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError, load_yaml_dataclass


@dataclass
class ClassifierConfig:
    name: str = "cascade_cls"  # run folder: <output_dir>/<name>/ (best.pt, last.pt, metrics.csv, summary.json)
    output_dir: str = "runs"
    detector: str = ""  # detector checkpoint (.pt) whose detections add real boxes and hard negatives ("" = GT only)
    data_root: str = "data/subtypes"  # COCO folder with fine labels (see mtnet/data/fine.py)
    instances: str = ""  # fine instances json ("{split}" replaced); default annotations/instances_fine_{split}.json
    fine_to_coarse: str = ""  # fine -> coarse category map; default annotations/fine_to_coarse.json
    train_split: str = "train"
    val_split: str = "val"
    width: float = 0.35  # MobileNetV2 width multiplier
    input_size: int = 48  # crop side (pixels of the original image, letterboxed to this square)
    head_channels: int = 256  # 1x1 conv before pooling
    context: float = 0.1  # box grown by this fraction of its side on each side before cropping
    det_conf: float = 0.2  # detections at or above this score become training crops
    det_max_det: int = 100  # detections per image kept by the detector (its NMS output limit)
    pos_iou: float = 0.5  # a detection overlapping a ground-truth box this much takes its fine label
    neg_iou: float = 0.3  # one overlapping every ground-truth box of its class less is a hard negative (background)
    negatives_per_image: int = 8  # at most this many hard negatives per image, highest detector scores first
    jitter: float = 0.1  # ground-truth boxes are also cropped with their sides moved by up to this fraction
    jitter_copies: int = 2  # jittered copies per ground-truth box (fixed per run: the crop set is built once)
    epochs: int = 20
    batch_size: int = 64
    base_lr: float = 0.064  # per 256 crops; scaled linearly with batch_size
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.02
    ema_decay: float = 0.99
    ema_tau: float = 50.0
    time_budget_min: float = 0.0  # > 0: stop after the epoch that crosses this many minutes
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


def load_classifier_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ClassifierConfig:
    cfg = load_yaml_dataclass(ClassifierConfig, path, overrides)
    if cfg.input_size < 16 or cfg.width <= 0 or cfg.epochs < 1 or cfg.batch_size < 1:
        raise ConfigError("classifier: input_size >= 16, width > 0, epochs >= 1 and batch_size >= 1 are required")
    if not 0 <= cfg.neg_iou <= cfg.pos_iou <= 1:
        raise ConfigError(f"classifier: need 0 <= neg_iou <= pos_iou <= 1, got {cfg.neg_iou}, {cfg.pos_iou}")
    return cfg
