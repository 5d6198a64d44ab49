"""torch Dataset over a source + transform, and the collate function that pads targets per batch."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from .meta import DatasetMeta
from .mosaic import Mosaic, mixup
from .sample import DataError, Sample

MAX_REPLACEMENTS = 16  # consecutive unreadable samples before the data set is taken as broken


class Source(Protocol):
    meta: DatasetMeta
    num_keypoints: int

    def __len__(self) -> int: ...
    def load(self, index: int) -> Sample: ...


class MultiTaskDataset(Dataset):
    """Applies ``transform(sample, seed)`` with seed = f(seed, epoch, index) so every epoch differs but
    any (epoch, index) pair is reproducible: exact resume and worker-count-independent augmentation.

    Optional mosaic / mixup draw their partner images from the same source (``group_members``) so all
    parts label the same tasks. ``set_epoch`` turns them (and the transform's cutout) off for the last
    ``no_aug_epochs`` of ``total_epochs``, and advances a mixed source's sampling plan.

    ``on_error="skip"``: a sample whose files fail to load (``DataError``) is replaced by the next index,
    so the batch keeps its size and the run its determinism; the failures ride along in
    ``extras["skipped"]`` because DataLoader workers are other processes: the trainer logs and counts them.
    """

    def __init__(self, source: Source, transform, seed: int = 0, *, mosaic: float = 0.0, mixup: float = 0.0,
                 no_aug_epochs: int = 0, total_epochs: int = 0, on_error: str = "stop",
                 mosaic_scale: tuple[float, float] = (0.5, 1.5)):
        self.source = source
        self.on_error = on_error
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.mosaic_p, self.mixup_p = mosaic, mixup
        self.no_aug_epochs, self.total_epochs = no_aug_epochs, total_epochs
        self.strong = True
        self.mosaic = Mosaic(transform.size, tuple(mosaic_scale)) if mosaic > 0 else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.source, "set_epoch"):
            self.source.set_epoch(epoch)
        self.strong = not (self.no_aug_epochs and epoch >= self.total_epochs - self.no_aug_epochs)
        if hasattr(self.transform, "strong"):
            self.transform.strong = self.strong

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Sample:
        skipped: list[str] = []
        for attempt in range(min(MAX_REPLACEMENTS, len(self))):
            key = [self.seed, self.epoch, index] + ([attempt] if attempt else [])  # a replacement gets its own draw
            try:
                seed = int(np.random.SeedSequence(key).generate_state(1)[0])
                sample = self._item((index + attempt) % len(self), seed)
            except DataError as e:
                if self.on_error != "skip":
                    raise
                skipped.append(str(e))
                continue
            if skipped:
                sample.extras = {**sample.extras, "skipped": skipped}
            return sample
        raise DataError(f"{len(skipped)} samples in a row failed to load; the last: {skipped[-1]}")

    def _item(self, index: int, seed: int) -> Sample:
        if not self.strong or (self.mosaic_p <= 0 and self.mixup_p <= 0):
            return self.transform(self.source.load(index), seed)
        rng = np.random.default_rng(seed)
        sample = self._mosaic_or_single(index, rng)
        if rng.random() < self.mixup_p:
            sample = mixup(sample, self._mosaic_or_single(self._partner(index, rng), rng), rng)
        return sample

    def _partner(self, index: int, rng: np.random.Generator) -> int:
        members = self.source.group_members(index) if hasattr(self.source, "group_members") else None
        return int(rng.choice(members)) if members is not None and len(members) else int(rng.integers(len(self)))

    def _mosaic_or_single(self, index: int, rng: np.random.Generator) -> Sample:
        if self.mosaic is not None and rng.random() < self.mosaic_p:
            indices = [index] + [self._partner(index, rng) for _ in range(3)]
            tiles = [self.transform(self.source.load(i), int(rng.integers(2**31))) for i in indices]
            return self.mosaic(tiles, int(rng.integers(2**31)))
        return self.transform(self.source.load(index), int(rng.integers(2**31)))


def collate(samples: list[Sample]) -> dict[str, Any]:
    """Stack images (uint8 NHWC); every registered task adds its padded targets and ``has_<task>`` flags."""
    from ..tasks import get_task, list_tasks

    batch: dict[str, Any] = {"images": torch.from_numpy(np.stack([s.image for s in samples]))}
    for name in list_tasks():
        task = get_task(name)
        batch.update(task.collate(samples))
        batch[f"has_{name}"] = torch.tensor([task.labelled(s) for s in samples])
    return {
        **batch,
        "image_ids": [s.image_id for s in samples],
        "paths": [s.path for s in samples],
        "extras": [s.extras for s in samples],
    }
