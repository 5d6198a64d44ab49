"""Typed configuration tree.

Every knob lives in one dataclass with a comment (YOLOX's "one experiment object" idea, but typed).
Configs are YAML files; ``key.sub=value`` overrides are applied on top. Unknown keys are rejected with a
message naming the key and the closest valid ones, because a typo that is silently ignored costs a
whole training run.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .decode import NMS_IOU
from .errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A config file or override is invalid; the message names the key."""


@dataclass
class ModelConfig:
    width: float = 1.0  # MobileNetV2 width multiplier (0.35-1.4)
    neck_channels: int = 64  # common width of the FPN-lite neck
    head_channels: int = 48  # width of the detection / pose towers
    pose_channels: int = 0  # width of the pose towers alone (0 = head_channels): 17 joints to place from one anchor
    # ask more of a tower than 4 box sides (docs/benchmarks.md#equal-cpu-budget-vs-yolo11n)
    pose_blocks: int = 2  # depthwise-separable 3x3 blocks per pose tower (depth, where pose_channels is width)
    seg_channels: int = 32  # width of the segmentation head (runs at stride 4: the costliest head per channel)
    pan: bool = False  # add a bottom-up PAN-lite path after the top-down FPN
    head_strides: list[int] = field(default_factory=lambda: [8, 16, 32])  # pyramid levels the det/pose heads read
    share_head_levels: bool = False  # det/pose heads: one tower per level with its own BN statistics (YOLOv8/
    # YOLOX; same FLOPs, more weights) | true = one for all levels (BN statistics mixed over levels: keypoint
    # AP50 0.39 vs 0.62 on scale-spread data, docs/benchmarks.md#pyramid-levels)
    box_bins: int = 16  # box regression: n > 1 = a distribution over n bins per side (DFL, Li et al. 2020, as
    # YOLOv8): distances up to n - 1 strides, read as the distribution's mean | 0 = one softplus distance per side
    # (box AP50 0.56 vs 0.64 with CIoU on scale-spread data, docs/benchmarks.md#detection-recipe)
    pose_level: str = "own"  # pose keypoints of every anchor: own (its own level) | finest (read from the finest
    # head level under the anchor's centre: detection picks the level, joints come from the sharpest features)
    tasks: list[str] = field(default_factory=lambda: ["det", "seg", "pose"])  # any subset


@dataclass
class AugmentConfig:
    hflip: float = 0.5  # probability of a horizontal flip (left/right keypoints are swapped)
    scale: tuple[float, float] = (0.6, 1.4)  # scale jitter range relative to letterboxed size
    color: float = 0.8  # probability of colour jitter
    cutout: float = 0.0  # probability of CoarseDropout
    mosaic: float = 0.0  # probability of a 4-image mosaic (partners drawn from the same source)
    mosaic_scale: tuple[float, float] = (0.5, 1.5)  # the 2x2 mosaic canvas is rescaled by this range before the crop:
    # 0.5-1.5 (as YOLOv8) keeps the objects' mean scale; 0.5-1.0 shrinks them, and large-object AP and keypoint AP
    # fell with it (docs/benchmarks.md#detection-recipe)
    mixup: float = 0.0  # probability of blending with a second (augmented) image, YOLOX-style
    no_aug_epochs: int = 0  # last N epochs without mosaic, mixup and cutout (YOLOX's "no-aug" finish)


@dataclass
class SyntheticConfig:
    num_train: int = 600  # images in the synthetic train split
    num_val: int = 100  # images in the synthetic val split
    image_size: int = 256  # side of the generated square images
    seed: int = 0  # generator seed: same seed -> byte-identical data set
    variant: str = "standard"  # standard (narrow scale range) | scale-spread (COCO-like: 12 px to 60 %, crowds,
    # blur / noise / JPEG artefacts; see mtnet.data.synthetic)


@dataclass
class SourceConfig:
    type: str = "coco"  # coco (COCO download or "images folder + COCO json") | voc (Pascal VOC devkit folder)
    root: str = ""  # data set folder (see docs/data.md)
    train_split: str = "train"  # split names; "" = this source has no such split
    val_split: str = ""  # validation split of this source ("" = none); the first source with one is evaluated
    ratio: float = 1.0  # share of each training epoch drawn from this source (normalised over sources)
    tasks: list[str] = field(default_factory=lambda: ["det", "seg", "pose"])  # tasks this source labels
    instances: str = ""  # coco: instances json ("{split}" is replaced); default annotations/instances_{split}.json
    keypoints: str = ""  # coco: person_keypoints json; default annotations/person_keypoints_{split}.json
    images: str = ""  # coco: image folder ("{split}" is replaced); default <root>/<split>/ or images/<split>/
    seg: str = "auto"  # coco semantic masks: auto | stuffmaps | stuff | panoptic | polygons | none
    classes: list[str] = field(default_factory=list)  # voc: class names in mask-index order (background first)
    # for a folder without labelmap.txt; empty = labelmap.txt, else the 20 VOC 2012 classes (see data/voc.py)


@dataclass
class DataConfig:
    root: str = "data/synthetic"  # a COCO-format folder (see docs/data.md)
    train_split: str = "train"  # split names: images in <root>/<split>/, annotations/<kind>_<split>.json
    val_split: str = "val"
    imgsz: int = 256  # square network input (letterboxed)
    train_crop: int = 0  # train on random crops of this side of the imgsz-letterboxed, scale-jittered images
    # (0 or >= imgsz: no crop): objects keep their evaluation scale, a step costs ~(train_crop / imgsz)^2
    workers: int = 0  # DataLoader worker processes
    synthetic: SyntheticConfig | None = None  # when set, the data set is generated into `root` if missing
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    sources: list[SourceConfig] = field(default_factory=list)  # several data sets at once; empty = `root` alone
    cache: bool = False  # keep decoded train samples in RAM after epoch 1 (needs workers: 0); <= half of free RAM
    class_balance: bool = False  # class-balanced detection loss weights (Cui et al. 2019) from train counts
    class_balance_beta: float = 0.999  # beta of the effective number of samples (1 - beta^n) / (1 - beta)
    on_error: str = "skip"  # a train image that fails to decode: skip (logged, replaced by the next sample,
    # counted per epoch in metrics.csv) | stop (raise at once); hours into a run, one bad file should not end it
    max_bad_fraction: float = 0.01  # stop with an error when more than this share of an epoch's samples was skipped


@dataclass
class LossConfig:
    det: float = 1.0  # weight of the detection loss (cls + box)
    box: float = 2.5  # IoU-loss weight inside the detection loss
    box_iou: str = "ciou"  # ciou (CIoU, Zheng et al. 2020: IoU - centre distance - aspect-ratio term) | giou
    dfl: float = 0.5  # distribution focal loss weight (only with model.box_bins > 1)
    seg: float = 1.0  # weight of the segmentation loss
    seg_resolution: str = "input"  # input: logits upsampled to the labels (exact boundaries) | logits: labels
    # subsampled to the logits' stride-4 grid (16x fewer pixels: ~40 ms less per CPU step at 192 px, batch 16)
    pose: float = 1.0  # weight of the keypoint loss (OKS + visibility)
    task_weights: dict[str, float] = field(default_factory=dict)  # weights of plug-in tasks by name (default: the
    # task's own, 1 unless it says otherwise; inst: 8)
    inst_weak: str = "box_semantic"  # inst masks of images without outlines: box_semantic (box-constrained semantic
    # target, same-class overlaps ignored; docs/architecture.md#instance-masks) | off (no mask loss there)
    inst_dice: float = 1.0  # inst masks: weight of a Dice term next to the per-cell BCE (0 = BCE alone, which drops
    # thin limbs: quickstart mask AP50 0.81 vs box 0.92; with Dice 0.84 vs 0.91, docs/benchmarks.md#instance-masks)
    balance: str = "fixed"  # fixed | uncertainty (learned log-variances) | dwa (dynamic weight averaging)


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 16  # per process
    accumulate: int = 1  # gradient accumulation steps (effective batch = batch_size * accumulate * world)
    optimizer: str = "adamw"  # sgd | adamw
    base_lr: float = 0.004  # LR per 256 images; scaled linearly with the effective batch
    momentum: float = 0.9  # SGD momentum / AdamW beta1
    weight_decay: float = 0.05  # not applied to BN weights and biases
    schedule: str = "cosine"  # cosine | onecycle
    warmup_epochs: float = 3.0  # linear warmup length
    warmup_steps: int = 0  # warmup length in optimizer steps; > 0 overrides warmup_epochs
    warmup_start_factor: float = 0.01  # warmup starts at this fraction of the peak LR
    min_lr_ratio: float = 0.02  # final LR as a fraction of the peak LR
    ema_decay: float = 0.999  # EMA of weights (0 disables)
    ema_tau: float = 200.0  # EMA warm-up in steps: decay * (1 - exp(-step / tau))
    grad_clip: float = 10.0  # max grad norm (0 disables)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    eval_interval: int = 5  # evaluate every N epochs (and always after the last)
    max_bad_steps: int = 5  # abort after this many consecutive non-finite losses
    stop_after_steps: int = 0  # stop (and save last.pt) after this many optimizer steps; 0 = off
    time_budget_min: float = 0.0  # > 0: fewer epochs (never more) so fit() ends within this many minutes;
    # re-estimated from the measured epoch times after every epoch, the LR schedule re-fitted to the new length
    # (YOLO's `time=`). Results then depend on the machine's speed; 0 = off (deterministic)
    swa_epochs: int = 0  # SWA: average the weights of the last N epochs at a constant LR, re-estimate BN; 0 = off
    swa_lr_ratio: float = 0.05  # constant LR during the SWA epochs, as a fraction of the peak LR
    sync_bn: bool = True  # with > 1 process: BatchNorm statistics over the global batch (SyncBN)
    amp: str = "auto"  # GPU mixed precision: auto (bf16 if supported, else fp16 + GradScaler) | bf16 | fp16 | off; CPU is fp32
    channels_last: bool = True  # NHWC memory format: faster convs under AMP on GPUs, ~25% faster steps on CPU
    compile: bool = False  # torch.compile the model (GPU; the first steps are slow while it compiles)
    retain_freed_memory: bool = True  # CPU on glibc: reuse freed tensor memory instead of page-faulting it back
    # every step (mtnet.engine.allocator; ~20% faster steps on a 2-core VM, the process keeps its peak heap)


@dataclass
class EvalConfig:
    conf: float = 0.001  # score threshold for mAP evaluation
    iou: float = NMS_IOU  # NMS IoU threshold
    max_det: int = 100  # detections kept per image
    num_examples: int = 8  # val images drawn into examples.png


@dataclass
class Config:
    name: str = "run"  # run folder name under `output_dir`
    output_dir: str = "runs"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(v) for v in value]
    return value


def _dataclass_type(tp: Any) -> type | None:
    """Return the dataclass inside ``tp`` (handles ``X | None``)."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None  # list[SomeDataclass] is a list, handled by the caller
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check and convert a YAML value to the annotated type; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    dc = _dataclass_type(tp)
    if dc is not None:
        if isinstance(value, dc):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(dc, value, key)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        inner = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, inner, f"{key}.{k}") for k, v in value.items()}
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        if origin is tuple:
            if len(args) and args[-1] is not Ellipsis and len(items) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} values, got {len(items)}")
            return tuple(items)
        return items
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int | str | float):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if f != int(f):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, bool):  # YAML 1.1 reads an unquoted off/on (yes/no) as a boolean: `train.amp=off`
            return "on" if value else "off"
        if not isinstance(value, str | int | float):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in data.items():
        full = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=3)
            hint = f" Did you mean {', '.join(repr((prefix + '.' if prefix else '') + c) for c in close)}?" if close else ""
            raise ConfigError(f"unknown config key '{full}'.{hint} Valid keys here: {', '.join(names)}")
        kwargs[k] = _coerce(v, hints[k], full)
    return cls(**kwargs)


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        child = node.get(p)
        if not isinstance(child, dict):
            child = {}
            node[p] = child
        node = child
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["train.epochs=3", "model.tasks=[det,seg]"]`` into a nested dict (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key.sub=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override '{item}' has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        _set_path(tree, key, value)
    return tree


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def resolve_config_path(path: str | Path) -> Path:
    """A path on disk, or the name of a packaged config (``quickstart`` -> configs/quickstart.yaml)."""
    p = Path(path)
    if p.is_file():
        return p
    packaged = _packaged_configs_dir() / (p.name if p.suffix else f"{p.name}.yaml")
    if packaged.is_file():
        return packaged
    raise ConfigError(f"config file not found: {path} (packaged configs: {', '.join(list_packaged_configs())})")


def _packaged_configs_dir() -> Path:
    """The installed ``mtnet.configs`` package (the repository's configs/ folder)."""
    from . import configs

    return Path(configs.__file__).parent


def list_packaged_configs() -> list[str]:
    return sorted(p.stem for p in _packaged_configs_dir().glob("*.yaml"))


def config_from_dict(data: dict[str, Any]) -> Config:
    cfg = _build(Config, data)
    validate(cfg)
    return cfg


def load_yaml_dataclass(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """A typed config dataclass ``cls`` from a YAML file (or its defaults) plus ``key=value`` overrides, with the
    same unknown-key and type checks as the main config (other recipes, e.g. the cascade's crop classifier)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = resolve_config_path(path)
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({e})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
        data = loaded
    return _build(cls, _merge(data, parse_overrides(overrides or [])))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply ``key=value`` overrides."""
    cfg = load_yaml_dataclass(Config, path, overrides)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Value checks that types alone cannot express."""
    from .tasks import list_tasks  # the registry imports torch: only when a config is checked

    valid = list_tasks()
    bad = [t for t in cfg.model.tasks if t not in valid]
    if bad or not cfg.model.tasks:
        raise ConfigError(f"model.tasks: expected a non-empty subset of the registered tasks {valid}, got {cfg.model.tasks}")
    if not 0.1 <= cfg.model.width <= 2.0:
        raise ConfigError(f"model.width: expected 0.35-1.4, got {cfg.model.width}")
    if not cfg.model.head_strides or sorted(set(cfg.model.head_strides)) != list(cfg.model.head_strides) \
            or not set(cfg.model.head_strides) <= {8, 16, 32}:
        raise ConfigError(f"model.head_strides: expected an ascending subset of [8, 16, 32], got {cfg.model.head_strides}")
    if cfg.model.pan and 32 not in cfg.model.head_strides:
        raise ConfigError("model.pan: the bottom-up path ends in P5, which no head reads without 32 in "
                          f"model.head_strides (got {cfg.model.head_strides})")
    if cfg.data.imgsz % 32:
        raise ConfigError(f"data.imgsz: must be a multiple of 32 (the network stride), got {cfg.data.imgsz}")
    if cfg.data.train_crop < 0 or cfg.data.train_crop % 32:
        raise ConfigError(f"data.train_crop: expected 0 or a multiple of 32, got {cfg.data.train_crop}")
    if cfg.data.on_error not in ("stop", "skip"):
        raise ConfigError(f"data.on_error: expected stop or skip, got {cfg.data.on_error!r}")
    if not 0 <= cfg.data.max_bad_fraction <= 1:
        raise ConfigError(f"data.max_bad_fraction: expected a fraction in [0, 1], got {cfg.data.max_bad_fraction}")
    if cfg.data.cache and cfg.data.workers > 0:
        raise ConfigError("data.cache: needs data.workers: 0 (worker processes restart every epoch and would "
                          "drop their cache); set data.cache=false to use worker processes")
    if cfg.train.optimizer not in ("sgd", "adamw"):
        raise ConfigError(f"train.optimizer: expected sgd or adamw, got {cfg.train.optimizer!r}")
    if cfg.train.schedule not in ("cosine", "onecycle"):
        raise ConfigError(f"train.schedule: expected cosine or onecycle, got {cfg.train.schedule!r}")
    if cfg.loss.balance not in ("fixed", "uncertainty", "dwa"):
        raise ConfigError(f"loss.balance: expected fixed, uncertainty or dwa, got {cfg.loss.balance!r}")
    if cfg.model.pose_level not in ("own", "finest"):
        raise ConfigError(f"model.pose_level: expected own or finest, got {cfg.model.pose_level!r}")
    if cfg.loss.inst_dice < 0:
        raise ConfigError(f"loss.inst_dice: expected a weight >= 0, got {cfg.loss.inst_dice}")
    if cfg.model.pose_channels < 0:
        raise ConfigError(f"model.pose_channels: expected 0 (= model.head_channels) or a width, got {cfg.model.pose_channels}")
    if cfg.model.pose_blocks < 1:
        raise ConfigError(f"model.pose_blocks: expected at least 1 block, got {cfg.model.pose_blocks}")
    if cfg.model.box_bins < 0 or cfg.model.box_bins == 1:
        raise ConfigError(f"model.box_bins: expected 0 (softplus distances) or >= 2 bins, got {cfg.model.box_bins}")
    lo, hi = cfg.data.augment.mosaic_scale
    if not 0 < lo <= hi:
        raise ConfigError(f"data.augment.mosaic_scale: expected [low, high] with 0 < low <= high, got [{lo}, {hi}]")
    if cfg.loss.box_iou not in ("giou", "ciou"):
        raise ConfigError(f"loss.box_iou: expected giou or ciou, got {cfg.loss.box_iou!r}")
    if cfg.loss.seg_resolution not in ("input", "logits"):
        raise ConfigError(f"loss.seg_resolution: expected input or logits, got {cfg.loss.seg_resolution!r}")
    if cfg.train.amp not in ("auto", "bf16", "fp16", "off"):
        raise ConfigError(f"train.amp: expected auto, bf16, fp16 or off, got {cfg.train.amp!r}")
    if not 0 <= cfg.train.swa_epochs < cfg.train.epochs:
        raise ConfigError(f"train.swa_epochs: expected 0 <= swa_epochs < epochs ({cfg.train.epochs}), "
                          f"got {cfg.train.swa_epochs}")
    if cfg.train.batch_size < 1 or cfg.train.accumulate < 1 or cfg.train.epochs < 1:
        raise ConfigError("train.batch_size, train.accumulate and train.epochs must be >= 1")


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
