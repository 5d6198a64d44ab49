"""The deploy contract (``model.json``) and embedding it into exported files.

``model.json`` says everything an app needs without reading our code: input size, layout, dtype and
normalisation (and int8 input quantization where used), every output's name, order, shape, dtype and
meaning, labels, keypoint names, skeleton. Each artifact carries the same document plus its own I/O
(``io``) — e.g. onnx2tf makes some TFLite outputs NHWC or transposed, so ``io`` gives the permutation
(``to_torch``) that restores the documented layout.

Where each file keeps the document, and reading it back, is ``mtnet.modeljson``; a TFLite file also gets
its output tensors / signature outputs renamed to the documented names and the standard TFLite Model Metadata
built from the document (:func:`rewrite_tflite`, :mod:`export.tflite_metadata`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from mtnet.data.preprocess import MEAN, PAD_VALUE, STD
from mtnet.decode import NMS_IOU
from mtnet.modeljson import embed_tflite

SCHEMA_VERSION = 1
DEFAULT_AUTHOR = "mtnet"
DEFAULT_LICENSE = "Apache-2.0"  # the SDK's; pass --license for weights under other terms

def output_spec(model, imgsz: int) -> list[dict[str, Any]]:
    """Name, shape, dtype, axes and meaning of each deploy output (torch / ONNX layout), in order; shapes and
    dtypes from a traced forward, the rest from the tasks' ``OutputDef``s (``model.output_defs()``)."""
    import torch

    was = model.deploy
    model.deploy = True
    try:
        with torch.no_grad():
            outs = model.eval()(torch.zeros(1, 3, imgsz, imgsz))
    finally:
        model.deploy = was
    return [{"name": o.name, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."), "axes": o.axes,
             "meaning": o.meaning, **({"float_tail": True} if o.float_tail else {}),
             **({"labels": o.labels, "labels_kind": o.labels_kind} if o.labels else {})}
            for o, t in zip(model.output_defs(), outs, strict=True)]


def model_info(model, imgsz: int, source: str, *, author: str = DEFAULT_AUTHOR,
               license: str = DEFAULT_LICENSE) -> dict[str, str]:
    """Name, version, author and license of an exported model (``model.json`` ``model_info``; the standard
    TFLite metadata's model fields). The version names the checkpoint it came from and the mtnet release."""
    from mtnet.version import __version__

    src = Path(source)
    return {"name": f"mtnet {'+'.join(model.tasks)} {imgsz}px", "version": f"{src.parent.name}/{src.name} "
            f"(mtnet {__version__}, model.json schema {SCHEMA_VERSION})", "author": author, "license": license}


def build_model_json(model, imgsz: int, *, source: str, author: str = DEFAULT_AUTHOR,
                     license: str = DEFAULT_LICENSE) -> dict[str, Any]:
    """The artifact-independent part of ``model.json``.

    ``model``: a ``MultiTaskNet`` or an ``export.nms.NMSDeploy`` around one (then ``nms_in_graph`` is
    true and ``nms`` holds its settings). ``author`` / ``license``: ``model_info`` (``--author`` / ``--license``).
    """
    meta = model.meta
    strides = list(model.strides)
    from .nms import NMSDeploy

    nms = model.describe() if isinstance(model, NMSDeploy) else None
    postprocess = (f"keep (anchor, class) with score > conf; class-aware NMS (IoU {NMS_IOU}); map to original "
                   "pixels by dividing by the letterbox scale (mtnet.decode)")
    if nms:
        postprocess = (f"NMS is in the graph (best class per anchor, score > {nms['conf']}, class-aware IoU "
                       f"{nms['iou']}, at most {nms['max_det']}): read the first num_detections rows of "
                       "detections; map to original pixels by dividing by the letterbox scale "
                       "(mtnet.decode.decode_nms_outputs)")
    return {
        "schema_version": SCHEMA_VERSION,
        "source_checkpoint": source,
        "model_info": model_info(model, imgsz, source, author=author, license=license),
        "tasks": list(model.tasks),
        "input": {
            "name": "images", "imgsz": imgsz, "color": "RGB",
            "preprocess": f"letterbox: resize longer side to {imgsz}, pad bottom/right with {PAD_VALUE}; "
                          "x = (pixel / 255 - mean) / std",
            "mean": list(MEAN), "std": list(STD), "pad_value": PAD_VALUE,
            "layouts": {"onnx": "NCHW float32", "tflite": "NHWC", "coreml": "RGB image (normalisation in-model)"},
        },
        "outputs": output_spec(model, imgsz),
        "anchors": {"strides": strides, "count": sum((imgsz // s) ** 2 for s in strides),
                    "order": f"level by level (strides {strides}), row-major inside a level"},
        "nms_in_graph": nms is not None,
        **({"nms": nms} if nms else {}),
        "postprocess": postprocess,
        "labels": {
            "det": meta.det_classes, "det_category_ids": meta.det_category_ids,
            "seg": meta.seg_classes, "seg_category_ids": meta.seg_category_ids,
        },
        "keypoints": {"names": meta.keypoint_names, "skeleton": meta.skeleton, "flip_index": meta.flip_index,
                      "person_class": meta.keypoint_class, "sigmas": meta.keypoint_sigmas},
        "meta": meta.to_dict(),
    }


def tflite_io(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Inputs and outputs of a .tflite as LiteRT reports them (name, shape, dtype, quantization)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))

    def desc(d: dict) -> dict[str, Any]:
        scale, zero = d["quantization"]
        return {"name": d["name"], "shape": d["shape"].tolist(), "dtype": np.dtype(d["dtype"]).name,
                "quantization": {"scale": float(scale), "zero_point": int(zero)} if scale else None}

    return {"inputs": [desc(d) for d in interp.get_input_details()],
            "outputs": [desc(d) for d in interp.get_output_details()]}


def rewrite_tflite(src: str | Path, dst: str | Path, *, output_names: dict[str, str], input_name: str,
                   doc: dict[str, Any]) -> None:
    """Copy ``src`` to ``dst`` with outputs renamed (old tensor name -> new) and put in ``doc``'s order, ``doc``
    embedded (``mtnet.model_json`` buffer) and the standard TFLite metadata built from it
    (:mod:`export.tflite_metadata`: metadata buffer + associated files appended)."""
    from ai_edge_litert import schema_py_generated as schema

    from .tflite_metadata import append_associated_files, attach, build_metadata

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(Path(src).read_bytes()), 0))
    graph = model.subgraphs[0]
    index_to_new: dict[int, str] = {}
    for i in graph.outputs:
        old = graph.tensors[i].name.decode()
        graph.tensors[i].name = output_names[old].encode()
        index_to_new[i] = output_names[old]
    order = [o["name"] for o in doc["outputs"]]
    graph.outputs = sorted((int(i) for i in graph.outputs), key=lambda i: order.index(index_to_new[i]))
    graph.tensors[graph.inputs[0]].name = input_name.encode()
    for sig in model.signatureDefs or []:
        for tmap in sig.outputs or []:
            tmap.name = index_to_new[tmap.tensorIndex].encode()
        for tmap in sig.inputs or []:
            tmap.name = input_name.encode()
    embed_tflite(model, doc)
    metadata, files = build_metadata(doc, [index_to_new[i] for i in graph.outputs])
    attach(model, metadata)
    builder = _aligned_builder_class()(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    Path(dst).write_bytes(append_associated_files(bytes(builder.Output()), files))


@functools.cache
def _aligned_builder_class():
    """The builder class, made on first use (flatbuffers comes with the export extra)."""
    import flatbuffers

    class AlignedBuilder(flatbuffers.Builder):
        """Writes uint8 arrays (the model's constant buffers) 16-byte aligned, as TFLite's schema asks
        (``Buffer.data: [ubyte] (force_align: 16)``) and the generated Python code does not: LiteRT copies every
        unaligned constant to the heap instead of using the mapped file."""

        _align16 = False

        def CreateNumpyVector(self, x):  # noqa: N802 (flatbuffers' API)
            self._align16 = x.dtype == np.uint8
            try:
                return super().CreateNumpyVector(x)
            finally:
                self._align16 = False

        def StartVector(self, elemSize, numElems, alignment):  # noqa: N802, N803
            return super().StartVector(elemSize, numElems, 16 if self._align16 else alignment)

    return AlignedBuilder

