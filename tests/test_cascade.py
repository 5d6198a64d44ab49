"""Detector -> crop-classifier cascade: fine labels in the synthetic data, crops, re-labelling, training,
the ``Cascade`` predictor over backends, fine-grained evaluation and the classifier's export."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from mtnet.data.fine import BACKGROUND, FineLabels, fine_paths, read_fine_labels
from mtnet.data.sample import DataError, decode_image
from mtnet.data.synthetic import BALL, BALL_SUBTYPES, generate_dataset
from mtnet.decode import Detections

# sha256 over the files of generate_dataset(root, 3, 2, size=96, seed=3, variant=...) as written before the
# `subtypes` recipe existed: the existing recipes' bytes (tests and published figures use them) must not move.
RECIPE_DIGESTS = {
    "standard": "94297ae3187c00b957c2f8173b4632c39fa814b611a58964f214e54e1935acba",
    "scale-spread": "241339b9c3ce29d396f80691d098646a3bad1d9734ed4b51a50710bbbcc790b8",
}


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("variant", sorted(RECIPE_DIGESTS))
def test_existing_recipes_write_the_same_bytes(tmp_path, variant):
    generate_dataset(tmp_path / variant, 3, 2, size=96, seed=3, progress=False, variant=variant)
    assert _digest(tmp_path / variant) == RECIPE_DIGESTS[variant]
    assert not (tmp_path / variant / "annotations" / "fine_to_coarse.json").exists()


def test_subtypes_recipe_writes_fine_coco_and_map(subtypes_root):
    inst, mapping = fine_paths(subtypes_root, "train")
    fine_doc, coarse_doc = json.loads(inst.read_text()), json.loads((subtypes_root / "annotations" / "instances_train.json").read_text())
    assert [c["id"] for c in coarse_doc["categories"]] == [1, 33, 37, 38]  # the detector's classes stay coarse
    assert {c["id"] for c in fine_doc["categories"]} == {1, 33, 38} | {c["id"] for c in BALL_SUBTYPES}
    pairs = list(zip(coarse_doc["annotations"], fine_doc["annotations"], strict=True))
    balls = [f["category_id"] for c, f in pairs if c["category_id"] == BALL]
    assert balls and set(balls) <= {c["id"] for c in BALL_SUBTYPES}
    for c, f in pairs:  # same annotations, only the ball categories are refined
        assert c["bbox"] == f["bbox"] and c["id"] == f["id"]
        assert c["category_id"] == f["category_id"] or c["category_id"] == BALL
    fine = read_fine_labels(inst, mapping)
    assert fine.split_coarse == [BALL]
    assert fine.classifier_names == [c["name"] for c in BALL_SUBTYPES] + [BACKGROUND]
    assert FineLabels.from_dict(json.loads(json.dumps(fine.to_dict()))) == fine


def test_subtype_patterns_are_drawn(subtypes_root):
    """Striped / patched balls carry more fine texture than plain ones (what the classifier must see)."""
    from mtnet.data.sample import read_image

    doc = json.loads(fine_paths(subtypes_root, "train")[0].read_text())
    texture: dict[int, list[float]] = {}
    for ann in doc["annotations"]:
        if ann["category_id"] in {c["id"] for c in BALL_SUBTYPES} and ann["bbox"][2] > 30:
            x, y, w, h = (int(v) for v in ann["bbox"])
            img = read_image(str(subtypes_root / "train" / f"{ann['image_id']:012d}.jpg")).astype(np.float32)
            core = img[y + h // 3 : y + 2 * h // 3, x + w // 3 : x + 2 * w // 3].mean(2)
            texture.setdefault(ann["category_id"], []).append(float(np.abs(np.diff(core, axis=1)).mean()))
    plain = np.median(texture.get(201, [np.nan]))
    marked = np.median(texture.get(202, []) + texture.get(203, []))
    assert marked > 1.5 * plain


def test_fine_map_errors_name_the_problem(tmp_path):
    inst = tmp_path / "fine.json"
    inst.write_text(json.dumps({"categories": [{"id": 1, "name": "a"}, {"id": 7, "name": "b"}]}))
    (tmp_path / "map.json").write_text(json.dumps({"1": 1}))
    with pytest.raises(DataError, match=r"\[7\].*no coarse category"):
        read_fine_labels(inst, tmp_path / "map.json")
    (tmp_path / "map.json").write_text(json.dumps({"1": 1, "7": 5}))
    with pytest.raises(DataError, match=r"coarse categories \[5\]"):
        read_fine_labels(inst, tmp_path / "map.json", coarse_ids=[1, 2])
    with pytest.raises(DataError, match="not found"):
        read_fine_labels(inst, tmp_path / "missing.json")


def test_decode_image_rejects_corrupt_bytes():
    with pytest.raises(DataError, match="cannot read image"):
        decode_image(b"\xff\xd8 not a jpeg", "upload")


def test_crop_boxes_letterbox_the_grown_box_from_the_original_pixels():
    from mtnet.cascade.crops import crop_boxes, crop_window

    image = np.zeros((100, 200, 3), np.uint8)
    image[20:60, 40:120] = (255, 0, 0)  # an 80 x 40 red box
    crops = crop_boxes(image, np.array([[40, 20, 120, 60], [190, 90, 260, 140]], np.float32), 32, context=0.0)
    assert crops.shape == (2, 32, 32, 3) and crops.dtype == np.uint8
    assert (crops[0, :16, :, 0] == 255).all() and (crops[0, :16, :, 1] == 0).all()  # 2:1 box fills the top half
    assert crop_window(np.array([190, 90, 260, 140]), (100, 200), 0.0) == (190, 90, 200, 100)  # clipped to the image
    assert crop_window(np.array([40, 20, 120, 60]), (100, 200), 0.1) == (32, 16, 128, 64)


def test_relabeler_fine_labels_scores_and_background():
    from mtnet.cascade.relabel import Relabeler

    fine = FineLabels([1, 201, 202], ["person", "ball/plain", "ball/striped"], {1: 1, 201: 37, 202: 37})
    det = Detections(np.arange(16, dtype=np.float32).reshape(4, 4), np.array([0.9, 0.8, 0.6, 0.5], np.float32),
                     np.array([0, 1, 0, 2]))  # coarse labels over [37, 1, 99]: ball, person, ball, unknown
    r = Relabeler(fine, [37, 1, 99], conf=0.25, multi_label=False)
    assert r.to_classify(det).tolist() == [0, 2]
    probs = np.array([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8]], np.float32)  # striped; background
    out = r.apply(det, probs)
    # by descending score: the person (0.8), ball 0 as striped (0.9 x 0.8); the background ball and class 99 dropped
    assert out.labels.tolist() == [0, 2]
    assert np.allclose(out.scores, [0.8, 0.9 * 0.8])
    assert np.array_equal(out.boxes, det.boxes[[1, 0]])
    multi = Relabeler(fine, [37, 1, 99], conf=0.05, multi_label=True).apply(det, probs)
    # multi-label: each ball once per sub-type whose combined score passes conf (background never)
    got = sorted((int(lb), round(float(s), 3)) for lb, s in zip(multi.labels, multi.scores, strict=True))
    assert got == [(0, 0.8), (1, 0.06), (1, 0.09), (2, 0.06), (2, 0.72)]


def test_classifier_config_rejects_unknown_keys_and_bad_ious(tmp_path):
    from mtnet.cascade.config import load_classifier_config
    from mtnet.config import ConfigError

    with pytest.raises(ConfigError, match="unknown config key 'widht'"):
        load_classifier_config(None, ["widht=0.5"])
    with pytest.raises(ConfigError, match="neg_iou <= pos_iou"):
        load_classifier_config(None, ["neg_iou=0.6", "pos_iou=0.5"])
    recipe = Path(__file__).resolve().parents[1] / "configs" / "cascade_cls.yaml"
    assert load_classifier_config(recipe, ["input_size=96"]).input_size == 96


@pytest.mark.slow
def test_cascade_trains_predicts_on_any_backend_and_evaluates(cascade_run, tmp_path):
    from mtnet.export.onnx import export_onnx

    from mtnet.cascade.backends import ClassifierError, load_classifier
    from mtnet.cascade.evaluate import evaluate_cascade
    from mtnet.cascade.predictor import Cascade
    from mtnet.data.sample import read_image
    from mtnet.infer.predictor import Predictor

    summary = json.loads((cascade_run["classifier"].parent / "summary.json").read_text())
    counts = summary["train_crops"]
    assert counts["gt"] > 0 and counts["gt_jitter"] == 2 * counts["gt"]
    assert counts["det_positive"] + counts["hard_negative"] > 0  # the detector's own boxes are in the training set
    torch_cls = load_classifier(cascade_run["classifier"])
    from mtnet.cascade.backends import classifier_doc, load_classifier_model

    model, state = load_classifier_model(cascade_run["classifier"])
    onnx_path = export_onnx(model, tmp_path / "cls.onnx", 48, doc=classifier_doc(state), dynamic_batch=True)
    images = [read_image(str(p)) for p in sorted((cascade_run["root"] / "val").glob("*.jpg"))]
    detector = Predictor.from_checkpoint(cascade_run["detector"], conf=0.005, max_det=1000, multi_label=True)
    results = {}
    for name, backend in (("torch", torch_cls), ("onnx", load_classifier(onnx_path))):
        cascade = Cascade(detector, backend)
        assert cascade.meta.det_category_ids == [1, 33, 38, 201, 202, 203]
        results[name] = cascade.predict(images)
        assert cascade.timing.crops > 0  # sports-ball detections were classified
    for a, b in zip(results["torch"], results["onnx"], strict=True):
        assert a.detections.labels.tolist() == b.detections.labels.tolist()
        assert np.allclose(a.detections.scores, b.detections.scores, atol=1e-4)
    fine_ids = {1, 33, 38, 201, 202, 203}
    assert {cascade.meta.det_category_ids[int(lb)] for p in results["torch"] for lb in p.detections.labels} <= fine_ids
    rows = evaluate_cascade(cascade_run["detector"], onnx_path, data_root=cascade_run["root"], latency_images=3, progress=False)
    assert 0.0 <= rows["cascade"]["bbox_AP50"] <= 1.0
    lat = rows["cascade"]["latency"]
    assert lat["formula_ms"] == pytest.approx(lat["detector_ms"] + lat["classifier_ms_per_crop"] * lat["crops_per_image"])
    m = rows["model_latency"]  # one inference per model file: detector + classifier x crops per image
    assert m["detector"] > 0 and m["classifier"] > 0
    assert m["cascade_ms"] == pytest.approx(m["detector"] + m["classifier"] * lat["crops_per_image"])
    with pytest.raises(ClassifierError, match="not a crop-classifier"):
        load_classifier(cascade_run["detector"])
