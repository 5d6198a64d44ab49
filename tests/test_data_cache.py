"""data.cache: decoded samples kept in RAM are read from disk once and leave training batches unchanged."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mtnet.config import AugmentConfig, ConfigError
from mtnet.data.build import build_sources
from mtnet.data.cache import CachedSource
from mtnet.data.coco import CocoSource
from mtnet.data.dataset import MultiTaskDataset, collate
from mtnet.data.transforms import TrainTransform
from tests.conftest import tiny_config


@pytest.fixture()
def data_copy(synthetic_root, tmp_path):
    """A private copy: these tests delete image files."""
    return shutil.copytree(synthetic_root, tmp_path / "data")


def _batches(source, epochs: int = 2) -> list[dict]:
    aug = AugmentConfig(mosaic=0.5, mixup=0.5, cutout=0.5)
    ds = MultiTaskDataset(source, TrainTransform(96, aug, source.meta.flip_index), seed=3, mosaic=aug.mosaic,
                          mixup=aug.mixup)
    out = []
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        out.append(collate([ds[i] for i in range(len(ds))]))
    return out


def test_cached_training_batches_equal_uncached_and_disk_is_read_once(data_copy):
    plain = _batches(CocoSource(data_copy, "train"))
    cached_source = CachedSource(CocoSource(data_copy, "train"))
    cached = _batches(cached_source, epochs=1)
    assert len(cached_source._samples) == len(cached_source)
    shutil.rmtree(cached_source.image_path(0).parent)  # every later epoch must come from RAM
    cached += _batches(cached_source, epochs=2)[1:]
    for a, b in zip(plain, cached, strict=True):
        for key in ("images", "boxes", "labels", "keypoints", "masks"):
            assert np.array_equal(a[key].numpy(), b[key].numpy()), key
    with pytest.raises(ValueError, match="read-only"):  # a transform writing into its input fails loudly
        cached_source.load(0).image[0, 0] = 0


def test_cache_respects_its_memory_budget(data_copy):
    source = CocoSource(data_copy, "train")
    one = CachedSource(source, max_bytes=10**12)
    one.load(0)
    budget = int(one.cached_bytes * 2.5)  # room for two samples (all images have the same size)
    cached = CachedSource(source, max_bytes=budget)
    with pytest.warns(UserWarning, match="RAM budget"):
        for i in range(4):
            cached.load(i)
    assert len(cached._samples) == 2 and cached.cached_bytes <= budget
    source.image_path(3).unlink()
    with pytest.raises(Exception, match="not found"):  # beyond the budget, samples still come from disk
        cached.load(3)
    assert cached.load(1).image.shape == (160, 160, 3)


def test_config_wraps_the_train_source_only_and_rejects_worker_processes(synthetic_root, tmp_path):
    train, val = build_sources(tiny_config(synthetic_root, tmp_path, "data.cache=true"), progress=False)
    assert isinstance(train, CachedSource) and not isinstance(val, CachedSource)
    assert train.meta.det_classes == val.meta.det_classes
    with pytest.raises(ConfigError, match="data.cache"):
        tiny_config(synthetic_root, tmp_path, "data.cache=true", "data.workers=2")
