"""Keep decoded training samples in RAM (``data.cache: true``; YOLOv5's ``--cache ram``).

Reading a sample (JPEG decode + label PNG + annotation arrays) is about a third of the data time of a
CPU step on small images; a small data set decoded once saves that on every later epoch. Only the
un-augmented sample is kept, so augmentation still differs every epoch. Arrays are frozen (read-only)
so a transform that wrote into its input would fail loudly instead of corrupting the cache.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np

from .sample import Sample

UNKNOWN_MEMORY_BUDGET = 2 * 1024**3  # cache cap where the platform does not report free memory (e.g. macOS)


def available_memory_bytes() -> int:
    """Physical memory currently free (sysconf, Linux); 0 where the platform does not say."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def _arrays(sample: Sample) -> list[np.ndarray]:
    return [a for a in (sample.image, sample.boxes, sample.labels, sample.keypoints, sample.mask,
                                 sample.objects) if a is not None]


def _freeze(sample: Sample) -> Sample:
    for a in _arrays(sample):
        a.flags.writeable = False
    return sample


class CachedSource:
    """Wraps a deterministic source (``load(i)`` always returns the same sample) and memoises ``load``.

    Caching stops, with one warning, once the cache would exceed ``max_bytes`` (default: half the memory
    free when the cache is created, or 2 GiB where that is unknown); the remaining samples are then read
    from disk as before.
    """

    def __init__(self, source, max_bytes: int | None = None):
        self.source = source
        if max_bytes is None:
            max_bytes = available_memory_bytes() // 2 or UNKNOWN_MEMORY_BUDGET
        self.max_bytes = max_bytes
        self.cached_bytes = 0
        self._samples: dict[int, Sample] = {}
        self._full = False

    def __getattr__(self, name: str):
        if name == "source":  # not yet set (unpickling): avoid recursing through __getattr__
            raise AttributeError(name)
        return getattr(self.source, name)

    def __len__(self) -> int:
        return len(self.source)

    def load(self, index: int) -> Sample:
        sample = self._samples.get(index)
        if sample is None:
            sample = _freeze(self.source.load(index))
            size = sum(a.nbytes for a in _arrays(sample))
            if self.cached_bytes + size <= self.max_bytes:
                self._samples[index] = sample
                self.cached_bytes += size
            elif not self._full:
                self._full = True
                warnings.warn(f"data.cache: RAM budget of {self.max_bytes / 1e9:.1f} GB reached after "
                              f"{len(self._samples)} of {len(self.source)} samples; the rest are read from disk",
                              stacklevel=2)
        # a fresh Sample each time: transforms may rebind its fields (never write into its arrays)
        return dataclasses.replace(sample, extras=dict(sample.extras))
