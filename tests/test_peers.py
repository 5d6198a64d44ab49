"""The peer benchmarks' parts that need no ultralytics: peers.py's target ratios and the ONNX Runtime profile
that says which module of an mtnet model costs the time; the peers' task sets given to mtnet (coco_subset.py)
and the seed-sweep summary (budget_seeds.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from mtnet.config import ModelConfig
from mtnet.models import build_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import peers  # noqa: E402


def test_targets():
    ms = {"yolo11n": 20.0, "yolo11n-seg": 28.0, "yolo11n-pose": 22.0, "mtnet_default": 15.0, "mtnet_coco": 21.0}
    got = {c["target"]: (c["ratio"], c["met"]) for c in peers.targets(ms)}
    assert got == {"default <= 0.25 x sum of the three YOLO11n": (0.214, True),
                   "default <= 0.8 x YOLO11n detect": (0.75, True),
                   "COCO recipe <= 1.0 x YOLO11n detect": (1.05, False)}


def test_onnx_profile_by_module(tmp_path):
    from latency import coco_like_meta
    from mtnet.export.onnx import export_onnx

    torch.manual_seed(0)
    net = build_model(ModelConfig(width=0.35, neck_channels=16, head_channels=16, seg_channels=16),
                      coco_like_meta(4, 3)).eval()
    path = export_onnx(net, tmp_path / "m.onnx", 96)
    prof = peers.onnx_profile(Path(path), runs=3)
    assert {"backbone", "neck", "det", "pose", "seg"} <= set(prof["by_module"])
    assert "Conv" in prof["by_op_type"]
    assert abs(sum(prof["by_module"].values()) - prof["total_ms"]) < 0.05 * prof["total_ms"] + 0.01
    assert max(prof["by_module"], key=prof["by_module"].get) == "backbone"


def _coco_split(folder: Path, split: str, anns: list[dict]) -> None:
    """instances_<split>.json (person + ball) and person_keypoints_<split>.json (the persons) in ``folder``."""
    cats = [{"id": 1, "name": "person", "keypoints": ["head", "foot"], "skeleton": [[1, 2]]}, {"id": 2, "name": "ball"}]
    images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 64}]
    (folder / split).mkdir(parents=True, exist_ok=True)
    (folder / "annotations" / f"instances_{split}.json").write_text(
        json.dumps({"images": images, "categories": cats, "annotations": anns}))
    persons = [a for a in anns if a["category_id"] == 1]
    (folder / "annotations" / f"person_keypoints_{split}.json").write_text(
        json.dumps({"images": images, "categories": cats[:1], "annotations": persons}))


def test_category_subset_drops_persons_without_keypoints_only_in_the_splits_asked(tmp_path):
    """YOLO11n-pose's labels: persons with a labelled keypoint (ultralytics' convert_coco skips the others)."""
    from coco_subset import category_subset

    data = tmp_path / "data"
    (data / "annotations").mkdir(parents=True)
    box = {"image_id": 1, "bbox": [4, 4, 20, 30], "area": 300, "iscrowd": 0}
    anns = [{**box, "id": 1, "category_id": 1, "keypoints": [10, 8, 2, 12, 30, 1], "num_keypoints": 2},
            {**box, "id": 2, "category_id": 1, "keypoints": [0, 0, 0, 0, 0, 0], "num_keypoints": 0},
            {**box, "id": 3, "category_id": 2}]
    for split in ("train", "val"):
        _coco_split(data, split, anns)
    out = category_subset(data, tmp_path / "person", ["person"], pose_labelled_only=("train",))
    ids = {s: [a["id"] for a in json.loads((out / "annotations" / f"instances_{s}.json").read_text())["annotations"]]
           for s in ("train", "val")}
    assert ids == {"train": [1], "val": [1, 2]}  # val keeps every person: box AP is scored on all of them
    assert (out / "annotations" / "person_keypoints_train.json").resolve() == \
        (data / "annotations" / "person_keypoints_train.json").resolve()
    plain = category_subset(data, tmp_path / "plain", ["person"])
    assert [a["id"] for a in json.loads((plain / "annotations" / "instances_train.json").read_text())["annotations"]] == [1, 2]


def test_seed_sweep_summary_and_seeded_variants():
    import budget_seeds
    import pyramid_ablation

    rows = [{"model": "a", "seed": 0, "kpt_AP50": 0.70, "epochs": 30}, {"model": "a", "seed": 1, "kpt_AP50": 0.80,
            "epochs": 32}, {"model": "b", "seed": 0, "kpt_AP50": 0.50, "epochs": None}]
    summary = budget_seeds.summarize(rows)
    assert summary["a"]["n"] == 2 and summary["a"]["seeds"] == [0, 1]
    assert summary["a"]["kpt_AP50"]["mean"] == pytest.approx(0.75)
    assert summary["a"]["kpt_AP50"]["std"] == pytest.approx(0.0707, abs=1e-4)  # sample std over the seeds
    assert summary["b"]["kpt_AP50"] == {"mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5}
    assert "epochs" not in summary["b"]  # a metric a run did not report is left out, not averaged as 0
    assert "| a | 2 | 0.750 ± 0.071 (0.700–0.800)" in budget_seeds.markdown(summary)
    variant = {v.key: v for v in pyramid_ablation.VARIANTS}["new_pose_labelled_p128"]
    seeded = pyramid_ablation.with_seed(variant, 3)
    assert seeded.key == "new_pose_labelled_p128_seed3" and seeded.overrides[-1] == "train.seed=3"
    assert seeded.person_only and seeded.pose_labelled_only
