"""``mtnet data check`` finds every planted problem with its file and id; ``data stats`` counts and plots."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from mtnet.cli import main
from mtnet.data.checks import check_coco, check_voc
from mtnet.data.class_balance import effective_number_weights
from mtnet.data.coco import CocoSource
from mtnet.data.stats import compute_stats
from tests.test_data_formats import write_coco, write_voc


def _edit(path, fn):
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def _plant_coco_problems(root):
    inst = root / "annotations" / "instances_train.json"
    kpts = root / "annotations" / "person_keypoints_train.json"

    def instances(d):
        a = d["annotations"]
        a[0]["bbox"] = [1000, 1000, 5, 5]  # entirely outside
        a[1]["bbox"][2] = 0  # zero area
        a[2]["category_id"] = 999  # unknown category
        a[3]["id"] = a[4]["id"]  # duplicate id
        d["images"][1]["file_name"] = "missing.png"
        d["categories"].append({"id": 44, "name": "bottle"})  # absent from the split

    def keypoints(d):
        d["annotations"][0]["keypoints"][2] = 7  # visibility flag out of range
        d["annotations"][1]["keypoints"][0] = -50.0  # labelled keypoint off the image

    _edit(inst, instances)
    _edit(kpts, keypoints)
    (root / "train" / json.loads(inst.read_text())["images"][2]["file_name"]).write_bytes(b"not an image")
    maps = root / "stuffthingmaps_trainval2017" / "train"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(next(iter(sorted(maps.glob("*.png")))))
    return inst, kpts


def test_check_lists_every_planted_coco_problem(tmp_path):
    root = write_coco(tmp_path / "coco", "train", 6, stuff_maps=True)
    inst, kpts = _plant_coco_problems(root)
    d = json.loads(inst.read_text())
    issues = check_coco(root, "train")
    text = "\n".join(str(i) for i in issues)
    a = d["annotations"]
    expected = [
        ("error", str(inst), f"annotation id {a[0]['id']}", "entirely outside"),
        ("warning", str(inst), f"annotation id {a[1]['id']}", "zero-area"),
        ("error", str(inst), f"annotation id {a[2]['id']}", "unknown category_id 999"),
        ("error", str(inst), f"annotation id {a[4]['id']}", "duplicate annotation id"),
        ("error", "missing.png", "image id 1001", "not found"),
        ("error", d["images"][2]["file_name"], "image id 1002", "cannot read image"),
        ("warning", str(inst), "category id 44", "no annotation in this split"),
        ("error", str(kpts), "", "visibility flags"),
        ("warning", str(kpts), "", "outside the 64x48 image"),
        ("error", "stuffthingmaps", "image id 1000", "mask is 10x10 but the image is 64x48"),
    ]
    for severity, file, where, message in expected:
        assert any(i.severity == severity and file in i.file and where in i.where and message in i.message
                   for i in issues), f"not reported: {severity} {file} {where} {message}\n{text}"


def test_check_cli_exit_codes(tmp_path, capsys):
    clean = write_coco(tmp_path / "clean", "train", 4, panoptic=True)
    assert main(["data", "check", str(clean)]) == 0
    bad = write_coco(tmp_path / "bad", "train", 6, stuff_maps=True)
    _plant_coco_problems(bad)
    assert main(["data", "check", str(bad), "--no-warnings"]) == 1
    out = capsys.readouterr().out
    assert "ERROR" in out and "WARNING" not in out and "errors" in out.splitlines()[-1]
    assert main(["data", "check", str(tmp_path / "nowhere")]) == 2  # a clear one-line UserError


def test_check_voc_problems(tmp_path):
    root = write_voc(tmp_path / "voc", "train", 4)
    xmls = sorted((root / "Annotations").glob("*.xml"))
    xmls[0].write_text(xmls[0].read_text().replace("<name>", "<name>zebra", 1))
    xmls[1].write_text("<annotation><object>")
    png = sorted((root / "SegmentationClass").glob("*.png"))[2]
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(png)
    issues = check_voc(root, "train")
    assert any(xmls[0].name in i.file and "unknown class name 'zebra" in i.message for i in issues)
    assert any(xmls[1].name in i.file and "not valid XML" in i.message for i in issues)
    assert any(png.name in i.file and "mask is 5x5" in i.message for i in issues)


def test_stats_counts_and_plots(tmp_path, capsys):
    root = write_coco(tmp_path / "coco", "train", 6, stuff_json=True)
    src = CocoSource(root, "train")
    stats = compute_stats(src)
    anns = json.loads((root / "annotations" / "instances_train.json").read_text())["annotations"]
    assert stats["instances"] == [sum(a["category_id"] == c for a in anns) for c in (1, 18)]
    assert sum(stats["box_size_hist"]) == len(anns) and sum(stats["aspect_hist"]) == len(anns)
    assert np.allclose(np.asarray(stats["keypoint_visibility"])[:, 2], 1.0)  # the writer labels all visible
    assert abs(sum(stats["seg_pixel_frequency"]) + stats["seg_ignored_fraction"] - 1) < 1e-4
    assert main(["data", "stats", str(root), "--out", str(tmp_path / "plots")]) == 0
    out = tmp_path / "plots" / "coco_train"
    for name in ("class_counts.png", "boxes.png", "keypoint_visibility.png", "seg_frequency.png", "stats.json"):
        assert (out / name).stat().st_size > 0
    assert "person" in capsys.readouterr().out


def test_class_balanced_weights_follow_cui_et_al():
    w = effective_number_weights([1000, 10, 0], beta=0.99)
    e = (1 - 0.99 ** np.array([1000, 10])) / (1 - 0.99)
    assert np.allclose(w[:2], (1 / e) / (1 / e).sum() * 2) and w[2] == 1.0
    assert w[1] > w[0]  # the rare class weighs more
    assert np.allclose(effective_number_weights([5, 500], beta=0.0), 1.0)  # beta 0: no re-weighting


def cut_short(path) -> None:
    """Cut a JPEG or PNG a few bytes into its pixel data: the header still reads, the pixels end early."""
    data = path.read_bytes()
    start = data.find(b"\xff\xda") if data[:2] == b"\xff\xd8" else data.find(b"IDAT")
    assert start > 0, path
    path.write_bytes(data[: start + 16])


def _jpeg_instead_of(root, split: str, index: int) -> str:
    """Re-save image ``index`` of a written COCO split as a JPEG (both jsons follow); returns its file name."""
    names = []
    for kind in ("instances", "person_keypoints"):
        path = root / "annotations" / f"{kind}_{split}.json"
        data = json.loads(path.read_text())
        im = data["images"][index]
        png, im["file_name"] = im["file_name"], im["file_name"].replace(".png", ".jpg")
        path.write_text(json.dumps(data))
        names.append((png, im["file_name"]))
    png, jpg = names[0]
    Image.open(root / split / png).save(root / split / jpg, quality=95)
    (root / split / png).unlink()
    return jpg


def test_check_decodes_every_image_and_label_map(tmp_path, capsys):
    root = write_coco(tmp_path / "coco", "train", 6, stuff_maps=True)
    jpg = _jpeg_instead_of(root, "train", 2)
    cut_short(root / "train" / jpg)
    label = sorted((root / "stuffthingmaps_trainval2017" / "train").glob("*.png"))[4]
    cut_short(label)
    assert Image.open(root / "train" / jpg).size == (64, 48)  # the header alone reads fine
    fast = [i for i in check_coco(root, "train", decode=False) if i.severity == "error"]
    assert fast == []  # what the header-only pass sees
    issues = check_coco(root, "train")
    assert any(i.file.endswith(jpg) and i.where == "image id 1002" and "cannot read image" in i.message
               and "truncated" in i.message for i in issues), issues
    assert any(i.file == str(label) and i.where == "image id 1004" and "cannot read mask" in i.message
               for i in issues), issues
    assert main(["data", "check", str(root), "--fast"]) == 0
    assert main(["data", "check", str(root)]) == 1
    out = capsys.readouterr().out
    assert jpg in out and label.name in out and "image id 1002" in out


def test_check_voc_decodes_images_and_masks(tmp_path):
    root = write_voc(tmp_path / "voc", "train", 4)
    jpg = sorted((root / "JPEGImages").glob("*.jpg"))[1]
    png = sorted((root / "SegmentationClass").glob("*.png"))[3]
    cut_short(jpg)
    cut_short(png)
    assert not [i for i in check_voc(root, "train", decode=False) if i.severity == "error"]
    issues = check_voc(root, "train")
    assert any(i.file == str(jpg) and i.where == f"image id {jpg.stem}" and "truncated" in i.message for i in issues)
    assert any(i.file == str(png) and "cannot read mask" in i.message for i in issues), issues
