"""Malformed COCO annotations: a clear DataError naming the file, or a reported skip; never a crash or a
silently wrong label. The checker must flag (as an error) everything the reader refuses."""

from __future__ import annotations

import copy
import json
import math
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtnet.config import AugmentConfig
from mtnet.data.checks import check_coco
from mtnet.data.coco import CocoSource
from mtnet.data.sample import DataError
from mtnet.data.transforms import TrainTransform
from tests.test_data_formats import write_coco

GARBAGE = st.one_of(
    st.none(), st.booleans(), st.just(""), st.just("x\udcff\ud800"), st.just([]), st.just({}), st.just([1, 2]),
    st.sampled_from([-1, 0, 10**400, -(10**30), 2**63, 1e308, -1e-9]),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=4, max_size=4),
    st.lists(st.integers(-5, 5), min_size=51, max_size=51), st.text(max_size=5),
)
KEYS = {
    "images": ["id", "file_name", "width", "height"],
    "annotations": ["id", "image_id", "category_id", "bbox", "iscrowd", "segmentation", "area"],
    "categories": ["id", "name"],
}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = write_coco(tmp_path_factory.mktemp("fuzz") / "coco", "train", 3, stuff_json=True)
    ann = root / "annotations"
    inst = json.loads((ann / "instances_train.json").read_text())
    kpts = json.loads((ann / "person_keypoints_train.json").read_text())
    stuff = json.loads((ann / "stuff_train.json").read_text())
    (ann / "stuff_train.json").unlink()  # each example writes its own copy of the stuff json
    return root, inst, kpts, stuff


@st.composite
def mutation(draw):
    which = draw(st.sampled_from(["inst", "kpts", "stuff"]))
    section = draw(st.sampled_from(["images", "annotations", "categories"]))
    action = draw(st.sampled_from(["set", "delete", "replace_entry", "keypoints", "skeleton"]))
    return which, section, action, draw(st.integers(0, 10)), draw(st.sampled_from(KEYS[section] + ["keypoints"])), \
        draw(GARBAGE)


def _mutate(files: dict, m) -> dict:
    which, section, action, index, key, value = m
    files = {**files, which: copy.deepcopy(files[which])}
    data = files[which]
    if action == "skeleton":
        if which == "kpts":
            data["categories"][0]["skeleton"] = value
        return files
    if action == "keypoints":
        section, key = "annotations", "keypoints"
    entries = data[section]
    entry = entries[index % len(entries)]
    if action == "delete":
        entry.pop(key, None)
    elif action == "replace_entry":
        entries[index % len(entries)] = value
    else:
        entry[key] = value
    return files


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=mutation())
def test_malformed_annotations_fail_clearly_or_load_correct_labels(base, tmp_path, m):
    root, inst, kpts, stuff = base
    files = _mutate({"inst": inst, "kpts": kpts, "stuff": stuff}, m)
    inst_m = files["inst"]
    work = tmp_path / "work"
    shutil.rmtree(work, ignore_errors=True)
    (work / "annotations").mkdir(parents=True)
    ipath, kpath = work / "annotations" / "instances_fuzz.json", work / "annotations" / "kpts_fuzz.json"
    # NaN / Infinity / huge ints are written as Python's json writes them
    ipath.write_text(json.dumps(inst_m))
    kpath.write_text(json.dumps(files["kpts"]))
    (work / "annotations" / "stuff_fuzz.json").write_text(json.dumps(files["stuff"]))
    opts = {"instances": ipath, "keypoints": kpath, "image_dir": root / "train"}
    issues = check_coco(work, "fuzz", **opts)  # the checker never crashes either
    try:
        src = CocoSource(work, "fuzz", **opts)
        assert src.seg_mode == "stuff"
        transform = TrainTransform(64, AugmentConfig(), src.meta.flip_index)
        samples = [(i, src.load(i)) for i in range(len(src))]
        for i, s in samples:
            out = transform(s, seed=i)
            assert np.isfinite(out.boxes).all() and np.isfinite(out.keypoints).all()
    except DataError as e:
        message = str(e)
        assert "fuzz.json" in message or str(root) in message or str(work) in message, message
        assert any(i.severity == "error" for i in issues), f"reader refused ({message}) but check saw no error"
        return
    # loaded: every kept box carries the category and coordinates its json annotation gave it
    by_id = {a["id"]: a for a in inst_m["annotations"] if isinstance(a, dict)}
    for rec in src.records:
        for a in rec.anns:
            j = by_id[a["id"]]
            assert src.meta.det_category_ids[a["label"]] == j["category_id"]
            x, y, w, h = j["bbox"]
            assert a["bbox"] == [x, y, x + w, y + h] and w >= 1 and h >= 1


def test_invalid_utf8_and_non_utf8_file_names(base, tmp_path):
    root, inst, _, _ = base
    bad_bytes = tmp_path / "bytes.json"
    bad_bytes.write_bytes(b'{"images": [{"id": 1, "file_name": "\xff\xfe.png"}]}')
    with pytest.raises(DataError, match="bytes.json: not valid JSON"):
        CocoSource(root, "train", instances=bad_bytes, image_dir=root / "train")
    odd = copy.deepcopy(inst)
    odd["images"][0]["file_name"] = "caf\udce9.png"  # a Latin-1 byte in a file name, as os.fsdecode gives it
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(odd))
    src = CocoSource(root, "train", instances=path, image_dir=root / "train")
    with pytest.raises(DataError, match="image file not found"):
        src.load(0)
