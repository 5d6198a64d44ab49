"""Augmentation (albumentations: boxes, masks and keypoints move together) and the eval letterbox.

The horizontal flip is applied as its own albumentations step so we know when it happened and can swap
left/right keypoints (a flipped left wrist becomes the right wrist). Each sample's randomness is seeded
from (seed, epoch, index), which makes training reproducible and resume exact with any worker count.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from ..config import AugmentConfig
from .preprocess import PAD_VALUE, letterbox, letterbox_mask
from .sample import IGNORE_INDEX, Sample, remap_objects


class TrainTransform:
    """Flip (+ keypoint swap), scale jitter, crop to ``crop`` (0 or >= ``size``: to ``size``), colour, cutout.

    Images are letterboxed to ``size`` (the evaluation size) before the scale jitter, so a smaller
    ``crop`` keeps the objects' scale distribution and only shows less context per sample, at
    (crop / size)^2 of the pixels per step. ``strong = False`` (set by the dataset for the last
    ``no_aug_epochs``) drops cutout; with ``scale = (1, 1)`` and no crop the geometric part is a plain
    letterbox to ``size`` (random pad position).
    """

    def __init__(self, size: int, cfg: AugmentConfig, flip_index: list[int], crop: int = 0):
        self.size = min(crop, size) if crop > 0 else size  # the side of every sample this transform outputs
        self.cfg = cfg
        self.strong = True
        self.flip_index = np.asarray(flip_index, np.int64) if flip_index else None
        lo, hi = cfg.scale
        crop = self.size
        geometric = [
            A.LongestMaxSize(max_size=size),
            A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), p=1.0),
            A.PadIfNeeded(min_height=crop, min_width=crop, position="random", border_mode=cv2.BORDER_CONSTANT,
                          fill=PAD_VALUE, fill_mask=IGNORE_INDEX),
            A.RandomCrop(height=crop, width=crop),
        ]
        pixel = [A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.5, hue=0.03, p=cfg.color)]
        cutout = []
        if cfg.cutout > 0:
            cutout.append(A.CoarseDropout(num_holes_range=(1, 3), hole_height_range=(0.05, 0.15),
                                          hole_width_range=(0.05, 0.15), fill=PAD_VALUE, p=cfg.cutout))
        params = dict(
            bbox_params=A.BboxParams(format="pascal_voc", label_fields=["box_index"], min_visibility=0.25,
                                     min_width=2, min_height=2, clip=True),
            keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        )
        self.flip = A.Compose([A.HorizontalFlip(p=1.0)], **params)
        self.main = A.Compose(geometric + pixel + cutout, **params)
        self.weak = A.Compose(geometric + pixel, **params) if cutout else self.main

    def __call__(self, sample: Sample, seed: int) -> Sample:
        rng = np.random.default_rng(seed)
        main = self.main if self.strong else self.weak
        main.set_random_seed(int(rng.integers(2**31)))
        if rng.random() < self.cfg.hflip:
            sample = self._apply(self.flip, sample)
            if self.flip_index is not None and sample.keypoints.shape[1]:
                sample.keypoints = sample.keypoints[:, self.flip_index]
        return self._apply(main, sample)

    @staticmethod
    def _apply(transform: A.Compose, s: Sample) -> Sample:
        n, k = s.keypoints.shape[:2]
        h, w = s.image.shape[:2]
        mask = s.mask if s.mask is not None else np.zeros((h, w), np.uint8)
        extra = {"masks": [s.objects]} if s.objects is not None else {}  # padded with 255 (unknown) like ``mask``
        out = transform(image=s.image, mask=mask, bboxes=s.boxes.reshape(-1, 4), box_index=np.arange(len(s.boxes)),
                        keypoints=s.keypoints[..., :2].reshape(-1, 2), **extra)
        keep = np.asarray(out["box_index"], np.int64)
        image = out["image"]
        kp_xy = np.asarray(out["keypoints"], np.float32).reshape(n, k, 2)[keep]
        vis = s.keypoints[keep, :, 2].copy()
        oh, ow = image.shape[:2]
        inside = (kp_xy[..., 0] >= 0) & (kp_xy[..., 0] < ow) & (kp_xy[..., 1] >= 0) & (kp_xy[..., 1] < oh)
        vis[~inside] = 0
        kp = np.concatenate([kp_xy, vis[..., None]], -1)
        kp[vis == 0] = 0
        return Sample(
            image=image, boxes=np.asarray(out["bboxes"], np.float32).reshape(-1, 4), labels=s.labels[keep],
            keypoints=kp.astype(np.float32), mask=out["mask"] if s.mask is not None else None,
            has_det=s.has_det, has_pose=s.has_pose, has_seg=s.has_seg, image_id=s.image_id, path=s.path,
            extras=s.extras, objects=remap_objects(np.asarray(out["masks"][0]), keep) if extra else None,
        )


class EvalTransform:
    """Letterbox only; records the scale so predictions map back to original pixels."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, sample: Sample, seed: int = 0) -> Sample:
        image, mask, scale = letterbox(sample.image, self.size, sample.mask)
        objects = letterbox_mask(sample.objects, self.size, scale) if sample.objects is not None else None
        kp = sample.keypoints.copy()
        kp[..., :2] *= scale
        return Sample(image=image, boxes=sample.boxes * scale, labels=sample.labels, keypoints=kp, mask=mask,
                      has_det=sample.has_det, has_pose=sample.has_pose, has_seg=sample.has_seg,
                      image_id=sample.image_id, path=sample.path,
                      extras={**sample.extras, "scale": scale, "orig_size": sample.image.shape[:2]}, objects=objects)
