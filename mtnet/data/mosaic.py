"""Multi-image augmentations: 4-image mosaic and mixup (YOLOv4 / YOLOX "bag of freebies").

Both take samples that already went through the single-image ``TrainTransform`` (so each tile has its
own flip, scale and colour jitter) and combine them; boxes, keypoints and masks are moved by the same
albumentations ops as the pixels.

Partial labels: a task counts as labelled for the combined image only when every part labels it
(``has_det`` / ``has_pose``), because a box loss cannot ignore a region. Segmentation is exact per pixel:
parts without a mask contribute 255 (ignore), so ``has_seg`` holds when any part has a mask.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from .preprocess import PAD_VALUE
from .sample import IGNORE_INDEX, Sample, remap_objects
from .transforms import TrainTransform


def _mask_or_ignore(s: Sample) -> np.ndarray:
    if s.has_seg and s.mask is not None:
        return s.mask
    return np.full(s.image.shape[:2], IGNORE_INDEX, np.uint8)


def _objects_or_ignore(s: Sample, offset: int) -> np.ndarray:
    """A part's object map renumbered after the rows of the parts before it (255 where it has none)."""
    if s.objects is None:
        return np.full(s.image.shape[:2], IGNORE_INDEX, np.uint8)
    return remap_objects(s.objects, np.arange(len(s.boxes)), offset)


def _combine_flags(parts: list[Sample]) -> dict:
    return {"has_det": all(p.has_det for p in parts), "has_pose": all(p.has_pose for p in parts),
            "has_seg": any(p.has_seg and p.mask is not None for p in parts)}


class Mosaic:
    """Tile 4 samples of size s into a 2s x 2s canvas, rescale it by ``scale`` (a range), crop s x s at random."""

    def __init__(self, size: int, scale: tuple[float, float] = (0.5, 1.5)):
        self.size = size
        self.crop = A.Compose(
            [A.RandomScale(scale_limit=(scale[0] - 1.0, scale[1] - 1.0), p=1.0),
             A.PadIfNeeded(min_height=size, min_width=size, border_mode=cv2.BORDER_CONSTANT, fill=PAD_VALUE,
                           fill_mask=IGNORE_INDEX),
             A.RandomCrop(height=size, width=size)],
            bbox_params=A.BboxParams(format="pascal_voc", label_fields=["box_index"], min_visibility=0.25,
                                     min_width=2, min_height=2, clip=True),
            keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        )

    def __call__(self, tiles: list[Sample], seed: int) -> Sample:
        s = self.size
        canvas = np.full((2 * s, 2 * s, 3), PAD_VALUE, np.uint8)
        mask = np.full((2 * s, 2 * s), IGNORE_INDEX, np.uint8)
        objects = np.full((2 * s, 2 * s), IGNORE_INDEX, np.uint8)
        boxes, labels, kpts = [], [], []
        rows = 0
        for t, (oy, ox) in zip(tiles, ((0, 0), (0, s), (s, 0), (s, s)), strict=True):
            h, w = t.image.shape[:2]
            canvas[oy:oy + h, ox:ox + w] = t.image
            mask[oy:oy + h, ox:ox + w] = _mask_or_ignore(t)
            objects[oy:oy + h, ox:ox + w] = _objects_or_ignore(t, rows)
            rows += len(t.boxes)
            boxes.append(t.boxes + np.array([ox, oy, ox, oy], np.float32))
            k = t.keypoints.copy()
            k[..., 0] += ox
            k[..., 1] += oy
            kpts.append(k)
            labels.append(t.labels)
        combined = Sample(image=canvas, boxes=np.concatenate(boxes), labels=np.concatenate(labels),
                          keypoints=np.concatenate(kpts), mask=mask, image_id=tiles[0].image_id,
                          path=tiles[0].path, extras={**tiles[0].extras, "mosaic": True}, **_combine_flags(tiles),
                          objects=objects if any(t.objects is not None for t in tiles) else None)
        self.crop.set_random_seed(seed)
        out = TrainTransform._apply(self.crop, combined)
        if not out.has_seg:
            out.mask = None
        return out


def mixup(a: Sample, b: Sample, rng: np.random.Generator) -> Sample:
    """Blend two same-size samples with weight ~ Beta(32, 32); targets of both are kept.

    Mask pixels stay labelled only where both images agree on the class (else 255): a blended pixel
    belongs to neither class alone.
    """
    lam = float(rng.beta(32.0, 32.0))
    image = (a.image.astype(np.float32) * lam + b.image.astype(np.float32) * (1 - lam)).round().astype(np.uint8)
    flags = _combine_flags([a, b])
    mask = objects = None
    if flags["has_seg"]:
        ma, mb = _mask_or_ignore(a), _mask_or_ignore(b)
        mask = np.where(ma == mb, ma, IGNORE_INDEX).astype(np.uint8)
    if a.objects is not None or b.objects is not None:  # a pixel of objects from both images is ambiguous
        oa, ob = _objects_or_ignore(a, 0), _objects_or_ignore(b, len(a.boxes))
        objects = np.where(oa == 0, ob, np.where(ob == 0, oa, IGNORE_INDEX)).astype(np.uint8)
    return Sample(image=image, boxes=np.concatenate([a.boxes, b.boxes]), labels=np.concatenate([a.labels, b.labels]),
                  keypoints=np.concatenate([a.keypoints, b.keypoints]), mask=mask, image_id=a.image_id,
                  path=a.path, extras={**a.extras, "mixup": lam}, **flags, objects=objects)
