"""Training on several data sets at once, each labelling only some tasks, with per-source sampling ratios.

Class-space rule (one model has one head per task, so the sources must agree on one label space):

* **Detection**: the union of the det classes of the sources that label ``det``, matched by exact name.
  The evaluated source (the first with a val split) comes first and keeps its category ids, so its COCO
  json scores the model directly; a name new in a later source gets id ``max(ids) + 1``. A box-labelling
  source is taken as exhaustive for the whole union (its images are negatives for classes it never
  names), so prefer sources whose class lists match and rename classes that differ only in spelling.
* **Segmentation**: the union of the seg classes of the sources that label ``seg``, matched by name
  (VOC's "background" stays its own class); pixels a source does not label are 255 (ignored).
* **Pose**: every pose source must use the same keypoint names in the same order (else an error);
  sources without pose get zero keypoints with ``has_pose`` False.

A task missing from a source's ``tasks`` turns the corresponding ``has_*`` flag off, so the criterion
ignores that task for the source's images instead of reading "no boxes" as "all background".
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from .meta import DatasetMeta
from .sample import IGNORE_INDEX, DataError, Sample, remap_objects


class LabelledSource(Protocol):
    meta: DatasetMeta
    num_keypoints: int
    skipped: list[str]
    instances_path: Path | None
    keypoints_path: Path | None

    def __len__(self) -> int: ...
    def load(self, index: int) -> Sample: ...
    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def _union(names_ids: list[tuple[list[str], list[int]]]) -> tuple[list[str], list[int]]:
    names: list[str] = []
    ids: list[int] = []
    for src_names, src_ids in names_ids:
        for name, cid in zip(src_names, src_ids, strict=True):
            if name in names:
                continue
            names.append(name)
            ids.append(cid if cid not in ids else max(ids) + 1)
    return names, ids


def unify_meta(metas: list[DatasetMeta], tasks: list[list[str]]) -> DatasetMeta:
    """One label space for all sources (rules in the module docstring); sources in priority order."""
    det = _union([(m.det_classes, m.det_category_ids) for m, t in zip(metas, tasks, strict=True) if "det" in t])
    seg = _union([(m.seg_classes, m.seg_category_ids) for m, t in zip(metas, tasks, strict=True) if "seg" in t])
    pose = [m for m, t in zip(metas, tasks, strict=True) if "pose" in t and m.num_keypoints]
    for m in pose[1:]:
        if m.keypoint_names != pose[0].keypoint_names:
            raise DataError(f"pose sources disagree on keypoint names: {pose[0].keypoint_names} vs {m.keypoint_names}")
    if not pose:
        return DatasetMeta(det_classes=det[0], det_category_ids=det[1], seg_classes=seg[0], seg_category_ids=seg[1])
    p = pose[0]
    person = p.det_classes[p.keypoint_class] if p.keypoint_class >= 0 else None
    return DatasetMeta(
        det_classes=det[0], det_category_ids=det[1], seg_classes=seg[0], seg_category_ids=seg[1],
        keypoint_names=p.keypoint_names, skeleton=p.skeleton, flip_index=p.flip_index,
        keypoint_class=det[0].index(person) if person in det[0] else -1, keypoint_sigmas=p.keypoint_sigmas,
    )


class RemappedSource:
    """A source seen through the unified label space, carrying only the tasks it is configured for."""

    def __init__(self, source: LabelledSource, meta: DatasetMeta, tasks: list[str]):
        self.source, self.meta, self.tasks = source, meta, tasks
        own = source.meta
        self.det_map = np.array([meta.det_classes.index(n) if n in meta.det_classes else -1
                                 for n in own.det_classes], np.int64)
        self.seg_lut = np.full(256, IGNORE_INDEX, np.uint8)
        for i, n in enumerate(own.seg_classes):
            if n in meta.seg_classes and i < IGNORE_INDEX:
                self.seg_lut[i] = meta.seg_classes.index(n)
        self.num_keypoints = meta.num_keypoints
        self.pose_ok = "pose" in tasks and own.keypoint_names == meta.keypoint_names and meta.num_keypoints > 0
        self.skipped = source.skipped
        self.instances_path = source.instances_path if "det" in tasks else None
        from ..tasks import get_task

        self.objects_ok = any(get_task(t).uses_objects for t in tasks)  # a task of this source reads object maps
        self.keypoints_path = source.keypoints_path if self.pose_ok else None

    def __len__(self) -> int:
        return len(self.source)

    def image_path(self, index: int) -> Path:
        return self.source.image_path(index)

    def _keep(self, labels: np.ndarray) -> np.ndarray:
        return self.det_map[labels] >= 0 if len(labels) else np.zeros(0, bool)

    def _targets(self, boxes: np.ndarray, labels: np.ndarray, kpts: np.ndarray):
        keep = self._keep(labels)
        out_k = np.zeros((int(keep.sum()), self.num_keypoints, 3), np.float32)
        if self.pose_ok:
            out_k = kpts[keep]
        return boxes[keep], self.det_map[labels[keep]], out_k

    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._targets(*self.source.annotations(index))

    def load(self, index: int) -> Sample:
        s = self.source.load(index)
        boxes, labels, kpts = self._targets(s.boxes, s.labels, s.keypoints)
        has_seg = s.has_seg and "seg" in self.tasks and s.mask is not None
        return Sample(image=s.image, boxes=boxes, labels=labels, keypoints=kpts,
                      mask=self.seg_lut[s.mask] if has_seg else None,
                      has_det=s.has_det and "det" in self.tasks, has_pose=s.has_pose and self.pose_ok,
                      has_seg=has_seg, image_id=s.image_id, path=s.path, extras=s.extras,
                      objects=remap_objects(s.objects, np.nonzero(self._keep(s.labels))[0]) if self.objects_ok else None)


class MixedSource:
    """Sources drawn by ratio: an epoch has ``length`` slots, source s gets ``ratio_s / sum`` of them.

    Each epoch's plan (which source and which of its images fills each slot) is a pure function of
    (seed, epoch), so resume and any worker count see the same data. A source smaller than its share
    is cycled through fresh permutations; a larger one contributes a different subset every epoch.
    """

    def __init__(self, parts: list[RemappedSource], ratios: list[float], seed: int = 0, length: int | None = None):
        if not parts or len(parts) != len(ratios) or any(r <= 0 for r in ratios):
            raise DataError("every data source needs a positive ratio")
        self.parts, self.seed = parts, seed
        self.meta = parts[0].meta
        self.num_keypoints = self.meta.num_keypoints
        self.length = length or sum(len(p) for p in parts)
        share = np.asarray(ratios, np.float64) / sum(ratios) * self.length
        counts = np.floor(share).astype(np.int64)
        counts[np.argsort(counts - share)[: self.length - counts.sum()]] += 1  # largest remainder
        self.counts = counts
        self.skipped = [m for p in parts for m in p.skipped]
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        which, local = [], []
        for s, (part, n) in enumerate(zip(self.parts, self.counts, strict=True)):
            rng = np.random.default_rng([self.seed, epoch, s])
            reps = -(-int(n) // max(1, len(part)))
            idx = np.concatenate([rng.permutation(len(part)) for _ in range(reps)])[:n] if n else np.zeros(0, np.int64)
            which.append(np.full(n, s))
            local.append(idx)
        self.which, self.local = np.concatenate(which), np.concatenate(local)
        self.members = [np.flatnonzero(self.which == s) for s in range(len(self.parts))]

    def __len__(self) -> int:
        return self.length

    def group_members(self, index: int) -> np.ndarray:
        """Slots of the same source (mosaic/mixup partners must label the same tasks)."""
        return self.members[self.which[index]]

    def load(self, index: int) -> Sample:
        return self.parts[self.which[index]].load(int(self.local[index]))

    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.parts[self.which[index]].annotations(int(self.local[index]))
