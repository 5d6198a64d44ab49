"""Training runs a few steps on each real format and on a mix; partial labels reach the criterion intact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtnet.config import load_config
from mtnet.data.build import build_sources, build_train_dataset
from mtnet.data.dataset import collate
from mtnet.data.sample import IGNORE_INDEX
from mtnet.engine.checkpoint import load_checkpoint
from mtnet.engine.trainer import Trainer
from tests.test_data_formats import write_coco, write_voc

TINY = ["data.imgsz=64", "model.width=0.35", "model.neck_channels=16", "model.head_channels=16",
        "model.seg_channels=16", "train.epochs=1", "train.batch_size=4", "train.warmup_epochs=0.5",
        "train.eval_interval=1", "eval.num_examples=1", "data.synthetic=null"]


def _cfg(tmp_path, sources, *extra):
    return load_config("quickstart", TINY + [f"output_dir={tmp_path / 'runs'}", f"data.sources={sources}", *extra])


def _train(cfg) -> dict:
    result = Trainer(cfg, progress=False).fit()
    assert (result.run_dir / "last.pt").is_file()
    return result.metrics


@pytest.mark.parametrize("flags,tasks,seg_classes", [
    ({"stuff_json": True}, "[det, seg, pose]", 4),
    ({"panoptic": True}, "[det, seg, pose]", 4),
    ({}, "[det, seg]", 3),  # masks rasterised from polygons: background + 2 things
])
def test_trains_on_coco_formats(tmp_path, flags, tasks, seg_classes):
    write_coco(tmp_path / "coco", "train", 4, **flags)
    write_coco(tmp_path / "coco", "val", 2, seed=5, **flags)
    sources = f"[{{type: coco, root: {tmp_path / 'coco'}, val_split: val, tasks: {tasks}}}]"
    cfg = _cfg(tmp_path, sources, f"model.tasks={tasks}")
    trainer = Trainer(cfg, progress=False)
    assert len(trainer.meta.seg_classes) == seg_classes
    metrics = trainer.fit().metrics
    assert "mIoU" in metrics and "bbox_AP" in metrics
    assert ("kpt_AP" in metrics) == ("pose" in tasks)


def test_trains_on_voc(tmp_path):
    write_voc(tmp_path / "voc", "train", 4)
    write_voc(tmp_path / "voc", "val", 2, seed=3)
    cfg = _cfg(tmp_path, f"[{{type: voc, root: {tmp_path / 'voc'}, val_split: val, tasks: [det, seg]}}]",
               "model.tasks=[det, seg]")
    metrics = _train(cfg)
    assert "mIoU" in metrics and "bbox_AP" in metrics  # boxes scored against a COCO json written from the XML


def _mixed_cfg(tmp_path, *extra):
    write_coco(tmp_path / "coco", "train", 8, keypoints=True)
    write_coco(tmp_path / "coco", "val", 4, seed=5)
    write_voc(tmp_path / "voc", "train", 8)
    sources = (f"[{{type: coco, root: {tmp_path / 'coco'}, val_split: val, tasks: [det, pose], ratio: 1}},"
               f" {{type: voc, root: {tmp_path / 'voc'}, tasks: [seg], ratio: 3}}]")
    return _cfg(tmp_path, sources, *extra)


def test_mixed_sources_keep_partial_labels(tmp_path):
    cfg = _mixed_cfg(tmp_path)
    train, val = build_sources(cfg)
    meta = train.meta
    assert meta.det_classes == ["person", "dog"] and meta.det_category_ids == [1, 18]  # evaluated source's ids
    assert meta.seg_classes[0] == "background" and len(meta.seg_classes) == 21  # VOC's seg classes only
    assert meta.num_keypoints == 17 and meta.keypoint_class == 0
    assert list(train.counts) == [4, 12]  # 16 slots split 1:3
    ds = build_train_dataset(cfg, train, meta)
    batch = collate([ds[i] for i in range(len(ds))])
    from_coco = ~batch["has_seg"]
    assert from_coco.sum() == 4
    assert batch["has_det"][from_coco].all() and batch["has_pose"][from_coco].all()
    assert not batch["has_det"][~from_coco].any() and not batch["has_pose"][~from_coco].any()
    assert (batch["masks"][from_coco] == IGNORE_INDEX).all()  # no mask = ignore, not background
    assert batch["keypoints"].shape[2] == 17
    seg_values = batch["masks"][~from_coco].unique()
    assert set(seg_values.tolist()) - {IGNORE_INDEX} <= set(range(21))


def test_mixed_sampling_plan_changes_per_epoch_and_is_reproducible(tmp_path):
    train, _ = build_sources(_mixed_cfg(tmp_path))
    train.set_epoch(3)
    a = train.local.copy()
    train.set_epoch(4)
    b = train.local.copy()
    train.set_epoch(3)
    assert np.array_equal(train.local, a) and not np.array_equal(a, b)


def test_trains_on_a_mix_with_mosaic_mixup_and_class_balance(tmp_path):
    cfg = _mixed_cfg(tmp_path, "data.augment.mosaic=1.0", "data.augment.mixup=0.5", "data.class_balance=true",
                     "train.batch_size=8")
    trainer = Trainer(cfg, progress=False)
    assert len(trainer.meta.det_class_weights) == 2
    metrics = trainer.fit().metrics
    assert "bbox_AP" in metrics and "kpt_AP" in metrics
    saved = load_checkpoint(trainer.run_dir / "best.pt")["meta"]
    assert saved["det_category_ids"] == [1, 18] and saved["seg_classes"][0] == "background"


def test_class_balanced_weights_reach_the_detection_loss(tmp_path):
    from mtnet.data.preprocess import normalize
    from mtnet.losses.criterion import MultiTaskCriterion
    from mtnet.models import build_model

    cfg = _mixed_cfg(tmp_path, "data.class_balance=true", "model.tasks=[det]")
    train, _ = build_sources(cfg)
    assert train.meta.det_class_weights[1] > train.meta.det_class_weights[0]  # fewer dogs than persons
    torch.manual_seed(0)
    model = build_model(cfg.model, train.meta)
    batch = collate([build_train_dataset(cfg, train, train.meta)[i] for i in range(4)])
    out = model(normalize(batch["images"]))
    losses = {}
    for name, weights in (("off", []), ("ones", [1.0, 1.0]), ("cb", train.meta.det_class_weights)):
        train.meta.det_class_weights = weights
        losses[name] = MultiTaskCriterion(train.meta, model.tasks, cfg.loss)(out, batch)[1]["cls"]
    assert losses["off"] == pytest.approx(losses["ones"]) and losses["cb"] != pytest.approx(losses["off"])
