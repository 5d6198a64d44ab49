"""``mtnet export --nms``: non-maximum suppression inside the exported graph.

:class:`NMSDeploy` wraps a deploy-mode ``MultiTaskNet`` (the model itself is not changed) and appends:

1. per anchor, the best class score and its class id (``max`` over classes: single-label, what an app
   wants; the mAP evaluation without NMS uses multi-label);
2. top-k pre-selection of ``candidates`` anchors by that score (ONNX ``TopK`` -> TFLite ``TOPK_V2``);
3. class-aware NMS: boxes are offset by ``class * (imgsz + 1)`` so boxes of different classes never
   overlap (the same trick as ``mtnet.decode.batched_nms``; decoded boxes are clipped to
   ``[0, imgsz]``), then one ONNX ``NonMaxSuppression`` (IoU ``iou``, score > ``conf``, at most
   ``max_det``), which onnx2tf 1.28.8 lowers to TFLite's builtin ``NON_MAX_SUPPRESSION_V4`` with
   ``pad_to_max_output_size`` (``NMS_TFLITE_OP``; checked on the written file by :func:`nms_ops`);
4. fixed-size outputs: ``detections`` [B, max_det, 6] (x1, y1, x2, y2 in input pixels, score, class),
   rows past ``num_detections`` [B] (int32) are zero; every other per-anchor output (``keypoints`` [B,
   max_det, K*3] with pose) keeps the rows of the kept detections; dense outputs (``seg``) are unchanged.

onnx2tf's padded NMS drops the op's own valid-count output and pads the selected indices with 0, so the
count is recomputed in-graph: index 0 of the top-k list is the highest score, hence selected first
whenever anything is selected, and NMS never selects an index twice, so
``num = (top score > conf) + #(selected indices != 0)``. ONNX Runtime returns exactly the selected rows;
the graph pads them with zeros to ``max_det`` the same way, so one graph serves both.

Batch size 1 only (the exported graphs have a fixed batch of 1). The NMS graph is not GPU-delegate
compatible (``NON_MAX_SUPPRESSION_V4``, ``TOPK_V2`` and ``ARG_MAX`` are not GPU ops): the delegate runs
the network and hands the tail to the CPU; export without ``--nms`` for a fully delegated graph.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from mtnet.decode import NMS_IOU
from mtnet.tasks import OutputDef

NMS_TFLITE_OP = "NON_MAX_SUPPRESSION_V4"
DETECTION_OUTPUTS = ("boxes", "scores")  # the detection task's outputs that NMS replaces


@dataclass(frozen=True)
class NMSOptions:
    """In-graph NMS settings (baked into the exported file)."""

    conf: float = 0.25  # keep detections with score > conf (an app's threshold; evaluation wants it low)
    iou: float = NMS_IOU  # same IoU as mtnet.decode
    max_det: int = 100
    candidates: int = 1000  # anchors kept by the top-k pre-selection (capped at the anchor count)

    def validate(self) -> None:
        from mtnet.errors import UserError

        if not 0.0 <= self.conf < 1.0:
            raise UserError(f"--nms-conf must be in [0, 1), got {self.conf}")
        if not 0.0 < self.iou <= 1.0:
            raise UserError(f"--nms-iou must be in (0, 1], got {self.iou}")
        if self.max_det < 1 or self.candidates < 1:
            raise UserError(f"--max-det and --nms-candidates must be >= 1, got {self.max_det}, {self.candidates}")


class _NonMaxSuppression(torch.autograd.Function):
    """ONNX ``NonMaxSuppression`` (opset >= 11): exported as that single node; eager: greedy NMS.

    ``boxes`` [1, N, 4], ``scores`` [1, 1, N] -> selected [M, 3] int64 rows (batch, class, box index) in
    descending score order, M <= ``max_output``, score > ``score_threshold`` (ONNX semantics).
    """

    @staticmethod
    def forward(ctx, boxes, scores, max_output: int, iou: float, score_threshold: float):  # noqa: ARG004
        from mtnet.decode import nms

        b = boxes[0].detach().cpu().numpy()
        s = scores[0, 0].detach().cpu().numpy()
        ok = np.nonzero(s > score_threshold)[0]
        keep = ok[nms(b[ok], s[ok], iou)][:max_output]
        rows = np.zeros((len(keep), 3), np.int64)
        rows[:, 2] = keep
        return torch.from_numpy(rows).to(boxes.device)

    @staticmethod
    def symbolic(g, boxes, scores, max_output: int, iou: float, score_threshold: float):
        return g.op("NonMaxSuppression", boxes, scores,
                    g.op("Constant", value_t=torch.tensor([max_output], dtype=torch.int64)),
                    g.op("Constant", value_t=torch.tensor([iou], dtype=torch.float32)),
                    g.op("Constant", value_t=torch.tensor([score_threshold], dtype=torch.float32)))


class NMSDeploy(nn.Module):
    """A deploy-mode ``MultiTaskNet`` plus in-graph class-aware NMS (see the module docstring).

    Quacks like the model for export and ``TorchBackend``: ``deploy``, ``meta``, ``tasks``, ``strides``,
    ``seg_output`` and ``output_names()``.
    """

    def __init__(self, model: nn.Module, imgsz: int, options: NMSOptions | None = None):
        super().__init__()
        if "det" not in model.tasks:
            raise ValueError("--nms needs the detection task")
        self.model = model
        self.imgsz = imgsz
        self.options = options or NMSOptions()
        self.options.validate()

    # --- the attributes export / TorchBackend read from a MultiTaskNet
    @property
    def meta(self):
        return self.model.meta

    @property
    def tasks(self) -> list[str]:
        return self.model.tasks

    @property
    def strides(self):
        return self.model.strides

    @property
    def seg_output(self) -> str:
        return self.model.seg_output

    @seg_output.setter
    def seg_output(self, value: str) -> None:
        self.model.seg_output = value

    @property
    def deploy(self) -> bool:
        return True  # NMS outputs only exist in deploy mode

    @deploy.setter
    def deploy(self, value: bool) -> None:
        """Exporters save and restore ``deploy``; the wrapper has no training mode to switch to."""
        if not value:
            raise ValueError("the NMS export wrapper has only a deploy mode")

    def describe(self) -> dict:
        """The ``nms`` section of ``model.json`` (``tflite_op`` is added once read back from the file)."""
        o = self.options
        return {"conf": o.conf, "iou": o.iou, "max_det": o.max_det, "candidates": o.candidates,
                "class_aware": True, "multi_label": False, "onnx_op": "NonMaxSuppression",
                "expected_tflite_op": NMS_TFLITE_OP, "gpu_delegate": False}

    def output_defs(self) -> list[OutputDef]:
        """The NMS outputs replace ``boxes`` / ``scores``; other tasks' per-anchor outputs keep the rows of
        the kept detections, dense outputs pass through."""
        defs = [
            OutputDef("detections", "B,max_det,6", "kept detections after in-graph class-aware NMS, descending "
                      "score: x1, y1, x2, y2 (input pixels), score, class label (float); rows past num_detections "
                      "are zero", per_anchor=True, float_tail=True, labels="labels.det", labels_kind="value"),
            OutputDef("num_detections", "B", "number of valid rows of detections (int32)"),
        ]
        for o in self.model.output_defs():
            if o.name in DETECTION_OUTPUTS:
                continue
            if o.per_anchor:
                o = replace(o, axes=o.axes.replace("B,A,", "B,max_det,"),
                            meaning=f"{o.meaning}; rows of the kept detections (same rows as detections), rows past "
                                    "num_detections are zero")
            defs.append(o)
        return defs

    def output_names(self) -> list[str]:
        return [o.name for o in self.output_defs()]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Deploy outputs -> fixed-size NMS outputs.

        Written with 1-D index vectors and axis-0 gathers on 2-D tensors, without broadcasting: onnx2tf
        re-lays out rank >= 3 tensors and mis-broadcasts [k, 4] + [k, 1] (it produced [k, k]). Rows past
        the valid count gather an appended zero row instead of being multiplied by a mask.
        """
        if images.shape[0] != 1:
            if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
                raise ValueError(f"the NMS graph takes batch 1, got {images.shape[0]}")
            parts = [self(images[i : i + 1]) for i in range(images.shape[0])]  # eager: one image at a time
            return tuple(torch.cat(p) for p in zip(*parts, strict=True))
        opts = self.options
        was = self.model.deploy
        self.model.deploy = True
        try:
            outs = dict(zip(self.model.output_names(), self.model(images), strict=True))
        finally:
            self.model.deploy = was
        num_anchors, num_classes = int(outs["scores"].shape[1]), int(outs["scores"].shape[2])
        boxes = outs["boxes"].reshape(num_anchors, 4)
        best, label = outs["scores"].reshape(num_anchors, num_classes).max(1)  # [A], [A]
        k = min(opts.candidates, num_anchors)
        top, idx = best.topk(k)  # [k], descending
        cand = boxes.index_select(0, idx)  # [k, 4]
        cls = label.index_select(0, idx)  # [k]
        # class-aware: shift each box by class * (imgsz + 1) (boxes are clipped to [0, imgsz])
        table = torch.arange(num_classes, dtype=torch.float32)[:, None].repeat(1, 4) * float(self.imgsz + 1)
        shifted = cand + table.index_select(0, cls)
        selected = _NonMaxSuppression.apply(shifted.reshape(1, k, 4), top.reshape(1, 1, k), opts.max_det,
                                            opts.iou, opts.conf)
        keep = torch.cat([selected[:, 2], torch.zeros(opts.max_det, dtype=torch.int64)])[: opts.max_det]
        num = (keep != 0).sum() + (top[0] > opts.conf).to(torch.int64)  # see the module docstring
        rows = torch.where(torch.arange(opts.max_det) < num, keep, torch.full_like(keep, k))  # k: the zero row
        zero = torch.zeros(1, 1)
        det = torch.cat([torch.cat([cand, zero.repeat(1, 4)]).index_select(0, rows),
                         torch.cat([top[:, None], zero]).index_select(0, rows),
                         torch.cat([cls.to(torch.float32)[:, None], zero]).index_select(0, rows)], 1)
        results = [det.reshape(1, opts.max_det, 6), num.to(torch.int32).reshape(1)]
        for o in self.model.output_defs():
            if o.name in DETECTION_OUTPUTS:
                continue
            if not o.per_anchor:
                results.append(outs[o.name])
                continue
            rows_of = outs[o.name].reshape(num_anchors, -1).index_select(0, idx)  # [k, D]
            rows_of = torch.cat([rows_of, zero.repeat(1, rows_of.shape[1])]).index_select(0, rows)
            results.append(rows_of.reshape(1, opts.max_det, -1))
        return tuple(results)

def nms_constants_to_initializers(proto) -> None:
    """Turn the ``Constant`` nodes feeding ``NonMaxSuppression`` into graph initializers (in place).

    onnx2tf 1.28.8 converts ``Constant`` nodes to TF tensors and then tests the NMS thresholds with
    ``!= ""``, which a TF tensor rejects; initializers reach it as NumPy arrays, which it handles.
    """
    graph = proto.graph
    wanted = {name for n in graph.node if n.op_type == "NonMaxSuppression" for name in n.input[2:]}
    for node in [n for n in graph.node if n.op_type == "Constant" and n.output[0] in wanted]:
        (attr,) = [a for a in node.attribute if a.name == "value"]
        tensor = attr.t
        tensor.name = node.output[0]
        graph.initializer.append(tensor)
        graph.node.remove(node)


def nms_ops(tflite_path) -> list[str]:
    """The non-max-suppression builtin op(s) present in a .tflite file (read from its op codes)."""
    from ai_edge_litert.interpreter import Interpreter

    ops = {op["op_name"] for op in Interpreter(model_path=str(tflite_path))._get_ops_details()}
    return sorted(o for o in ops if "NON_MAX_SUPPRESSION" in o)

