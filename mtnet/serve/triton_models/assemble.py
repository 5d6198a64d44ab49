"""Triton model ``assemble``: detections + classifier probabilities -> the cascade's answer, through
``mtnet.cascade.relabel.Relabeler`` (the Python ``Cascade``'s own code). Outputs: ``BOXES`` [D, 4]
(xyxy, original pixels), ``SCORES`` [D], ``CATEGORY_IDS`` [D] (fine category ids), ``IMAGE_INDEX`` [D]
(which request image), sorted by image, then by descending score."""

from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by Triton's Python backend

from mtnet.cascade.relabel import Relabeler
from mtnet.data.fine import FineLabels
from mtnet.decode import Detections
from mtnet.serve.triton_models.common import read_cascade_json


class TritonPythonModel:
    def initialize(self, args):
        doc = read_cascade_json(args)
        fine = FineLabels.from_dict(doc["fine"])
        self.relabeler = Relabeler(fine, doc["detector"]["category_ids"], conf=doc["decode"]["conf"],
                                   multi_label=doc["decode"]["multi_label"])
        self.fine_ids = np.asarray(fine.fine_ids, np.int32)

    def _one(self, request):
        get = lambda name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()  # noqa: E731
        boxes, scores, labels, image, probs = (get(n) for n in ("det_boxes", "det_scores", "det_labels", "det_image", "probs"))
        out = {"BOXES": [np.zeros((0, 4), np.float32)], "SCORES": [np.zeros(0, np.float32)],
               "CATEGORY_IDS": [np.zeros(0, np.int32)], "IMAGE_INDEX": [np.zeros(0, np.int32)]}
        start = 0
        for i in np.unique(image):
            sel = image == i
            det = Detections(boxes[sel], scores[sel], labels[sel])
            k = len(self.relabeler.to_classify(det))
            fine = self.relabeler.apply(det, probs[start : start + k])
            start += k
            out["BOXES"].append(fine.boxes.astype(np.float32))
            out["SCORES"].append(fine.scores.astype(np.float32))
            out["CATEGORY_IDS"].append(self.fine_ids[fine.labels])
            out["IMAGE_INDEX"].append(np.full(len(fine), i, np.int32))
        return pb_utils.InferenceResponse([pb_utils.Tensor(k, np.concatenate(v)) for k, v in out.items()])

    def execute(self, requests):
        return [self._one(r) for r in requests]
