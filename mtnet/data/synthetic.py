"""Seeded synthetic multi-task data set, written to disk in real COCO formats.

Why: nothing can be downloaded here, yet training, evaluation and export must run on data with all
three tasks. The generator writes exactly what a COCO download has, so the same reader path is used:

* ``<split>/<id:012d>.jpg``                         RGB images
* ``annotations/instances_<split>.json``            boxes + polygons of the "thing" classes
* ``annotations/person_keypoints_<split>.json``     the persons again with 17 COCO keypoints
* ``annotations/stuff_<split>.json``                COCO-Stuff style RLE annotations of the "stuff" classes
* ``stuffthingmaps/<split>/<id:012d>.png``          COCO-Stuff pixel maps: value = category id - 1, 255 = unlabeled

Scenes are not trivial: 4 stuff regions with textures and wavy borders, 2-6 objects of 4 thing classes
(person, sports ball, suitcase, kite) that overlap (each stays >= 50% visible), vary >= 4x in scale, and
articulated people in random poses whose keypoints are marked occluded (v=1) when another object covers
them and unlabeled (v=0) when they fall outside the image. As in COCO, persons smaller than 32x32 px of
visible area carry no keypoints (``num_keypoints`` = 0; COCOeval ignores them for OKS-AP). Each thing class
has typical, not fixed, appearance statistics (bright balls, dark suitcases, two-tone kites).

Two recipes (``variant``):

* ``standard``: objects 12-50 % of the image side, persons 24-100 %: a narrow scale range, so one pyramid
  level (stride 8) can serve every object. The quickstart uses it.
* ``scale-spread``: COCO-like scale spread for pyramid experiments: sides drawn log-uniformly from 12 px to
  60 % of the image (persons 16 px to 95 %), 2-8 objects, a crowd of small balls in a quarter of the images
  (one ``iscrowd: 1`` RLE annotation, as COCO marks crowds: ignored by COCOeval, not a training target), and
  image degradations (Gaussian blur in 30 % of the images, sensor noise of 3-14 grey levels, JPEG quality
  35-95).
* ``subtypes``: the standard scenes, with sports balls in three visible sub-types (plain, striped, patched:
  a fine pattern that a detector at half the image resolution barely resolves). Besides the coarse files
  above it writes ``annotations/instances_fine_<split>.json`` (the same annotations with each ball's
  sub-type as its category) and ``annotations/fine_to_coarse.json`` (fine category id -> coarse category
  id), the layout :mod:`mtnet.data.fine` reads for any COCO data set with fine labels.
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils
from tqdm import tqdm

from .sample import DataError

KEYPOINT_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
]
# COCO's skeleton, 1-based as in person_keypoints_*.json.
COCO_SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
    [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]
# Real COCO / COCO-Stuff ids, so id remapping is exercised exactly as on the real data set.
THING_CATEGORIES = [
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 33, "name": "suitcase", "supercategory": "accessory"},
    {"id": 37, "name": "sports ball", "supercategory": "sports"},
    {"id": 38, "name": "kite", "supercategory": "sports"},
]
STUFF_CATEGORIES = [
    {"id": 124, "name": "grass", "supercategory": "plant"},
    {"id": 154, "name": "sand", "supercategory": "ground"},
    {"id": 157, "name": "sky-other", "supercategory": "sky"},
    {"id": 178, "name": "water-other", "supercategory": "water"},
]
SKY, GRASS, SAND, WATER = 157, 124, 154, 178
MIN_KEYPOINT_AREA = 32 * 32  # COCO annotates keypoints only on persons large enough to see them
STUFF_COLORS = {SKY: (120, 170, 235), GRASS: (70, 150, 60), SAND: (215, 190, 130), WATER: (40, 90, 170)}


@dataclass(frozen=True)
class SceneRecipe:
    """How a scene is drawn: object count and scale ranges, crowds and degradations."""

    max_objects: int = 6  # 2..max_objects objects per image
    log_scale: bool = False  # sizes log-uniform in pixels (COCO-like spread) instead of uniform in image fractions
    person_height: tuple[float, float] = (0.24, 1.0)  # fractions of the side (uniform) or pixels (log_scale)
    shape_extent: tuple[float, float] = (0.12, 0.5)
    crowd: float = 0.0  # probability of an iscrowd=1 cluster of small balls
    blur: float = 0.0  # probability of a Gaussian blur
    noise: tuple[float, float] = (6.0, 6.0)  # sensor noise sigma range (grey levels)
    jpeg_quality: tuple[int, int] = (92, 92)
    ball_subtypes: bool = False  # draw each sports ball as one of BALL_SUBTYPES (and write the fine annotations)


RECIPES = {
    "standard": SceneRecipe(),
    "scale-spread": SceneRecipe(max_objects=8, log_scale=True, person_height=(16.0, 0.95), shape_extent=(12.0, 0.6),
                                crowd=0.25, blur=0.3, noise=(3.0, 14.0), jpeg_quality=(35, 95)),
    "subtypes": SceneRecipe(ball_subtypes=True),
}
# Fine categories of the ``subtypes`` recipe: sports-ball sub-types (ids outside COCO's 1-182).
BALL = 37
BALL_SUBTYPES = [
    {"id": 201, "name": "sports ball/plain", "supercategory": "sports ball"},
    {"id": 202, "name": "sports ball/striped", "supercategory": "sports ball"},
    {"id": 203, "name": "sports ball/patched", "supercategory": "sports ball"},
]


def _size(rng: np.random.Generator, size: int, bounds: tuple[float, float], log_scale: bool) -> float:
    """An object side in pixels: uniform in image fractions, or log-uniform from pixels to a fraction."""
    if not log_scale:
        return rng.uniform(*bounds) * size
    return float(np.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1] * size))))


@dataclass
class _Object:
    category_id: int
    silhouette: np.ndarray  # bool HxW, the whole object before occlusion
    keypoints: np.ndarray | None = None  # 17 x 3 for persons
    fine_id: int | None = None  # sub-type category id (``subtypes`` recipe balls)


def _jitter(rng: np.random.Generator, color: tuple[int, int, int], amount: int = 30) -> tuple[int, ...]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def _wavy_line(rng: np.random.Generator, size: int, base: float, amp: float) -> np.ndarray:
    xs = np.arange(size)
    phase, freq = rng.uniform(0, 2 * math.pi), rng.uniform(1.0, 3.0)
    return base + amp * np.sin(xs / size * freq * 2 * math.pi + phase)


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sky above a wavy horizon; the ground split into two or three of grass / sand / water."""
    ys = np.arange(size)[:, None]
    horizon = _wavy_line(rng, size, rng.uniform(0.2, 0.55) * size, rng.uniform(2, 0.08 * size))
    labels = np.full((size, size), SKY, np.int32)
    ground = ys >= horizon[None, :]
    kinds = list(rng.permutation([GRASS, SAND, WATER]))[: rng.integers(2, 4)]
    # vertical-ish borders between ground regions
    cuts = np.sort(rng.uniform(0.2, 0.8, len(kinds) - 1)) * size
    xs = np.arange(size)[None, :] + (ys - size / 2) * rng.uniform(-0.6, 0.6)
    region = np.searchsorted(cuts, xs)
    for i, kind in enumerate(kinds):
        labels[ground & (region == i)] = kind
    image = np.zeros((size, size, 3), np.float32)
    for kind in np.unique(labels):
        sel = labels == kind
        image[sel] = _jitter(rng, STUFF_COLORS[int(kind)], 25)
    # texture: low-frequency blobs + stripes so regions are told apart by more than a flat colour
    noise = cv2.resize(rng.normal(0, 18, (size // 8, size // 8, 3)).astype(np.float32), (size, size))
    stripes = 10 * np.sin(np.arange(size)[None, :, None] / rng.uniform(2, 6)) * (labels == WATER)[..., None]
    image += noise + stripes
    return image, labels


def _person(rng: np.random.Generator, size: int, height: float, cx: float, cy: float) -> tuple[Image.Image, np.ndarray]:
    """An articulated stick figure: returns an RGBA drawing and its 17 x 2 keypoints (facing the camera)."""
    h = height
    lean = rng.uniform(-0.25, 0.25)
    up = np.array([math.sin(lean), -math.cos(lean)])
    right = np.array([-up[1], up[0]])  # image right = the person's left (facing the camera)
    hip_c = np.array([cx, cy + 0.05 * h])
    neck = hip_c + up * 0.32 * h
    head = neck + up * 0.13 * h
    sh_w, hip_w = 0.12 * h, 0.08 * h
    kp = np.zeros((17, 2))
    kp[5], kp[6] = neck + right * sh_w, neck - right * sh_w  # left/right shoulder
    kp[11], kp[12] = hip_c + right * hip_w, hip_c - right * hip_w

    def limb(start, a1, l1, l2, bend):
        a2 = a1 + rng.uniform(-bend, bend)
        mid = start + l1 * np.array([math.cos(a1), math.sin(a1)])
        end = mid + l2 * np.array([math.cos(a2), math.sin(a2)])
        return mid, end

    # Human-like joint ranges in a frontal view: each limb stays mostly on its own side (the person's left
    # is image right, i.e. smaller angles from "down"), arms may rise, knees bend little seen from the front.
    down = math.atan2(-up[1], -up[0])
    # Arms: any angle from along the body to raised overhead, mostly lower (as in everyday photos).
    kp[7], kp[9] = limb(kp[5], down - (2.4 * rng.beta(1.3, 2.5) - 0.2), 0.15 * h, 0.14 * h, 1.5)
    kp[8], kp[10] = limb(kp[6], down + (2.4 * rng.beta(1.3, 2.5) - 0.2), 0.15 * h, 0.14 * h, 1.5)
    kp[13], kp[15] = limb(kp[11], down - (0.6 * rng.beta(1.3, 2.5) - 0.05), 0.23 * h, 0.22 * h, 0.45)
    kp[14], kp[16] = limb(kp[12], down + (0.6 * rng.beta(1.3, 2.5) - 0.05), 0.23 * h, 0.22 * h, 0.45)
    face = head + right * rng.uniform(-0.02, 0.02) * h
    kp[0] = face + (-up) * 0.01 * h
    kp[1], kp[2] = face + right * 0.03 * h + up * 0.025 * h, face - right * 0.03 * h + up * 0.025 * h
    kp[3], kp[4] = head + right * 0.065 * h, head - right * 0.065 * h

    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    shirt, pants = _jitter(rng, tuple(rng.integers(0, 256, 3)), 0), _jitter(rng, tuple(rng.integers(0, 256, 3)), 0)
    skin = _jitter(rng, (224, 172, 105), 40)
    # Body proportions with real mass: COCO person segments cover about half of their box (YOLOv8-pose's
    # 0.53), and COCO's OKS scale is that segment area; a stick figure would make OKS far stricter than COCO's.
    lw_leg, lw_arm = max(2, int(0.13 * h)), max(2, int(0.09 * h))

    def line(a, b, color, width):
        d.line([tuple(a), tuple(b)], fill=color + (255,), width=width)
        r = width / 2
        d.ellipse([b[0] - r, b[1] - r, b[0] + r, b[1] + r], fill=color + (255,))

    for hip, knee, ankle in ((11, 13, 15), (12, 14, 16)):
        line(kp[hip], kp[knee], pants, lw_leg)
        line(kp[knee], kp[ankle], tuple(int(c * 0.7) for c in pants), lw_leg)
    pad = 0.04 * h  # shoulders and hips are joint centres: the body outline lies outside them
    torso = [kp[5] + right * pad - up * pad * 0.3, kp[6] - right * pad - up * pad * 0.3,
             kp[12] - right * pad + up * pad, kp[11] + right * pad + up * pad]
    d.polygon([tuple(p) for p in torso], fill=shirt + (255,))
    if rng.random() < 0.4:  # a coat or dress down to the knees
        hem = [kp[14] - right * pad, kp[13] + right * pad]
        d.polygon([tuple(p) for p in (torso[2], torso[3], hem[1], hem[0])], fill=shirt + (255,))
    line(neck, head, skin, max(2, int(0.07 * h)))
    for sh, el, wr in ((5, 7, 9), (6, 8, 10)):
        line(kp[sh], kp[el], shirt, lw_arm)
        line(kp[el], kp[wr], skin, lw_arm)
    r = 0.085 * h
    d.ellipse([head[0] - r, head[1] - r, head[0] + r, head[1] + r], fill=skin + (255,))
    er = max(1.0, 0.015 * h)
    for i, color in ((0, tuple(int(c * 0.6) for c in skin)), (1, (20, 20, 20)), (2, (20, 20, 20))):
        d.ellipse([kp[i][0] - er, kp[i][1] - er, kp[i][0] + er, kp[i][1] + er], fill=color + (255,))
    return layer, kp


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int, int]:
    return tuple(int(255 * c) for c in colorsys.hsv_to_rgb(h, s, v)) + (255,)


def _ball_pattern(rng: np.random.Generator, d: ImageDraw.ImageDraw, subtype: int, cx: float, cy: float, r: float,
                  color: tuple[int, int, int, int]) -> None:
    """Sub-type markings drawn over a ball in a darker shade of its colour, scaled with the ball (strokes
    of about 1/20 of its radius): a crop at the ball's own resolution shows them, a detector input at half
    the image resolution resolves them only on the larger balls."""
    shade = tuple(int(c * 0.55) for c in color[:3]) + (255,)
    if subtype == 1:  # striped: parallel stripes at a random angle, clipped to the disk
        a = rng.uniform(0, math.pi)
        ux, uy, width = math.cos(a), math.sin(a), max(1, round(r / 20))
        for off in np.arange(-r, r, 2.5 * width):
            half = math.sqrt(max(r * r - off * off, 0.0)) * 0.92
            px, py = cx - uy * off, cy + ux * off
            d.line([(px - ux * half, py - uy * half), (px + ux * half, py + uy * half)], fill=shade, width=width)
    elif subtype == 2:  # patched: scattered small dots
        for _ in range(int(rng.integers(14, 22))):
            rho, phi = r * 0.85 * math.sqrt(rng.uniform()), rng.uniform(0, 2 * math.pi)
            x, y, dr = cx + rho * math.cos(phi), cy + rho * math.sin(phi), max(0.7, r / 28)
            d.ellipse([x - dr, y - dr, x + dr, y + dr], fill=shade)


def _shape(rng: np.random.Generator, size: int, category_id: int, extent: float, cx: float, cy: float,
           subtype: int | None = None) -> Image.Image:
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    # Each class has typical (not fixed) appearance statistics, as real object classes do.
    if category_id == 37:  # sports balls: bright, saturated
        color = _hsv(rng.uniform(0, 1), rng.uniform(0.6, 1.0), rng.uniform(0.75, 1.0))
    elif category_id == 33:  # suitcases: dark, muted
        color = _hsv(rng.uniform(0, 1), rng.uniform(0.1, 0.6), rng.uniform(0.1, 0.45))
    else:  # kites: bright two-tone
        color = _hsv(rng.uniform(0, 1), rng.uniform(0.5, 1.0), rng.uniform(0.7, 1.0))
    r = extent / 2
    if category_id == 37:  # sports ball: disk with a seam
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
        d.arc([cx - r, cy - r * 0.5, cx + r, cy + r * 0.5], 0, 180, fill=(255, 255, 255, 255), width=max(1, int(r / 6)))
        if subtype:
            _ball_pattern(rng, d, subtype, cx, cy, r, color)
    elif category_id == 33:  # suitcase: rotated rectangle with a handle
        a = rng.uniform(-0.5, 0.5)
        w, h = r, r * rng.uniform(0.6, 0.8)
        corners = [(-w, -h), (w, -h), (w, h), (-w, h)]
        pts = [(cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a)) for x, y in corners]
        d.polygon(pts, fill=color)
        hx, hy = cx + (-h * 1.25) * -math.sin(a), cy + (-h * 1.25) * math.cos(a)
        d.line([(hx - 0.3 * w * math.cos(a), hy - 0.3 * w * math.sin(a)), (hx + 0.3 * w * math.cos(a), hy + 0.3 * w * math.sin(a))],
               fill=color, width=max(2, int(r / 5)))
    else:  # kite: a diamond with a tail
        a = rng.uniform(-0.6, 0.6)
        pts = [(0, -r), (0.6 * r, -0.2 * r), (0, r), (-0.6 * r, -0.2 * r)]
        pts = [(cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a)) for x, y in pts]
        d.polygon(pts, fill=color)
        second = _hsv(rng.uniform(0, 1), rng.uniform(0.5, 1.0), rng.uniform(0.7, 1.0))
        d.polygon([pts[0], pts[1], pts[2]], fill=second)
        d.line([pts[0], pts[2]], fill=(30, 30, 30, 255), width=max(1, int(r / 10)))
        d.line([pts[1], pts[3]], fill=(30, 30, 30, 255), width=max(1, int(r / 10)))
    return layer


def _crowd(rng: np.random.Generator, size: int) -> Image.Image:
    """A tight cluster of 4-9 small balls: annotated as one crowd region, as COCO does for groups."""
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    cx, cy = rng.uniform(0.15, 0.85) * size, rng.uniform(0.35, 0.85) * size
    spread = rng.uniform(0.06, 0.12) * size
    for _ in range(int(rng.integers(4, 10))):
        ball = _shape(rng, size, 37, rng.uniform(7, 14), cx + rng.normal(0, spread), cy + rng.normal(0, spread / 2))
        layer.alpha_composite(ball)
    return layer


def _degrade(rng: np.random.Generator, img: np.ndarray, recipe: SceneRecipe) -> np.ndarray:
    """Sensor noise and exposure, and (recipe permitting) defocus blur."""
    if recipe.blur and rng.random() < recipe.blur:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 1.6))
    low, high = recipe.noise
    img += rng.normal(0, rng.uniform(low, high) if high > low else low, img.shape)
    img *= rng.uniform(0.75, 1.2)  # exposure
    return np.clip(img, 0, 255).astype(np.uint8)


def _render_scene(rng: np.random.Generator, size: int, recipe: SceneRecipe = RECIPES["standard"]
                  ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Return image (uint8), semantic map (category ids) and instance records with visible masks
    (a crowd record has ``iscrowd`` set)."""
    image, labels = _background(rng, size)
    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    owner = np.zeros((size, size), np.int32)  # 0 = background, i+1 = object i on top
    crowd = None
    if recipe.crowd and rng.random() < recipe.crowd:
        layer = _crowd(rng, size)
        crowd = np.asarray(layer)[..., 3] > 127
        canvas.paste(layer, (0, 0), layer)
    objects: list[_Object] = []
    num = int(rng.integers(2, recipe.max_objects + 1))
    for _ in range(num * 5):  # try placements until `num` objects fit with enough visibility
        if len(objects) == num:
            break
        category = int(rng.choice([1, 1, 33, 37, 38]))
        cx, cy = rng.uniform(0.1, 0.9) * size, rng.uniform(0.25, 0.85) * size
        if category == 1:
            layer, kp = _person(rng, size, _size(rng, size, recipe.person_height, recipe.log_scale), cx, cy)
        else:
            extent = _size(rng, size, recipe.shape_extent, recipe.log_scale)
            subtype = int(rng.integers(len(BALL_SUBTYPES))) if recipe.ball_subtypes and category == BALL else None
            layer, kp = _shape(rng, size, category, extent, cx, cy, subtype), None
        silhouette = np.asarray(layer)[..., 3] > 127
        if silhouette.sum() < 40:
            continue
        candidate = owner.copy()
        candidate[silhouette] = len(objects) + 1
        visible_ok = all((candidate == i + 1).sum() >= 0.5 * o.silhouette.sum() for i, o in enumerate(objects))
        if not visible_ok or (candidate == len(objects) + 1).sum() < 0.6 * silhouette.sum():
            continue
        owner = candidate
        canvas.paste(layer, (0, 0), layer)
        fine_id = None if category != BALL or not recipe.ball_subtypes else BALL_SUBTYPES[subtype]["id"]
        objects.append(_Object(category, silhouette, None if kp is None else np.concatenate([kp, np.full((17, 1), 2.0)], 1),
                               fine_id))
    img = _degrade(rng, np.asarray(canvas).astype(np.float32), recipe)

    records = []
    if crowd is not None and (crowd & (owner == 0)).sum() >= 20:
        visible = crowd & (owner == 0)
        labels[visible] = 37
        records.append({"category_id": 37, "mask": visible, "iscrowd": 1})
    for i, obj in enumerate(objects):
        visible = owner == i + 1
        labels[visible] = obj.category_id
        rec = {"category_id": obj.category_id, "mask": visible}
        if obj.fine_id is not None:
            rec["fine_category_id"] = obj.fine_id
        if obj.keypoints is not None:
            kp = obj.keypoints.copy()
            for k in range(17):
                x, y = kp[k, :2]
                if not (0 <= x < size and 0 <= y < size):
                    kp[k] = 0  # outside the image: unlabeled (COCO: x=y=v=0)
                elif owner[int(y), int(x)] > i + 1:
                    kp[k, 2] = 1  # covered by an object drawn later: labeled, not visible
            rec["keypoints"] = kp
        records.append(rec)
    return img, labels, records


def _polygons(mask: np.ndarray) -> list[list[float]]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
    return [p for p in polys if len(p) >= 6]


def _atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def generate_split(root: Path, split: str, num_images: int, size: int, seed: int, progress: bool = True,
                   variant: str = "standard") -> None:
    """Write one split; deterministic given (split, num_images, size, seed, variant)."""
    recipe = RECIPES[variant]
    img_dir, map_dir, ann_dir = root / split, root / "stuffthingmaps" / split, root / "annotations"
    for d in (img_dir, map_dir, ann_dir):
        d.mkdir(parents=True, exist_ok=True)
    split_seed = seed * 1000 + sum(map(ord, split))
    images, instances, persons, stuff, fine = [], [], [], [], []
    ann_id = 1
    for i in tqdm(range(num_images), desc=f"synthetic {split}", disable=not progress, leave=False):
        rng = np.random.default_rng([split_seed, i])
        img, labels, records = _render_scene(rng, size, recipe)
        low, high = recipe.jpeg_quality
        quality = int(rng.integers(low, high + 1)) if high > low else low
        image_id = i + 1
        file_name = f"{image_id:012d}.jpg"
        Image.fromarray(img).save(img_dir / file_name, quality=quality)
        Image.fromarray((labels - 1).astype(np.uint8)).save(map_dir / f"{image_id:012d}.png")
        images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        for rec in records:
            ys, xs = np.nonzero(rec["mask"])
            x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
            crowd = rec.get("iscrowd", 0)
            ann = {
                "id": ann_id, "image_id": image_id, "category_id": rec["category_id"], "iscrowd": crowd,
                "area": float(rec["mask"].sum()), "bbox": [x0, y0, x1 - x0, y1 - y0],
                "segmentation": _rle(rec["mask"]) if crowd else _polygons(rec["mask"]),  # COCO: crowds are RLE
            }
            instances.append(ann)
            if recipe.ball_subtypes:
                fine.append(ann | {"category_id": rec.get("fine_category_id", rec["category_id"])})
            if "keypoints" in rec:
                kp = rec["keypoints"]
                if ann["area"] < MIN_KEYPOINT_AREA:
                    kp = np.zeros_like(kp)  # as in COCO: small persons carry no keypoints (num_keypoints = 0)
                persons.append(ann | {"keypoints": [round(float(v), 2) for v in kp.reshape(-1)],
                                      "num_keypoints": int((kp[:, 2] > 0).sum())})
            ann_id += 1
        for cat in STUFF_CATEGORIES:
            m = labels == cat["id"]
            if m.any():
                rle = _rle(m)
                stuff.append({"id": ann_id, "image_id": image_id, "category_id": cat["id"], "iscrowd": 0,
                              "area": float(m.sum()), "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                              "segmentation": rle})
                ann_id += 1
    info = {"description": "mtnet synthetic multi-task data set", "version": "1.0", "year": 2026}
    person_cat = dict(THING_CATEGORIES[0], keypoints=KEYPOINT_NAMES, skeleton=COCO_SKELETON)
    _atomic_json(ann_dir / f"instances_{split}.json",
                 {"info": info, "images": images, "annotations": instances, "categories": THING_CATEGORIES})
    _atomic_json(ann_dir / f"person_keypoints_{split}.json",
                 {"info": info, "images": images, "annotations": persons, "categories": [person_cat]})
    _atomic_json(ann_dir / f"stuff_{split}.json",
                 {"info": info, "images": images, "annotations": stuff, "categories": STUFF_CATEGORIES})
    if recipe.ball_subtypes:
        fine_categories = [c for c in THING_CATEGORIES if c["id"] != BALL] + BALL_SUBTYPES
        _atomic_json(ann_dir / f"instances_fine_{split}.json",
                     {"info": info, "images": images, "annotations": fine, "categories": fine_categories})
        coarse = {str(c["id"]): c["id"] for c in THING_CATEGORIES if c["id"] != BALL}
        _atomic_json(ann_dir / "fine_to_coarse.json", coarse | {str(c["id"]): BALL for c in BALL_SUBTYPES})


def generate_dataset(root: str | Path, num_train: int, num_val: int, size: int = 256, seed: int = 0,
                     progress: bool = True, variant: str = "standard") -> Path:
    """Generate train and val splits under ``root`` (skipped when a complete copy with the same recipe exists).

    ``variant``: a key of ``RECIPES`` (``standard`` or ``scale-spread``, see the module docstring)."""
    if variant not in RECIPES:
        raise ValueError(f"unknown synthetic variant {variant!r}; choose one of {sorted(RECIPES)}")
    root = Path(root)
    recipe = {"num_train": num_train, "num_val": num_val, "size": size, "seed": seed, "version": 6}
    if variant != "standard":
        recipe["variant"] = variant  # standard keeps its stamp: existing copies stay valid
    stamp = root / "synthetic.json"
    if stamp.is_file():
        if json.loads(stamp.read_text()) == recipe:
            return root
        for generated in (root / "train", root / "val", root / "stuffthingmaps", root / "annotations"):
            shutil.rmtree(generated, ignore_errors=True)  # another recipe's files: no stale images left behind
        stamp.unlink()
    elif root.is_dir() and any(root.iterdir()):
        raise DataError(f"{root}: not generating synthetic data here: the folder holds files the generator did not "
                        "write (no synthetic.json); point data.root at an empty or new folder, or set "
                        "data.synthetic=null to train on the data already there")
    root.mkdir(parents=True, exist_ok=True)
    generate_split(root, "train", num_train, size, seed, progress, variant)
    generate_split(root, "val", num_val, size, seed, progress, variant)
    _atomic_json(stamp, recipe)
    return root
