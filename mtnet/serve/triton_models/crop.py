"""Triton model ``crop``: the detector's raw outputs -> detections in original pixels (``mtnet.decode``,
as ``Predictor``) and the classifier's crops of those with sub-types (``mtnet.cascade.crops``), cut
from the original images (``IMAGES`` decoded again: the detector only saw them downscaled).

Outputs: ``det_boxes`` [M, 4], ``det_scores`` [M], ``det_labels`` [M] (coarse labels), ``det_image``
[M] (request image index), ``crops`` float32 [K, 3, C, C] (normalised, the detections of
``Relabeler.to_classify``, image by image)."""

from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by Triton's Python backend

from mtnet.cascade.crops import crop_boxes
from mtnet.cascade.relabel import Relabeler
from mtnet.data.fine import FineLabels
from mtnet.data.preprocess import normalize_nhwc
from mtnet.data.sample import decode_image
from mtnet.decode import decode_detections
from mtnet.serve.triton_models.common import answer_each, read_cascade_json


class TritonPythonModel:
    def initialize(self, args):
        doc = read_cascade_json(args)
        self.opts = doc["decode"]
        self.size, self.context = int(doc["classifier"]["imgsz"]), float(doc["classifier"]["context"])
        self.relabeler = Relabeler(FineLabels.from_dict(doc["fine"]), doc["detector"]["category_ids"],
                                   conf=self.opts["conf"], multi_label=self.opts["multi_label"])

    def _one(self, request):
        get = lambda name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()  # noqa: E731
        data, boxes, scores, scales = get("IMAGES").reshape(-1), get("boxes"), get("scores"), get("scales")
        rows = {"boxes": [], "scores": [], "labels": [], "image": []}
        crops = [np.zeros((0, self.size, self.size, 3), np.uint8)]
        o = self.opts
        for i in range(len(data)):
            det = decode_detections(boxes[i], scores[i], conf=o["conf"], iou=o["iou"], max_det=o["max_det"],
                                    multi_label=o["multi_label"]).scaled(float(scales[i]))
            idx = self.relabeler.to_classify(det)
            if len(idx):
                crops.append(crop_boxes(decode_image(bytes(data[i]), f"IMAGES[{i}]"), det.boxes[idx], self.size, self.context))
            rows["boxes"].append(det.boxes.astype(np.float32).reshape(-1, 4))
            rows["scores"].append(det.scores.astype(np.float32))
            rows["labels"].append(det.labels.astype(np.int64))
            rows["image"].append(np.full(len(det), i, np.int32))
        crop_x = np.ascontiguousarray(normalize_nhwc(np.concatenate(crops)).transpose(0, 3, 1, 2))
        return pb_utils.InferenceResponse([
            pb_utils.Tensor("det_boxes", np.concatenate(rows["boxes"]).reshape(-1, 4)),
            pb_utils.Tensor("det_scores", np.concatenate(rows["scores"])),
            pb_utils.Tensor("det_labels", np.concatenate(rows["labels"])),
            pb_utils.Tensor("det_image", np.concatenate(rows["image"])),
            pb_utils.Tensor("crops", crop_x.astype(np.float32)),
        ])

    def execute(self, requests):
        return answer_each(pb_utils, requests, self._one)
