"""What a model must know about its data set: class names, category ids, keypoints, skeleton, flip map.

It travels with every checkpoint and export so predictions can be mapped back to the data set's ids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# COCO person keypoint sigmas (Ronchi & Perona, used by COCOeval for OKS).
COCO_KPT_SIGMAS = [
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
]


@dataclass
class DatasetMeta:
    det_classes: list[str] = field(default_factory=list)  # contiguous label -> name
    det_category_ids: list[int] = field(default_factory=list)  # contiguous label -> data set category id
    seg_classes: list[str] = field(default_factory=list)
    seg_category_ids: list[int] = field(default_factory=list)
    keypoint_names: list[str] = field(default_factory=list)
    skeleton: list[list[int]] = field(default_factory=list)  # 0-based keypoint index pairs
    flip_index: list[int] = field(default_factory=list)  # keypoint index after a horizontal flip
    keypoint_class: int = -1  # contiguous det label that carries keypoints (-1: none)
    keypoint_sigmas: list[float] = field(default_factory=list)
    det_class_weights: list[float] = field(default_factory=list)  # class-balanced loss weights (empty: off)

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetMeta:
        return cls(**data)


def flip_index_from_names(names: list[str]) -> list[int]:
    """Pair ``left_x`` with ``right_x`` (COCO naming); unpaired keypoints map to themselves."""
    index = {n: i for i, n in enumerate(names)}
    out = []
    for i, n in enumerate(names):
        if n.startswith("left_"):
            out.append(index.get("right_" + n[5:], i))
        elif n.startswith("right_"):
            out.append(index.get("left_" + n[6:], i))
        else:
            out.append(i)
    return out


def default_sigmas(num_keypoints: int) -> list[float]:
    return list(COCO_KPT_SIGMAS) if num_keypoints == 17 else [0.05] * num_keypoints
