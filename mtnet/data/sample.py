"""The one canonical sample every source produces and every transform consumes."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UserError

IGNORE_INDEX = 255  # semantic-mask value that no loss or metric counts
MAX_OBJECTS = 254  # objects an object map can name (values 1..254); further objects' pixels are IGNORE_INDEX


class DataError(UserError, ValueError):
    """Bad input data; the message names the file and, where there is one, the annotation id."""


@dataclass
class Sample:
    image: np.ndarray  # H x W x 3 uint8 RGB
    boxes: np.ndarray  # N x 4 float32, xyxy in pixels
    labels: np.ndarray  # N int64 contiguous detection labels
    keypoints: np.ndarray  # N x K x 3 float32 (x, y, visibility 0/1/2); zeros where an object has none
    mask: np.ndarray | None  # H x W uint8 contiguous segmentation labels, 255 = ignore
    has_det: bool = True  # the source labels boxes for this image (no boxes then means "no objects")
    has_pose: bool = False  # the source labels keypoints for this image
    has_seg: bool = False  # the source labels a semantic mask for this image
    image_id: int = 0
    path: str = ""
    extras: dict = field(default_factory=dict)
    # per-object pixel map (H x W uint8) for tasks whose labels are per-object regions (``Task.uses_objects``):
    # k = pixel of object row k - 1, 0 = no object, 255 = unknown (crowd, object without an outline, padding).
    # It moves with the image like ``mask``; transforms renumber it when they drop boxes (``remap_objects``).
    objects: np.ndarray | None = None

    @classmethod
    def empty_targets(cls, image: np.ndarray, num_keypoints: int, **kwargs) -> Sample:
        return cls(image=image, boxes=np.zeros((0, 4), np.float32), labels=np.zeros((0,), np.int64),
                   keypoints=np.zeros((0, num_keypoints, 3), np.float32), mask=None, **kwargs)


def remap_objects(objects: np.ndarray | None, kept_rows: np.ndarray, offset: int = 0) -> np.ndarray | None:
    """Renumber an object map after boxes were filtered: row ``kept_rows[j]`` becomes row ``offset + j``; dropped
    rows become 0 (no object: their box is gone), rows past ``MAX_OBJECTS`` become IGNORE_INDEX."""
    if objects is None:
        return None
    lut = np.zeros(256, np.int64)
    lut[IGNORE_INDEX] = IGNORE_INDEX
    rows = np.asarray(kept_rows, np.int64)
    rows = rows[rows < MAX_OBJECTS]
    new = offset + 1 + np.nonzero(np.asarray(kept_rows, np.int64) < MAX_OBJECTS)[0]
    lut[rows + 1] = np.where(new <= MAX_OBJECTS, new, IGNORE_INDEX)
    return lut.astype(np.uint8)[objects]


def read_image(path: str, image_id: int | str | None = None) -> np.ndarray:
    """Read an image as RGB uint8; a missing or corrupt file raises DataError naming it (and its data set
    ``image_id`` when given, as ``mtnet data check`` does)."""
    where = f"{path}: image id {image_id}" if image_id is not None else str(path)
    try:
        return _decode(path, where)
    except FileNotFoundError:
        raise DataError(f"{where}: image file not found") from None


def decode_image(data: bytes, where: str = "image bytes") -> np.ndarray:
    """Encoded image bytes (JPEG, PNG, ...) -> RGB uint8, decoded exactly as :func:`read_image` decodes files
    (servers receive bytes; their results must equal the Python API's); corrupt bytes raise DataError."""
    return _decode(io.BytesIO(data), where)


def _decode(source, where: str) -> np.ndarray:
    try:
        with Image.open(source) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise DataError(f"{where}: cannot read image ({e})") from None


def read_label_png(path: str) -> np.ndarray:
    """Read a single-channel label PNG (palette or grey) without any colour conversion."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P", "I", "I;16"):
                raise DataError(f"{path}: label map must be a single-channel PNG, got mode {im.mode}")
            return np.asarray(im)
    except FileNotFoundError:
        raise DataError(f"{path}: label map not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"{path}: cannot read label map ({e})") from None
