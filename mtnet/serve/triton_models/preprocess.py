"""Triton model ``preprocess``: ``IMAGES`` (BYTES [N], encoded JPEG/PNG) -> detector input ``images``
(float32 [N, 3, S, S], letterboxed and normalised exactly as ``Predictor.predict``), ``scales`` [N]
and ``shapes`` [N, 2] (height, width). Refuses an empty batch, more than ``max_images`` images, an image
over ``max_image_bytes`` or ``max_pixels``, and bytes that do not decode."""

from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by Triton's Python backend

from mtnet.data.preprocess import letterbox, normalize_nhwc
from mtnet.data.sample import decode_image
from mtnet.errors import UserError
from mtnet.serve.triton_models.common import answer_each, read_cascade_json


class TritonPythonModel:
    def initialize(self, args):
        doc = read_cascade_json(args)
        self.imgsz = int(doc["detector"]["imgsz"])
        self.limits = doc["limits"]

    def _one(self, request):
        data = pb_utils.get_input_tensor_by_name(request, "IMAGES").as_numpy().reshape(-1)
        n, lim = len(data), self.limits
        if n == 0:
            raise UserError("IMAGES: empty batch (send at least one encoded image)")
        if n > lim["max_images"]:
            raise UserError(f"IMAGES: {n} images in one request, the limit is {lim['max_images']}")
        images, scales, shapes = [], [], []
        for i, item in enumerate(data):
            raw = bytes(item)
            if len(raw) > lim["max_image_bytes"]:
                raise UserError(f"IMAGES[{i}]: {len(raw)} bytes, the limit is {lim['max_image_bytes']}")
            image = decode_image(raw, f"IMAGES[{i}]")
            if image.shape[0] * image.shape[1] > lim["max_pixels"]:
                raise UserError(f"IMAGES[{i}]: {image.shape[1]}x{image.shape[0]} pixels, the limit is {lim['max_pixels']}")
            boxed, _, scale = letterbox(image, self.imgsz)
            images.append(boxed)
            scales.append(scale)
            shapes.append(image.shape[:2])
        x = np.ascontiguousarray(normalize_nhwc(np.stack(images)).transpose(0, 3, 1, 2))
        return pb_utils.InferenceResponse([
            pb_utils.Tensor("images", x),
            pb_utils.Tensor("scales", np.asarray(scales, np.float64)),  # float64: the Python API divides by this float
            pb_utils.Tensor("shapes", np.asarray(shapes, np.int32)),
        ])

    def execute(self, requests):
        return answer_each(pb_utils, requests, self._one)
