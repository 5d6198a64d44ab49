"""Synthetic generator, COCO reader and the foundation augmentation: formats, determinism, clear errors."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from mtnet.config import AugmentConfig
from mtnet.data.coco import CocoSource
from mtnet.data.sample import DataError
from mtnet.data.synthetic import KEYPOINT_NAMES, generate_dataset
from mtnet.data.transforms import TrainTransform


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_generator_is_deterministic_and_seed_dependent(tmp_path):
    a = generate_dataset(tmp_path / "a", 4, 2, 128, seed=3, progress=False)
    b = generate_dataset(tmp_path / "b", 4, 2, 128, seed=3, progress=False)
    c = generate_dataset(tmp_path / "c", 4, 2, 128, seed=4, progress=False)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_generator_writes_real_coco_formats(synthetic_root):
    inst = json.loads((synthetic_root / "annotations/instances_train.json").read_text())
    kpts = json.loads((synthetic_root / "annotations/person_keypoints_train.json").read_text())
    person = kpts["categories"][0]
    assert person["keypoints"] == KEYPOINT_NAMES and len(person["skeleton"]) == 19
    assert {c["id"] for c in inst["categories"]} == {1, 33, 37, 38}
    ids = {a["id"] for a in inst["annotations"]}
    for a in kpts["annotations"]:
        assert a["id"] in ids and len(a["keypoints"]) == 51
        v = np.array(a["keypoints"][2::3])
        assert set(v.tolist()) <= {0, 1, 2} and a["num_keypoints"] == int((v > 0).sum())
    vis = np.concatenate([np.array(a["keypoints"][2::3]) for a in kpts["annotations"]])
    assert (vis == 2).any() and ((vis == 1).any() or (vis == 0).any())  # occlusion / truncation happen
    sizes = [a["bbox"][3] for a in inst["annotations"] if a["category_id"] == 1]
    assert max(sizes) / min(sizes) >= 2.0  # scale variation even in a 24-image set
    # COCO-Stuff pixel maps: value = id - 1
    from PIL import Image

    m = np.array(Image.open(synthetic_root / "stuffthingmaps/train/000000000001.png"))
    assert set(np.unique(m).tolist()) <= {0, 32, 36, 37, 123, 153, 156, 177}


def test_reader_remaps_ids_and_reads_masks(synthetic_root):
    src = CocoSource(synthetic_root, "train")
    meta = src.meta
    assert meta.det_category_ids == [1, 33, 37, 38] and meta.keypoint_class == 0
    assert meta.seg_category_ids == [1, 33, 37, 38, 124, 154, 157, 178]
    assert meta.flip_index[1] == 2 and meta.flip_index[0] == 0
    s = src.load(0)
    assert s.image.dtype == np.uint8 and s.image.shape == (160, 160, 3)
    assert s.mask.shape == (160, 160) and s.mask.max() < 8
    assert s.has_det and s.has_pose and s.has_seg
    assert (s.boxes[:, 2] > s.boxes[:, 0]).all()


def _copy(root, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(root, dst)
    return dst


def test_corrupt_image_names_the_file(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    bad = root / "train/000000000002.jpg"
    bad.write_bytes(b"not a jpeg at all")
    src = CocoSource(root, "train")
    with pytest.raises(DataError, match=r"000000000002\.jpg: image id 2: cannot read image"):
        src.load(1)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"annotation id \d+: 'bbox' must be 4 finite numbers"),
        (lambda d: d["annotations"][0].update(category_id=999), r"annotation id \d+: unknown category_id 999"),
        (lambda d: d["annotations"][0].update(image_id=12345), r"annotation id \d+: unknown image_id 12345"),
        (lambda d: d["annotations"][0].update(bbox=[0, 0, -5, 4]), r"annotation id \d+: negative box size"),
        (lambda d: d["annotations"][1].update(id=d["annotations"][0]["id"]), r"duplicate annotation id \d+"),
        (lambda d: d.pop("images"), "missing or invalid 'images' list"),
    ],
)
def test_malformed_annotation_names_file_and_id(synthetic_root, tmp_path, mutate, message):
    root = _copy(synthetic_root, tmp_path)
    path = root / "annotations/instances_train.json"
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"instances_train\.json: " + message):
        CocoSource(root, "train")


def test_invalid_json_and_missing_folder(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    (root / "annotations/instances_train.json").write_text("{not json")
    with pytest.raises(DataError, match="instances_train.json: not valid JSON"):
        CocoSource(root, "train")
    with pytest.raises(DataError, match="data folder not found"):
        CocoSource(tmp_path / "missing", "train")


def test_flip_swaps_left_and_right_keypoints(synthetic_root):
    src = CocoSource(synthetic_root, "train")
    idx = next(i for i in range(len(src)) if (src.load(i).keypoints[..., 2] > 0).any())
    sample = src.load(idx)
    flip_only = AugmentConfig(hflip=1.0, scale=(1.0, 1.0), color=0.0)
    out = TrainTransform(160, flip_only, src.meta.flip_index)(sample, seed=0)
    w = sample.image.shape[1]
    person = int(np.argmax((sample.keypoints[..., 2] > 0).sum(1)))
    ls, rs = KEYPOINT_NAMES.index("left_shoulder"), KEYPOINT_NAMES.index("right_shoulder")
    before, after = sample.keypoints[person], out.keypoints[person]
    if before[ls, 2] > 0:
        # the left shoulder of the flipped person is the mirrored right shoulder of the original
        np.testing.assert_allclose(after[ls, 0], w - before[rs, 0], atol=1.0)
        np.testing.assert_allclose(after[ls, 1], before[rs, 1], atol=1.0)
    np.testing.assert_array_equal(out.image, sample.image[:, ::-1])
    np.testing.assert_array_equal(out.mask, sample.mask[:, ::-1])


def test_augmentation_is_reproducible_per_seed(synthetic_root):
    src = CocoSource(synthetic_root, "train")
    t = TrainTransform(160, AugmentConfig(), src.meta.flip_index)
    a, b, c = t(src.load(0), seed=7), t(src.load(0), seed=7), t(src.load(0), seed=8)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.image, c.image)


def test_generator_never_writes_into_a_folder_it_did_not_make(tmp_path):
    """A real data set under data.root with a synthetic recipe in the config must not be overwritten."""
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text("{}")
    with pytest.raises(DataError, match="data.synthetic=null"):
        generate_dataset(tmp_path, 2, 1, size=64)
    assert (tmp_path / "annotations" / "instances_train.json").read_text() == "{}"


def test_generator_replaces_another_recipes_files_without_leftovers(tmp_path):
    generate_dataset(tmp_path, 4, 2, size=64, progress=False)
    generate_dataset(tmp_path, 2, 1, size=96, progress=False, variant="scale-spread")
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["000000000001.jpg", "000000000002.jpg"]
    assert len(list((tmp_path / "stuffthingmaps" / "val").iterdir())) == 1
    assert json.loads((tmp_path / "synthetic.json").read_text())["variant"] == "scale-spread"


def test_scale_spread_variant_spans_coco_scales_with_crowds(tmp_path):
    """Objects from ~12 px to over half the image, iscrowd RLE regions as COCO writes them."""
    generate_dataset(tmp_path, 40, 1, size=256, progress=False, variant="scale-spread")
    anns = json.loads((tmp_path / "annotations/instances_train.json").read_text())["annotations"]
    sides = [max(a["bbox"][2:]) for a in anns if not a["iscrowd"]]
    crowds = [a for a in anns if a["iscrowd"]]
    assert min(sides) < 16 and max(sides) > 128
    assert crowds and all(isinstance(a["segmentation"]["counts"], str) for a in crowds)
    persons = json.loads((tmp_path / "annotations/person_keypoints_train.json").read_text())["annotations"]
    assert not any(p["iscrowd"] for p in persons)
    with pytest.raises(ValueError, match="unknown synthetic variant"):
        generate_dataset(tmp_path / "x", 1, 1, variant="coco")
