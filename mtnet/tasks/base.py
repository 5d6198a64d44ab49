"""The contract of a task plug-in: everything the network, criterion, decoder, evaluator, drawing, export
metadata and calibration need to know about one task, in one object.

The shared machinery (``MultiTaskNet``, ``MultiTaskCriterion``, ``collate``, ``Predictor``, ``evaluate``,
``draw_prediction``, ``model.json``, calibration) loops over the enabled tasks and calls these hooks; it
never names a task. Tasks run in registry order, dependencies first, and share a per-call ``context`` dict:
detection puts its anchor points and label assignment there, pose reads them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..config import LossConfig
    from ..data.meta import DatasetMeta
    from ..data.sample import Sample


@dataclass(frozen=True)
class HeadSpec:
    """Widths the model config gives every head builder."""

    neck_channels: int
    head_channels: int
    seg_channels: int
    num_levels: int = 1  # pyramid levels the per-anchor heads read
    share_levels: bool = True  # one set of head weights for all levels (False: one per level)
    pose_level: str = "own"  # keypoints from each anchor's own level, or from the finest level ("finest")
    box_bins: int = 0  # detection box regression: 0 = softplus distances, n > 1 = n-bin distributions (DFL)
    pose_channels: int = 0  # pose tower width (0 = head_channels)
    pose_blocks: int = 2  # depthwise-separable blocks per pose tower


@dataclass
class Features:
    """What the backbone and neck computed for one forward pass."""

    images: torch.Tensor  # the normalised network input [B, 3, H, W]
    pyramid: list[torch.Tensor]  # neck outputs at strides 8, 16, 32
    c2: torch.Tensor | None  # stride-4 lateral (present when a task asks for it)
    head_levels: list[torch.Tensor]  # the pyramid levels read by per-anchor heads (``model.head_strides``)
    strides: tuple[int, ...]  # their strides
    deploy: bool  # deploy-mode forward (export / inference graph)


@dataclass(frozen=True)
class OutputDef:
    """One deploy-graph output, as documented in ``model.json``.

    ``per_anchor``: indexed by anchor like ``boxes`` ([B, A, ...]); an in-graph NMS keeps the same rows of it.
    ``float_tail``: the in-graph decode ops after the last conv stay float32 in full-int8 models (pixel
    coordinates need more than 256 levels).
    ``labels``: the ``model.json`` list that names this output's entries (``"labels.det"``, ``"labels.seg"``,
    ``"keypoints.names"``); the TFLite metadata attaches it as a labels file. ``labels_kind``: ``"axis"`` (one
    name per index of the last axis: class scores), ``"value"`` (values are class ids: argmax maps, the class
    column of NMS rows) or ``"parts"`` (names of the groups along the last axis, e.g. K keypoints of K*3).
    """

    name: str
    axes: str
    meaning: str
    per_anchor: bool = False
    float_tail: bool = False
    labels: str | None = None
    labels_kind: str = "axis"


@dataclass
class DecodeOptions:
    """Thresholds a predictor applies when decoding (one set for every task)."""

    conf: float
    iou: float
    max_det: int
    multi_label: bool
    imgsz: int


class TaskEvaluator(ABC):
    """Accumulates one task's predictions over a split, then returns its metrics."""

    @abstractmethod
    def update(self, sample: Sample, prediction: Any) -> None: ...

    @abstractmethod
    def result(self) -> dict[str, Any]: ...


class CocoResultsEvaluator(TaskEvaluator):
    """Collects COCO result entries per image, then scores them against a COCO ground-truth json."""

    def __init__(self, gt_path: Any, entries: Callable[[Sample, Any], list[dict]],
                 score: Callable[[Any, list[dict]], dict[str, Any]]):
        self.gt_path, self.entries, self.score = gt_path, entries, score
        self.results: list[dict] = []

    def update(self, sample: Sample, prediction: Any) -> None:
        self.results += self.entries(sample, prediction)

    def result(self) -> dict[str, Any]:
        return self.score(self.gt_path, self.results)


class Task(ABC):
    """Base class of task plug-ins: a subclass must build its head, run it and compute its loss; the other
    hooks default to "nothing" (no deploy output, no decode, no metrics, nothing drawn)."""

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()  # tasks that must be enabled with this one (pose needs det)
    uses_c2: ClassVar[bool] = False  # the neck must provide the stride-4 lateral
    uses_objects: ClassVar[bool] = False  # its labels are the samples' per-object pixel maps (``Sample.objects``):
    # a source configured without this task drops them
    loss_logs: ClassVar[tuple[str, ...]] = ()  # loss values the loss reports per step (metrics.csv, curves)
    diagnostic_logs: ClassVar[tuple[str, ...]] = ()  # other per-step values it reports (metrics.csv only)
    metric_keys: ClassVar[tuple[str, ...]] = ()  # headline metrics: metrics.csv columns, export report, int8 drop
    gated_metric: ClassVar[str | None] = None  # the metric an export's accuracy-drop budget gates
    fitness_metric: ClassVar[str | None] = None  # the metric averaged into the checkpoint-selection fitness
    summary_rows: ClassVar[tuple[tuple[str, str], ...]] = ()  # (label, metrics key) rows of the terminal table
    draw_order: ClassVar[int] = 50  # lower draws first (dense overlays under boxes)

    # ---- data
    def check_data(self, meta: DatasetMeta) -> None:
        """Raise ValueError when the data set lacks what this task needs (default: any data set will do)."""
        return None

    def labelled(self, sample: Sample) -> bool:
        """Whether ``sample``'s source labels this task (partial labels: unlabelled samples add no loss)."""
        return bool(getattr(sample, f"has_{self.name}", False))

    def collate(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        """This task's batched targets (padded); ``has_<name>`` flags are added by the shared collate."""
        return {}

    def calibration_items(self, sample: Sample, meta: DatasetMeta) -> set[str]:
        """What a PTQ representative set must cover for this task, e.g. ``{"task:seg", "seg:road"}``."""
        return set()

    # ---- model
    default_loss_weight = 1.0  # weight when ``loss.task_weights`` does not name the task

    def loss_weight(self, cfg: LossConfig) -> float:
        """This task's weight in the multi-task loss (built-ins read their ``loss.<name>`` key)."""
        return float(cfg.task_weights.get(self.name, self.default_loss_weight))

    @abstractmethod
    def build_head(self, meta: DatasetMeta, spec: HeadSpec) -> nn.Module:
        """This task's head, built from the data set's labels and the model config's widths."""

    @abstractmethod
    def forward(self, head: nn.Module, feats: Features, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Raw training-mode tensors of this task (added to ``out``, which earlier tasks filled)."""

    def outputs(self, model: nn.Module) -> list[OutputDef]:
        """The deploy outputs, in graph order."""
        return []

    def deploy(self, model: nn.Module, out: dict[str, torch.Tensor], images: torch.Tensor) -> list[torch.Tensor]:
        """Deploy-mode tensors for ``outputs(model)``: decoded in-graph where that is cheap and delegate-safe."""
        return []

    # ---- training
    @abstractmethod
    def loss(self, out: dict[str, torch.Tensor], batch: dict[str, Any], context: dict[str, Any],
             meta: DatasetMeta, cfg: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
        """This task's loss (over the samples that label it) and its log values."""

    # ---- inference
    def decode(self, outputs: dict[str, np.ndarray], index: int, result: dict[str, Any], scale: float,
               shape: tuple[int, int], opts: DecodeOptions) -> None:
        """Decode image ``index`` of a batch of deploy outputs into ``result[self.name]`` (original pixels;
        ``scale`` is the letterbox scale, ``shape`` the original (H, W)); default: a task without outputs."""
        return None

    def evaluator(self, meta: DatasetMeta, source: Any) -> TaskEvaluator | None:
        """An accumulator for ``mtnet.eval.evaluate``; None when ``source`` has no ground truth for it."""
        return None

    def draw(self, canvas: np.ndarray, prediction: Any, meta: DatasetMeta) -> np.ndarray:
        """Draw this task's result onto an RGB uint8 image; returns the new image."""
        return canvas


@dataclass
class TaskSet:
    """The enabled tasks of a model, dependencies checked, in registry order."""

    tasks: list[Task] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def __iter__(self):
        return iter(self.tasks)

    def __contains__(self, name: str) -> bool:
        return name in self.names
