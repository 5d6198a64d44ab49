"""Bad data never costs a run: unreadable train images are skipped (counted, named, bounded), every
annotation error is listed before training, and a VOC set with its own classes checks and trains."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mtnet.cli import main
from mtnet.data.build import build_sources, build_train_dataset
from mtnet.data.sample import DataError
from mtnet.engine.logging import read_rows
from mtnet.engine.trainer import Trainer, TrainingError
from mtnet.workflows import train_and_report
from tests.test_data_checks import _jpeg_instead_of, cut_short
from tests.test_data_formats import ROBOTS, write_coco, write_voc
from tests.test_data_training import _cfg


def _coco_with_two_unreadable_images(tmp_path):
    """8 train images: #2 a JPEG cut short (its header reads), #5 a zero-byte PNG."""
    root = write_coco(tmp_path / "coco", "train", 8)
    write_coco(root, "val", 2, seed=5)
    jpg = root / "train" / _jpeg_instead_of(root, "train", 2)
    cut_short(jpg)
    png = sorted((root / "train").glob("*.png"))[4]  # image 5 (image 2 is the .jpg now)
    png.write_bytes(b"")
    sources = f"[{{type: coco, root: {root}, val_split: val, tasks: [det, seg, pose]}}]"
    return sources, jpg, png


def test_unreadable_images_are_skipped_counted_and_named(tmp_path, capsys):
    sources, jpg, png = _coco_with_two_unreadable_images(tmp_path)
    cfg = _cfg(tmp_path, sources, "data.workers=1", "data.cache=false",
               "data.max_bad_fraction=0.3")  # counts cross the worker process
    metrics = train_and_report(cfg, progress=False)
    [row] = read_rows(f"{metrics['run_dir']}/metrics.csv")
    assert row["skipped"] == "2"
    saved = json.loads((tmp_path / "runs" / cfg.name / "metrics.json").read_text())
    assert saved["skipped_per_epoch"] == [2]
    assert sorted(m.split(" (")[0] for m in saved["skipped_samples"]) == [
        f"{jpg}: image id 1002: cannot read image", f"{png}: image id 1005: cannot read image"]
    assert "truncated" in " ".join(saved["skipped_samples"])
    out = capsys.readouterr().out
    assert out.count(f"{jpg}: image id 1002") == 1 and out.count(f"{png}: image id 1005") == 1  # logged once


def test_skip_keeps_the_batch_full_and_stop_raises(tmp_path):
    sources, jpg, png = _coco_with_two_unreadable_images(tmp_path)
    cfg = _cfg(tmp_path, sources)
    train, _ = build_sources(cfg)
    ds = build_train_dataset(cfg, train, train.meta)
    slot = int(np.flatnonzero(train.local == 2)[0])  # the epoch's slot holding image #2
    s = ds[slot]  # replaced by the next slot's image, deterministically
    assert s.extras["skipped"][0].startswith(f"{jpg}: image id 1002: cannot read image")
    assert (ds[slot].image == s.image).all() and s.image.shape == (64, 64, 3)
    assert "skipped" not in ds[int(np.flatnonzero(train.local == 0)[0])].extras
    ds.on_error = "stop"
    with pytest.raises(DataError, match=f"{png}: image id 1005: cannot read image"):
        ds[int(np.flatnonzero(train.local == 5)[0])]


def test_more_bad_samples_than_max_bad_fraction_stop_training(tmp_path):
    sources, jpg, png = _coco_with_two_unreadable_images(tmp_path)
    with pytest.raises(TrainingError, match=r"of the 8 samples of epoch 1 could not be read \(data.max_bad_fraction"):
        Trainer(_cfg(tmp_path, sources), progress=False).fit()  # default 1%: one bad image of 8 is too many


def test_every_annotation_error_is_listed_before_training(tmp_path):
    root = write_coco(tmp_path / "coco", "train", 6)
    write_coco(root, "val", 2, seed=5)
    path = root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    a = data["annotations"]
    a[0]["category_id"] = 999
    a[1]["bbox"] = [1, 2, 3]
    a[2]["bbox"][3] = -4
    a[4]["id"] = a[3]["id"]
    path.write_text(json.dumps(data))
    voc = write_voc(tmp_path / "voc", "train", 4)
    xmls = sorted((voc / "Annotations").glob("*.xml"))
    xmls[0].write_text(xmls[0].read_text().replace("<name>", "<name>zebra", 1))
    xmls[2].write_text(xmls[2].read_text().replace("<xmin>", "<xmin>x", 1))
    sources = (f"[{{type: coco, root: {root}, val_split: val, tasks: [det, pose]}},"
               f" {{type: voc, root: {voc}, tasks: [seg]}}]")
    with pytest.raises(DataError) as e:
        Trainer(_cfg(tmp_path, sources), progress=False)
    text = str(e.value)
    assert text.startswith("6 annotation error(s) found before training")
    for where, what in [(f"annotation id {a[0]['id']}", "unknown category_id 999"),
                        (f"annotation id {a[1]['id']}", "'bbox' must be 4 finite numbers"),
                        (f"annotation id {a[2]['id']}", "negative box size"),
                        (f"annotation id {a[3]['id']}", "duplicate annotation id"),
                        ("object 0", "unknown class name 'zebra"), ("object 0", "bndbox needs numeric")]:
        assert any(where in line and what in line for line in text.splitlines()), f"{where} {what}\n{text}"


def test_voc_set_with_its_own_classes_checks_and_trains(tmp_path, capsys):
    root = write_voc(tmp_path / "voc", "train", 6, labelmap=ROBOTS, rgb_masks=True)
    write_voc(root, "val", 2, seed=3, labelmap=ROBOTS, rgb_masks=True)
    assert main(["data", "check", str(root)]) == 0, capsys.readouterr().out
    cfg = _cfg(tmp_path, f"[{{type: voc, root: {root}, val_split: val, tasks: [det, seg]}}]", "model.tasks=[det, seg]")
    trainer = Trainer(cfg, progress=False)
    assert trainer.meta.det_classes == ["ball", "cone", "robot"] and len(trainer.meta.seg_classes) == 4
    metrics = trainer.fit().metrics
    assert 0 <= metrics["mIoU"] <= 1
