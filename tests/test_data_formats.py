"""Readers of real on-disk formats: COCO (+ stuff json, stuff maps, panoptic, polygons) and Pascal VOC.

The ``write_*`` helpers build small folders in the published formats (json + JPEG/PNG files, VOC XML,
palette PNGs); other ``test_data_*`` modules import them. Each image holds a few filled rectangles whose
class is known, so every reader's output can be checked pixel by pixel.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from mtnet.data.coco import CocoSource
from mtnet.data.sample import IGNORE_INDEX, DataError
from mtnet.data.synthetic import COCO_SKELETON, KEYPOINT_NAMES
from mtnet.data.voc import VOC_CLASSES, VocSource

THINGS = [{"id": 1, "name": "person", "supercategory": "person"}, {"id": 18, "name": "dog", "supercategory": "animal"}]
STUFF = [{"id": 149, "name": "road", "supercategory": "ground"}, {"id": 157, "name": "sky-other", "supercategory": "sky"}]
COLORS = {1: (220, 40, 40), 18: (40, 200, 40), 149: (90, 90, 90), 157: (120, 170, 235)}


def _scene(rng: np.random.Generator, w: int, h: int):
    """Sky over road, 1-3 non-overlapping rectangles (persons / dogs) standing on the horizon."""
    horizon = h // 2
    image = np.zeros((h, w, 3), np.uint8)
    image[:horizon], image[horizon:] = COLORS[157], COLORS[149]
    stuff = np.zeros((h, w), np.int64)
    stuff[:horizon], stuff[horizon:] = 157, 149
    objects = []
    x = 2
    for _ in range(int(rng.integers(1, 4))):
        ow, oh = int(rng.integers(10, 20)), int(rng.integers(14, 28))
        if x + ow >= w - 2:
            break
        y = int(rng.integers(2, h - oh - 2))
        cid = 1 if rng.random() < 0.6 else 18
        image[y:y + oh, x:x + ow] = COLORS[cid]
        objects.append((cid, [x, y, ow, oh]))
        x += ow + int(rng.integers(3, 10))
    return image, stuff, objects


def _person_keypoints(x: int, y: int, w: int, h: int) -> list[float]:
    """17 keypoints inside the box; left-side points in the left half, right-side in the right half."""
    out = []
    for i, name in enumerate(KEYPOINT_NAMES):
        fx = 0.25 if name.startswith("left_") else 0.75 if name.startswith("right_") else 0.5
        out += [x + fx * w, y + h * (i + 1) / 19, 2]
    return out


def write_coco(root: Path, split: str = "train", n: int = 6, *, size=(64, 48), seed: int = 0,
               stuff_maps: bool = False, stuff_json: bool = False, panoptic: bool = False,
               keypoints: bool = True) -> Path:
    """A COCO 2017-style folder: <split>/*.jpg (PNG-encoded losslessly as .png), annotations/*.json."""
    rng = np.random.default_rng(seed)
    w, h = size
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    images, insts, persons, stuff_anns, pan_anns = [], [], [], [], []
    ann_id = 100
    for i in range(n):
        image, stuff, objects = _scene(rng, w, h)
        iid = 1000 + i
        fname = f"{iid:012d}.png"  # lossless so colours map back to classes exactly
        Image.fromarray(image).save(root / split / fname)
        images.append({"id": iid, "file_name": fname, "width": w, "height": h})
        full = stuff.copy()
        pan = np.zeros((h, w), np.int64)
        segments = []
        for sid, cid in enumerate((157, 149), start=1):
            pan[stuff == cid] = sid
        for cid, (x, y, ow, oh) in objects:
            ann_id += 1
            poly = [[x, y, x + ow, y, x + ow, y + oh, x, y + oh]]
            ann = {"id": ann_id, "image_id": iid, "category_id": cid, "bbox": [x, y, ow, oh], "area": ow * oh,
                   "iscrowd": 0, "segmentation": poly}
            insts.append(ann)
            full[y:y + oh, x:x + ow] = cid
            pan[y:y + oh, x:x + ow] = ann_id
            segments.append({"id": ann_id, "category_id": cid, "iscrowd": 0, "bbox": [x, y, ow, oh], "area": ow * oh})
            if cid == 1:
                persons.append({**ann, "keypoints": _person_keypoints(x, y, ow, oh), "num_keypoints": 17})
        for sid, cid in enumerate((157, 149), start=1):
            region = np.asfortranarray((stuff == cid) & (full == cid))
            rle = mask_utils.encode(region.astype(np.uint8))
            ann_id += 1
            stuff_anns.append({"id": ann_id, "image_id": iid, "category_id": cid, "iscrowd": 0,
                               "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                               "area": int(region.sum()), "bbox": [0, 0, w, h]})
            segments.append({"id": sid, "category_id": cid, "iscrowd": 0, "bbox": [0, 0, w, h],
                             "area": int((pan == sid).sum())})
        if stuff_maps:
            d = root / "stuffthingmaps_trainval2017" / split
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray((full - 1).astype(np.uint8)).save(d / fname)
        if panoptic:
            d = root / "annotations" / f"panoptic_{split}"
            d.mkdir(parents=True, exist_ok=True)
            rgb = np.stack([pan % 256, pan // 256 % 256, pan // 65536], -1).astype(np.uint8)
            Image.fromarray(rgb).save(d / fname)
            pan_anns.append({"image_id": iid, "file_name": fname, "segments_info": segments})
    ann = root / "annotations"
    (ann / f"instances_{split}.json").write_text(json.dumps(
        {"images": images, "annotations": insts, "categories": THINGS}))
    if keypoints:
        person = {**THINGS[0], "keypoints": KEYPOINT_NAMES, "skeleton": COCO_SKELETON}
        (ann / f"person_keypoints_{split}.json").write_text(json.dumps(
            {"images": images, "annotations": persons, "categories": [person]}))
    if stuff_json:
        (ann / f"stuff_{split}.json").write_text(json.dumps(
            {"images": images, "annotations": stuff_anns,
             "categories": STUFF + [{"id": 183, "name": "other", "supercategory": "other"}]}))
    if panoptic:
        cats = [{**c, "isthing": 1} for c in THINGS] + [{**c, "isthing": 0} for c in STUFF]
        (ann / f"panoptic_{split}.json").write_text(json.dumps(
            {"images": images, "annotations": pan_anns, "categories": cats}))
    return root


VOC_PALETTE = [0, 0, 0] + [v for i in range(1, 256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)]


def write_voc(root: Path, split: str = "train", n: int = 6, *, size=(64, 48), seed: int = 1,
              seg_every: int = 1, labelmap: list[tuple[str, tuple[int, int, int]]] | None = None,
              rgb_masks: bool = False) -> Path:
    """A VOCdevkit/VOC2012-style folder: JPEGImages, Annotations XML, SegmentationClass palette PNGs.

    ``labelmap``: the set's own (name, colour) classes, background first, written to ``labelmap.txt`` as
    CVAT exports it; ``rgb_masks``: masks as RGB PNGs in those colours (CVAT) instead of palette indices.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    if labelmap is not None:
        lines = [f"{name}:{','.join(map(str, rgb))}::" for name, rgb in labelmap]
        (root / "labelmap.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n" + "\n".join(lines) + "\n")
    index = ({name: i for i, (name, _) in enumerate(labelmap)} if labelmap is not None
             else {name: VOC_CLASSES.index(name) + 1 for name in ("person", "dog", "car")})
    names = [name for name in index if name != "background"][:3]
    for d in ("JPEGImages", "Annotations", "SegmentationClass", "ImageSets/Main", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(n):
        image_id = f"2007_{seed:02d}{i:04d}"
        ids.append(image_id)
        image = np.full((h, w, 3), 30, np.uint8)
        mask = np.zeros((h, w), np.uint8)
        objs = []
        x = 2
        for _ in range(int(rng.integers(1, 3))):
            ow, oh = int(rng.integers(10, 20)), int(rng.integers(10, 20))
            y = int(rng.integers(1, h - oh - 1))
            name = names[int(rng.integers(len(names)))]
            label = index[name]
            image[y:y + oh, x:x + ow] = (label * 10, 255 - label * 10, 100)
            mask[y:y + oh, x:x + ow] = label
            mask[y, x:x + ow] = IGNORE_INDEX  # the devkit's object border
            objs.append(f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x + 1}</xmin>"
                        f"<ymin>{y + 1}</ymin><xmax>{x + ow}</xmax><ymax>{y + oh}</ymax></bndbox></object>")
            x += ow + 4
        Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=98)
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><filename>{image_id}.jpg</filename><size><width>{w}</width><height>{h}</height>"
            f"<depth>3</depth></size>{''.join(objs)}</annotation>")
        if i % seg_every == 0 and rgb_masks:
            colors = np.zeros((256, 3), np.uint8)
            colors[: len(labelmap)] = [rgb for _, rgb in labelmap]
            colors[IGNORE_INDEX] = (224, 224, 192)  # VOC's border colour
            Image.fromarray(colors[mask]).save(root / "SegmentationClass" / f"{image_id}.png")
        elif i % seg_every == 0:
            png = Image.fromarray(mask, mode="P")
            png.putpalette(VOC_PALETTE)
            png.save(root / "SegmentationClass" / f"{image_id}.png")
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids[::seg_every]) + "\n")
    return root


@pytest.mark.parametrize("mode,flags", [("stuffmaps", {"stuff_maps": True, "stuff_json": True}),
                                        ("stuff", {"stuff_json": True}),
                                        ("panoptic", {"panoptic": True})])
def test_semantic_formats_agree_with_the_drawn_scene(tmp_path, mode, flags):
    root = write_coco(tmp_path / "coco", **flags)
    src = CocoSource(root, "train")
    assert src.seg_mode == mode
    assert set(src.meta.seg_classes) == {"person", "dog", "road", "sky-other"}  # "other" (183) is not a class
    for i in range(len(src)):
        s = src.load(i)
        assert s.has_seg and s.mask.shape == s.image.shape[:2]
        for cid, color in COLORS.items():
            label = src.meta.seg_classes.index(next(c["name"] for c in THINGS + STUFF if c["id"] == cid))
            where = (s.image == color).all(-1)
            assert (s.mask[where] == label).all(), f"{mode}: pixels of category {cid} not labelled {label}"


def test_polygons_are_rasterised_with_background_when_no_stuff(tmp_path):
    root = write_coco(tmp_path / "coco")
    src = CocoSource(root, "train")
    assert src.seg_mode == "polygons" and src.meta.seg_classes == ["background", "person", "dog"]
    s = src.load(0)
    person = (s.image == COLORS[1]).all(-1)
    assert (s.mask[person] == 1).all() and (s.mask[~person & ~(s.image == COLORS[18]).all(-1)] == 0).all()


def test_coco_ids_remapped_and_keypoint_meta_read_from_file(tmp_path):
    src = CocoSource(write_coco(tmp_path / "coco"), "train")
    assert src.meta.det_category_ids == [1, 18] and src.meta.det_classes == ["person", "dog"]
    assert src.meta.keypoint_names == KEYPOINT_NAMES and src.meta.skeleton[0] == [15, 13]
    assert src.meta.flip_index[1] == 2 and src.meta.keypoint_class == 0
    s = src.load(0)
    assert s.has_pose and s.keypoints.shape[1:] == (17, 3)
    assert set(s.labels.tolist()) <= {0, 1}


def test_images_folder_plus_json_source(tmp_path):
    root = write_coco(tmp_path / "coco", keypoints=False)
    (root / "train").rename(tmp_path / "pictures")
    src = CocoSource(root, "train", instances=root / "annotations" / "instances_train.json", image_dir=tmp_path / "pictures")
    assert len(src) == 6 and src.load(5).image.shape == (48, 64, 3)


def test_voc_boxes_masks_and_partial_seg(tmp_path):
    root = write_voc(tmp_path / "voc", seg_every=2)
    src = VocSource(root, "train")
    assert len(src) == 6 and src.meta.seg_classes[0] == "background"
    s0, s1 = src.load(0), src.load(1)
    assert s0.has_seg and not s1.has_seg and s1.mask is None and s0.has_det
    x1, y1, x2, y2 = s0.boxes[0]
    label = int(s0.labels[0]) + 1  # seg class = det class + 1 (background first)
    inner = s0.mask[int(y1) + 1:int(y2), int(x1):int(x2)]
    assert (inner == label).all() and (s0.mask[int(y1), int(x1):int(x2)] == IGNORE_INDEX).all()
    assert x1 == int(x1) and (x2 - x1) >= 10  # 1-based inclusive corners -> 0-based exclusive


def test_voc_unknown_class_names_file(tmp_path):
    root = write_voc(tmp_path / "voc")
    xml = next((root / "Annotations").glob("*.xml"))
    xml.write_text(xml.read_text().replace("<name>", "<name>x", 1))
    with pytest.raises(DataError, match=xml.name):
        VocSource(root, "train")


def test_panoptic_unknown_segment_id_is_an_error(tmp_path):
    root = write_coco(tmp_path / "coco", panoptic=True)
    png = next((root / "annotations" / "panoptic_train").glob("*.png"))
    arr = np.asarray(Image.open(png)).copy()
    arr[0, 0] = (7, 7, 7)
    Image.fromarray(arr).save(png)
    src = CocoSource(root, "train")
    with pytest.raises(DataError, match="not in segments_info"):
        for i in range(len(src)):
            src.load(i)


def test_instance_without_outline_is_ignored_not_background(tmp_path):
    root = write_coco(tmp_path / "coco", keypoints=False)
    path = root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    ann = data["annotations"][0]
    del ann["segmentation"]
    path.write_text(json.dumps(data))
    src = CocoSource(root, "train")
    x, y, w, h = ann["bbox"]
    mask = src.load(0).mask
    assert (mask[y:y + h, x:x + w] == IGNORE_INDEX).all()
    assert any(f"annotation id {ann['id']}: no 'segmentation'" in s for s in src.skipped)


ROBOTS = [("background", (0, 0, 0)), ("ball", (250, 50, 50)), ("cone", (255, 160, 0)), ("robot", (60, 60, 230))]


@pytest.mark.parametrize("rgb_masks", [True, False])
def test_voc_classes_and_colours_from_labelmap(tmp_path, rgb_masks):
    root = write_voc(tmp_path / "voc", labelmap=ROBOTS, rgb_masks=rgb_masks)
    src = VocSource(root, "train")
    assert src.meta.det_classes == ["ball", "cone", "robot"] and src.meta.det_category_ids == [1, 2, 3]
    assert src.meta.seg_classes == ["background", "ball", "cone", "robot"]
    for i in range(len(src)):
        s = src.load(i)
        for (x1, y1, x2, y2), label in zip(s.boxes.astype(int), s.labels, strict=True):
            assert (s.mask[y1 + 1:y2, x1:x2] == label + 1).all()  # seg index = det label + 1 (background first)
            assert (s.mask[y1, x1:x2] == IGNORE_INDEX).all()  # VOC's border, as colour or as index 255
        assert set(np.unique(s.mask).tolist()) <= {0, 1, 2, 3, IGNORE_INDEX}


def test_voc_classes_option_and_its_conflicts(tmp_path):
    root = write_voc(tmp_path / "voc", labelmap=ROBOTS)
    names = [n for n, _ in ROBOTS]
    with pytest.raises(DataError, match="labelmap.txt lists .* classes option says"):
        VocSource(root, "train", classes=["background", "robot", "ball", "cone"])
    assert VocSource(root, "train", classes=names).meta.seg_classes == names  # agreeing: fine
    (root / "labelmap.txt").unlink()
    with pytest.raises(DataError, match="unknown class name 'ball'"):
        VocSource(root, "train")  # VOC 2012 classes only when neither exists
    assert VocSource(root, "train", classes=names).meta.det_classes == ["ball", "cone", "robot"]


def test_voc_labelmap_and_colour_errors_name_the_file(tmp_path):
    root = write_voc(tmp_path / "voc", labelmap=ROBOTS, rgb_masks=True)
    png = sorted((root / "SegmentationClass").glob("*.png"))[0]
    arr = np.asarray(Image.open(png)).copy()
    arr[0, 0] = (1, 2, 3)
    Image.fromarray(arr).save(png)
    with pytest.raises(DataError, match=rf"{png.name}: colours \(1, 2, 3\) are not classes of .*labelmap.txt"):
        VocSource(root, "train").load(0)
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\nball:250,50::\n")
    with pytest.raises(DataError, match="labelmap.txt: line 3: expected 'name:r,g,b:parts:actions'"):
        VocSource(root, "train")
