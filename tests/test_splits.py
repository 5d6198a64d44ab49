"""``open_split`` is the one way to open a config's data: it honours ``data.sources`` (COCO and VOC), a
``data_root`` override, and gives a VOC val split a COCO box ground truth so box AP is scored; training,
``mtnet eval`` and ``mtnet export`` all read through it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mtnet.config import ConfigError, load_config
from mtnet.data.build import describe_split, open_split
from mtnet.data.voc import VocSource
from mtnet.eval.coco import coco_bbox_metrics
from tests.test_data_formats import write_coco, write_voc
from tests.test_data_training import TINY


def _voc_cfg(tmp_path: Path, *extra: str):
    """Tiny det+seg model trained on a VOC source; ``data.root`` is a COCO decoy that must not be read."""
    write_voc(tmp_path / "voc", "train", 4)
    write_voc(tmp_path / "voc", "val", 3, seed=3)
    write_coco(tmp_path / "decoy", "train", 5, keypoints=False)
    write_coco(tmp_path / "decoy", "val", 5, seed=7, keypoints=False)
    sources = f"[{{type: voc, root: {tmp_path / 'voc'}, val_split: val, tasks: [det, seg]}}]"
    return load_config("quickstart", TINY + [f"output_dir={tmp_path / 'runs'}", f"data.root={tmp_path / 'decoy'}",
                                             f"data.sources={sources}", "model.tasks=[det, seg]", *extra])


def _perfect_results(source) -> list[dict]:
    """COCO result entries equal to the ground-truth boxes of every labelled image."""
    results = []
    for i in range(len(source)):
        boxes, labels, _ = source.annotations(i)
        for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist(), strict=True):
            results.append({"image_id": i, "category_id": source.meta.det_category_ids[label],
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 0.9})
    return results


def test_voc_val_split_of_data_sources_has_a_box_ground_truth(tmp_path):
    cfg = _voc_cfg(tmp_path)
    (tmp_path / "voc" / "Annotations" / "2007_030002.xml").unlink()  # the third val image: no box labels
    val = open_split(cfg, "val")
    assert isinstance(val.source, VocSource) and len(val) == 3
    gt = json.loads(Path(val.instances_path).read_text())
    assert [im["id"] for im in gt["images"]] == [0, 1, 2]
    assert {c["id"] for c in gt["categories"]} == set(val.meta.det_category_ids)
    perfect = _perfect_results(val)
    assert coco_bbox_metrics(val.instances_path, perfect)["bbox_AP"] == pytest.approx(1.0)
    # a detection on the image without box labels is ignored (crowd region), not a false positive
    stray = {"image_id": 2, "category_id": val.meta.det_category_ids[0], "bbox": [1, 1, 10, 10], "score": 0.99}
    assert coco_bbox_metrics(val.instances_path, perfect + [stray])["bbox_AP"] == pytest.approx(1.0)
    # and the scorer is not a constant: shifted boxes score lower
    shifted = [{**r, "bbox": [r["bbox"][0] + 6, *r["bbox"][1:]]} for r in perfect]
    assert coco_bbox_metrics(val.instances_path, shifted)["bbox_AP"] < 0.5


def test_voc_folder_as_data_root_and_as_override(tmp_path):
    write_voc(tmp_path / "voc", "val", 2)
    write_coco(tmp_path / "coco", "val", 3)
    cfg = load_config("quickstart", ["data.synthetic=null", f"data.root={tmp_path / 'voc'}"])
    val = open_split(cfg, "val")
    assert isinstance(val, VocSource) and val.instances_path is not None
    coco_cfg = load_config("quickstart", ["data.synthetic=null", f"data.root={tmp_path / 'coco'}"])
    assert len(open_split(coco_cfg, "val")) == 3
    assert isinstance(open_split(coco_cfg, "val", data_root=tmp_path / "voc"), VocSource)
    assert describe_split(coco_cfg, "val", data_root=tmp_path / "voc") == f"{tmp_path / 'voc'} [val]"


def test_data_root_override_of_sources_keeps_the_evaluated_source_tasks(tmp_path):
    cfg = _voc_cfg(tmp_path)
    write_voc(tmp_path / "other", "val", 2, seed=5)
    meta = open_split(cfg, "val").meta  # a trained model's label space (the other folder has no train split)
    val = open_split(cfg, "val", data_root=tmp_path / "other", meta=meta)
    assert len(val) == 2 and val.tasks == ["det", "seg"] and val.meta is meta
    assert describe_split(cfg, "train") == f"{tmp_path / 'voc'} [train]"


def test_train_split_mixes_sources_and_unknown_split_is_an_error(tmp_path):
    cfg = _voc_cfg(tmp_path)
    train = open_split(cfg, "train")
    assert len(train) == 4 and train.meta.det_classes == open_split(cfg, "val").meta.det_classes
    with pytest.raises(ConfigError, match="train, val"):
        open_split(cfg, "test")


@pytest.fixture(scope="module")
def voc_run(tmp_path_factory) -> Path:
    from mtnet.engine.trainer import Trainer

    tmp = tmp_path_factory.mktemp("voc_run")
    return Trainer(_voc_cfg(tmp), progress=False).fit().run_dir / "best.pt"


def test_export_calibrates_and_scores_on_the_voc_source(voc_run, tmp_path):
    """Export reads ``data.sources`` (the VOC val split, 3 images), not ``data.root`` (a 5-image COCO decoy)."""
    from mtnet.export.pipeline import ExportOptions, export_checkpoint

    out = export_checkpoint(voc_run, tmp_path, name="voc", options=ExportOptions(
        formats=("onnx",), precisions=("fp32",), parity_images=2, bench_runs=0, progress=False))
    report = json.loads((out / "report.json").read_text())
    voc_root = voc_run.parents[2] / "voc"
    assert report["model"]["val_split"] == f"{voc_root} [val] (3 images)"
    (onnx,) = report["artifacts"]
    assert onnx["metrics"]["num_images"] == 3
    assert onnx["metrics"]["bbox_AP50"] is not None and onnx["metrics"]["mIoU"] is not None
    assert np.isfinite(onnx["parity"]["boxes"]["max_abs"])


def test_eval_without_data_scores_the_checkpoint_own_val_split(voc_run):
    from mtnet.workflows import evaluate_model

    metrics = evaluate_model(voc_run, progress=False)
    assert metrics["num_images"] == 3 and "bbox_AP" in metrics and "mIoU" in metrics
