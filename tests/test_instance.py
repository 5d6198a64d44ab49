"""The instance-mask task (``inst``): registry combinations, object maps through augmentation, full and weak
mask targets, the NumPy mask assembly against PyTorch, COCO segm AP, and one export of a tiny trained
four-task model (ONNX + TFLite parity of the new outputs, GPU-delegate verdict, metadata read back, --nms rows)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mtnet.config import AugmentConfig, ConfigError, LossConfig
from mtnet.data.coco import CocoSource
from mtnet.data.mosaic import Mosaic, mixup
from mtnet.data.preprocess import letterbox
from mtnet.data.sample import IGNORE_INDEX, Sample
from mtnet.data.transforms import EvalTransform, TrainTransform
from mtnet.decode import Detections
from mtnet.decode_masks import assemble_masks, unletterbox_masks
from mtnet.losses.instance import dice_loss, full_targets, mask_loss, to_grid, weak_targets
from mtnet.tasks import get_task, resolve_tasks

from .conftest import tiny_config

IMGSZ = 160
TASKS4 = "model.tasks=[det,seg,pose,inst]"


# ---- registry
@pytest.mark.parametrize("tasks", [["det", "inst"], ["det", "seg", "inst"], ["det", "pose", "inst"],
                                   ["det", "seg", "pose", "inst"]])
def test_inst_accepted_with_det_in_any_combination(tasks, synthetic_root):
    from mtnet.models import build_model

    cfg = tiny_config(synthetic_root, Path("/nonexistent"), f"model.tasks=[{','.join(tasks)}]")
    model = build_model(cfg.model, CocoSource(synthetic_root, "val").meta)
    assert "inst" in model.tasks and {"mask_coefs", "protos"} <= set(model.output_names())


def test_inst_without_det_is_refused():
    with pytest.raises(ValueError, match="the inst task needs det"):
        resolve_tasks(["seg", "inst"])


def test_unknown_weak_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="loss.inst_weak"):
        get_task("inst").loss_weight(LossConfig(inst_weak="boxinst?"))


# ---- data: object maps
def test_inst_loss_weight_defaults_to_eight_and_task_weights_override_it():
    assert get_task("inst").loss_weight(LossConfig()) == 8.0
    assert get_task("inst").loss_weight(LossConfig(task_weights={"inst": 2.0})) == 2.0
    assert get_task("det").loss_weight(LossConfig(det=0.5)) == 0.5


def test_coco_reader_builds_object_maps_that_match_boxes(synthetic_root):
    src = CocoSource(synthetic_root, "train")
    s = src.load(0)
    assert s.objects is not None and s.objects.shape == s.image.shape[:2]
    for i, box in enumerate(s.boxes):
        ys, xs = np.nonzero(s.objects == i + 1)
        assert len(ys), f"object {i} has no pixels"
        x0, y0, x1, y1 = box
        assert xs.min() >= x0 - 1 and xs.max() <= x1 + 1 and ys.min() >= y0 - 1 and ys.max() <= y1 + 1


def _object_in_box_fraction(s: Sample) -> float:
    inside = total = 0
    for i, (x0, y0, x1, y1) in enumerate(s.boxes):
        ys, xs = np.nonzero(s.objects == i + 1)
        total += len(xs)
        inside += int(((xs >= x0 - 1) & (xs <= x1 + 1) & (ys >= y0 - 1) & (ys <= y1 + 1)).sum())
    return inside / max(total, 1)


def test_object_maps_follow_boxes_through_augmentation_mosaic_and_mixup(synthetic_root):
    src = CocoSource(synthetic_root, "train")
    tf = TrainTransform(IMGSZ, AugmentConfig(scale=(0.5, 1.5)), src.meta.flip_index, crop=128)
    tiles = [tf(src.load(i), seed=i) for i in range(4)]
    for t in tiles:
        assert t.objects.shape == t.image.shape[:2] and t.objects[t.objects != IGNORE_INDEX].max(initial=0) <= len(t.boxes)
        assert _object_in_box_fraction(t) > 0.97
    mosaic = Mosaic(128)(tiles, seed=3)
    assert mosaic.objects is not None and _object_in_box_fraction(mosaic) > 0.97
    labelled = np.unique(mosaic.objects[(mosaic.objects > 0) & (mosaic.objects != IGNORE_INDEX)])
    assert len(labelled) >= 0.5 * len(mosaic.boxes)  # renumbered rows of all four tiles
    mixed = mixup(tiles[0], tiles[1], np.random.default_rng(0))
    assert _object_in_box_fraction(mixed) > 0.97
    ev = EvalTransform(IMGSZ)(src.load(0))
    assert ev.objects.shape == (IMGSZ, IMGSZ) and _object_in_box_fraction(ev) > 0.97


def test_source_configured_without_inst_carries_no_object_maps(synthetic_root):
    from mtnet.data.mixing import RemappedSource

    src = CocoSource(synthetic_root, "train")
    assert RemappedSource(src, src.meta, ["det", "seg", "pose", "inst"]).load(0).objects is not None
    weak = RemappedSource(src, src.meta, ["det", "seg", "pose"]).load(0)
    assert weak.objects is None and get_task("inst").labelled(weak)  # weak targets from the semantic map
    none = RemappedSource(src, src.meta, ["det"]).load(0)
    assert not get_task("inst").labelled(none)  # no outlines, no semantic map: no mask loss, not background


# ---- targets
def test_full_targets_ignore_unknown_pixels():
    objects = torch.zeros(8, 8, dtype=torch.uint8)
    objects[2:4, 2:4] = 1
    objects[5:7, 5:7] = IGNORE_INDEX  # a crowd
    fg, lab = full_targets(objects, 2)
    assert fg[0].sum() == 4 and fg[1].sum() == 0
    assert not lab[:, 5:7, 5:7].any() and lab[:, 0, 0].all()


def test_weak_targets_box_class_inside_box_and_same_class_overlap_ignored():
    sem = torch.zeros(10, 10, dtype=torch.uint8)
    sem[1:6, 1:6] = 3
    sem[4:9, 4:9] = 3  # two objects of class 3 that touch
    sem[0, 0] = IGNORE_INDEX
    boxes = torch.tensor([[1.0, 1.0, 6.0, 6.0], [4.0, 4.0, 9.0, 9.0], [0.0, 0.0, 10.0, 10.0]])
    fg, lab = weak_targets(sem, boxes, torch.tensor([3, 3, -1]))
    # the overlap of the two class-3 boxes holds class-3 pixels: ambiguous, not a target of either
    assert not lab[0, 4:6, 4:6].any() and not lab[1, 4:6, 4:6].any()
    assert fg[0, 1:4, 1:4].all() and fg[1, 6:9, 6:9].all()
    assert fg[0, 7, 7] == 0 and lab[0, 7, 7] == 1  # outside box 0 it is labelled 0 (the loss crops to the box)
    assert not lab[2].any()  # a box whose class the semantic map lacks gets no target at all
    assert lab[0, 0, 0] == 0  # the map's own ignore pixels
    grid_fg, grid_valid = to_grid(fg, lab, 5, 5)
    assert grid_fg.shape == (3, 5, 5) and grid_valid.dtype == torch.bool



def test_dice_term_weighs_a_missed_thin_part_by_its_share_of_the_object():
    """A mask that drops a one-cell-wide limb: per-cell BCE over the box barely notices (the limb is a small
    share of the box's cells), the Dice term counts it against the object's own area; outside the region
    nothing is scored."""
    target = torch.zeros(1, 8, 8)
    target[0, 1:7, 1:3] = 1  # body
    target[0, 6, 3:7] = 1  # a thin limb
    region = torch.zeros(1, 8, 8, dtype=torch.bool)
    region[0, 1:7, 1:7] = True
    perfect = target * 20 - 10
    no_limb = perfect.clone()
    no_limb[0, 6, 3:7] = -10
    assert dice_loss(perfect, target, region).item() < 1e-3
    missed = dice_loss(no_limb, target, region).item()
    assert missed == pytest.approx(1 - (2 * 12 + 1) / (12 + 16 + 1), abs=1e-3)
    outside = perfect.clone()
    outside[0, 0, :] = 10  # confident foreground outside the region
    assert dice_loss(outside, target, region).item() < 1e-3
    # the same miss through mask_loss: the Dice weight adds exactly that term
    protos, coefs = no_limb.reshape(1, 8, 8), torch.ones(1, 1)
    boxes = torch.tensor([[1.0, 1.0, 7.0, 7.0]])  # cells 1-6 at stride 1 (centres 1.5-6.5)
    valid = torch.ones(1, 8, 8, dtype=torch.bool)
    bce_only, _ = mask_loss(coefs, protos, target, valid, boxes, 1.0)
    with_dice, n = mask_loss(coefs, protos, target, valid, boxes, 1.0, dice=2.0)
    assert n == 1 and (with_dice - bce_only).item() == pytest.approx(2 * missed, abs=1e-3)


# ---- decode and metric
def test_numpy_mask_assembly_matches_torch():
    rng = np.random.default_rng(0)
    coefs, protos = rng.normal(size=(3, 16)).astype(np.float32), rng.normal(size=(16, 10, 10)).astype(np.float32)
    boxes = np.array([[0, 0, 40, 40], [5, 10, 30, 20], [0, 0, 0.5, 0.5]], np.float32)
    got = assemble_masks(coefs, protos, boxes, 40)
    logits = torch.einsum("np,phw->nhw", torch.from_numpy(coefs), torch.from_numpy(protos))
    up = torch.nn.functional.interpolate(logits[None], size=(40, 40), mode="bilinear", align_corners=False)[0]
    ref = up.sigmoid().numpy() > 0.5
    assert (got[0] == ref[0]).mean() > 0.999
    assert not got[1][:, :5].any() and not got[1][:9].any() and (got[1][10:20, 5:30] == ref[1][10:20, 5:30]).mean() > 0.999
    assert got[1].sum() > 0 and not got[2].any()
    out = unletterbox_masks(got, 0.5, (20, 30))
    assert out.shape == (3, 20, 30) and out.dtype == bool


def test_segm_ap_is_one_for_ground_truth_masks(synthetic_root):
    from mtnet.eval.instance import coco_segm_metrics, masks_to_coco

    src = CocoSource(synthetic_root, "val")
    results = []
    for i in range(len(src)):
        s = src.load(i)
        masks = np.stack([s.objects == k + 1 for k in range(len(s.boxes))]) if len(s.boxes) else np.zeros((0,) + s.objects.shape, bool)
        det = Detections(s.boxes, np.ones(len(s.boxes), np.float32), s.labels)
        results += masks_to_coco(s.image_id, det, masks, src.meta)
    m = coco_segm_metrics(src.instances_path, results)
    assert m["segm_AP50"] > 0.99 and m["segm_AP"] > 0.9
    assert coco_segm_metrics(src.instances_path, results[: len(results) // 2])["segm_AP50"] < 0.9


# ---- training and export (slow)
@pytest.fixture(scope="module")
def inst_run(synthetic_root, tmp_path_factory) -> Path:
    from mtnet.workflows import train_and_report

    out = tmp_path_factory.mktemp("inst_runs")
    metrics = train_and_report(tiny_config(synthetic_root, out, "name=inst", TASKS4, "train.epochs=2"), progress=False)
    assert {"segm_AP", "segm_AP50", "bbox_AP50"} <= set(metrics)
    written = json.loads((Path(metrics["run_dir"]) / "metrics.json").read_text())
    assert "segm_AP50" in written
    assert "mask" in (Path(metrics["run_dir"]) / "metrics.csv").read_text().splitlines()[0].split(",")
    return Path(metrics["run_dir"])


@pytest.fixture(scope="module")
def inst_export(inst_run, tmp_path_factory) -> Path:
    from mtnet.cli import main

    out = tmp_path_factory.mktemp("inst_exports")
    rc = main(["export", str(inst_run / "best.pt"), "--formats", "onnx,tflite", "--precision", "fp32,int8",
               "--imgsz", str(IMGSZ), "--out", str(out), "--name", "inst", "--bench-runs", "2",
               "--calib-images", "8", "--no-progress"])
    assert rc == 0
    return out / "inst"


@pytest.mark.slow
def test_export_parity_gpu_check_and_metrics_of_mask_outputs(inst_export):
    report = json.loads((inst_export / "report.json").read_text())
    arts = {a["file"]: a for a in report["artifacts"]}
    for name in ("model.onnx", "model_float32.tflite"):
        gate = arts[name]["parity_gate"]
        assert gate["passed"] and {"mask_coefs", "protos"} <= set(gate["outputs"]), (name, gate)
    for name in ("model_float32.tflite", "model_int8.tflite"):
        assert arts[name]["gpu_compatible"] is True, arts[name]["gpu_issues"]
        assert {"segm_AP", "segm_AP50"} <= set(arts[name]["metrics"])
    assert "segm_AP50" in arts["model_int8.tflite"]["metrics"]["drop_vs_fp32"]["gated"]
    assert "inst" in report["calibration"]["coverage"]["tasks"]


@pytest.mark.slow
def test_mask_outputs_documented_in_every_file(inst_export):
    from mtnet.modeljson import read_model_json, read_onnx, read_tflite

    docs = [read_model_json(inst_export / "model.json"), read_onnx(inst_export / "model.onnx"),
            read_tflite(inst_export / "model_float32.tflite"), read_tflite(inst_export / "model_int8.tflite")]
    for doc in docs:
        outs = {o["name"]: o for o in doc["outputs"]}
        assert outs["mask_coefs"]["axes"] == "B,A,P" and outs["mask_coefs"]["shape"][2] == 16
        assert outs["protos"]["shape"] == [1, 16, IMGSZ // 4, IMGSZ // 4] and "prototype" in outs["protos"]["meaning"]


@pytest.mark.slow
def test_tflite_predictor_masks_match_pytorch(inst_export, inst_run, synthetic_root):
    from mtnet.infer.predictor import Predictor

    val = CocoSource(synthetic_root, "val")
    images = [val.load(i).image for i in range(3)]
    ref = Predictor.from_path(inst_run / "best.pt", conf=0.0, max_det=20).predict(images)
    got = Predictor.from_path(inst_export / "model_float32.tflite", conf=0.0, max_det=20).predict(images)
    for r, g in zip(ref, got, strict=True):
        assert r.results["inst"].shape == g.results["inst"].shape == (len(r.detections),) + r.image_shape
        # same decoder on both backends; after two epochs many mask logits sit near 0, where float32 rounding
        # of the two runtimes can flip a pixel (the raw outputs themselves pass the fp32 parity gate above)
        assert (r.results["inst"] == g.results["inst"]).mean() > 0.98


@pytest.mark.slow
def test_nms_graph_outputs_the_kept_rows_coefficients(inst_run, synthetic_root, tmp_path):
    """ONNX with in-graph NMS: ``mask_coefs`` [1, max_det, P] rows are the kept detections' anchors' rows."""
    from mtnet.export.nms import NMSDeploy, NMSOptions

    from mtnet.checkpoint_io import load_model_from_checkpoint
    from mtnet.cli import main
    from mtnet.infer.backends import load_backend
    from mtnet.infer.predictor import TorchBackend

    rc = main(["export", str(inst_run / "best.pt"), "--formats", "onnx", "--nms", "--nms-conf", "0.0",
               "--imgsz", str(IMGSZ), "--out", str(tmp_path), "--name", "nms", "--no-progress"])
    assert rc == 0
    model, _ = load_model_from_checkpoint(inst_run / "best.pt")
    image = letterbox(CocoSource(synthetic_root, "val").load(0).image, IMGSZ)[0][None]
    onnx = load_backend(tmp_path / "nms" / "model.onnx")(image)
    assert onnx["mask_coefs"].shape[:2] == onnx["detections"].shape[:2]
    full = TorchBackend(model, IMGSZ)(image)
    n = int(onnx["num_detections"][0])
    assert n > 0
    # each kept row's coefficients are those of an anchor with that row's box
    for row in range(n):
        same_box = np.abs(full["boxes"][0] - onnx["detections"][0, row, :4]).max(1) < 1e-3
        assert same_box.any()
        assert np.abs(full["mask_coefs"][0, same_box] - onnx["mask_coefs"][0, row]).max(1).min() < 1e-4
    assert NMSDeploy(model, IMGSZ, NMSOptions()).output_names()[2:4] == ["mask_coefs", "protos"]
