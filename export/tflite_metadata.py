"""Standard TFLite Model Metadata (the ``metadata_schema.fbs`` flatbuffer Android Studio, the LiteRT support
library, MediaPipe Tasks and ``tflite-support``'s ``MetadataDisplayer`` read) for every exported ``.tflite``.

Built from ``model.json`` with the schema's own generated classes (``metadata_schema_py_generated``, vendored
unchanged from the mediapipe wheel: mediapipe's own metadata writers do not import from its wheel, and
``tflite-support``'s need protobuf < 4, which TensorFlow 2.21 refuses) and ``flatbuffers``, exactly the way
``tflite-support``'s ``MetadataPopulator`` lays it out:

* the metadata flatbuffer (file identifier ``M001``) in a model buffer named by a ``Model.metadata`` entry
  ``TFLITE_METADATA``, with ``min_parser_version`` computed by the rules of tflite-support's
  ``metadata_version.cc``;
* the associated files (labels, keypoint names, ``model.json``) as an uncompressed zip appended to the
  flatbuffer (flatbuffer offsets count from the start, so the model still loads; zip readers find the
  central directory from the end).

What goes in: model name / description / version / author / license; the input's image properties (RGB),
normalisation options (mean/std in pixel units) and value range; every output's name and description from
``model.json`` ``outputs`` (generic: a task's new output is described without code here) and, where an
output names a label list (``OutputDef.labels``), that list as a labels file; ``model.json`` as a model-level
associated file. MediaPipe targets (``export.mediapipe``) add what their task needs (bounding-box properties,
the detection tensor group, the segmenter's activation).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from . import image_segmenter_metadata_schema_py_generated as seg_schema
from . import metadata_schema_py_generated as md

METADATA_NAME = "TFLITE_METADATA"  # the Model.metadata entry tflite-support / MediaPipe look up
METADATA_IDENTIFIER = b"M001"
SEGMENTER_METADATA_NAME = "SEGMENTER_METADATA"  # MediaPipe ImageSegmenter's custom metadata
MODEL_JSON_FILE = "model.json"
_FILE_TYPES = {"axis": md.AssociatedFileType.TENSOR_AXIS_LABELS, "value": md.AssociatedFileType.TENSOR_VALUE_LABELS,
               "parts": md.AssociatedFileType.DESCRIPTIONS}


def labels_file_name(path: str) -> str:
    """``"labels.det"`` -> ``labels_det.txt`` (one associated file per label list)."""
    return path.replace(".", "_") + ".txt"


def label_list(doc: dict[str, Any], path: str) -> list[str]:
    """The list at a dotted ``model.json`` path (``"labels.det"``, ``"keypoints.names"``)."""
    node: Any = doc
    for key in path.split("."):
        node = node[key]
    return [str(x) for x in node]


def build_metadata(doc: dict[str, Any], io_outputs: list[str]) -> tuple[bytes, dict[str, bytes]]:
    """The metadata flatbuffer for a file whose subgraph outputs are ``io_outputs`` (tensor names, in the
    file's output order) and the associated files it names (file name -> bytes)."""
    from mtnet.modeljson import dumps

    specs = {o["name"]: o for o in doc["outputs"]}
    file_io = {o["name"]: o for o in doc.get("io", {}).get("outputs", [])}
    mp = doc.get("mediapipe", {})
    files: dict[str, bytes] = {MODEL_JSON_FILE: dumps(doc).encode()}
    outputs = []
    for name in io_outputs:
        spec = specs[name]
        t = md.TensorMetadataT()
        t.name = mp.get("tensor_names", {}).get(name, name)
        t.description = f"{spec['name']} [{spec['axes']}]: {spec['meaning']}" + _layout(file_io.get(name))
        t.content = _output_content(name, mp)
        if spec.get("labels"):
            fname = labels_file_name(spec["labels"])
            files[fname] = ("\n".join(label_list(doc, spec["labels"])) + "\n").encode()
            t.associatedFiles = [_file(fname, f"names for {name} ({spec['labels']} in model.json)",
                                       _FILE_TYPES[spec.get("labels_kind", "axis")])]
        outputs.append(t)
    sub = md.SubGraphMetadataT()
    sub.name = "mtnet"
    sub.inputTensorMetadata = [_input_metadata(doc)]
    sub.outputTensorMetadata = outputs
    if mp.get("task") == "object_detector":
        group = md.TensorGroupT()
        group.name = "detection_result"
        group.tensorNames = [mp["tensor_names"].get(n, n) for n in mp["detection_group"]]
        sub.outputTensorGroups = [group]
    if mp.get("task") == "image_segmenter":
        sub.customMetadata = [_segmenter_options(mp["activation"])]
    info = doc["model_info"]
    meta = md.ModelMetadataT()
    meta.name = info["name"]
    meta.description = (f"mtnet multi-task model ({', '.join(doc['tasks'])}), {doc['input']['imgsz']} px RGB input. "
                        f"{doc['input']['preprocess']}. After the graph: {doc['postprocess']}. The full deploy "
                        f"contract is the associated file {MODEL_JSON_FILE}.")
    meta.version = info["version"]
    meta.author = info["author"]
    meta.license = info["license"]
    meta.subgraphMetadata = [sub]
    meta.associatedFiles = [_file(MODEL_JSON_FILE, "mtnet deploy contract (input, outputs, labels, keypoints, "
                                  "post-processing)", md.AssociatedFileType.DESCRIPTIONS)]
    meta.minParserVersion = min_parser_version(meta)
    builder = _builder()
    builder.Finish(meta.Pack(builder), file_identifier=METADATA_IDENTIFIER)
    return bytes(builder.Output()), files


def _layout(io: dict[str, Any] | None) -> str:
    """This file's own shape of an output, and the permutation back to the documented axes where it differs."""
    if io is None:
        return ""
    perm = io.get("to_torch", list(range(len(io["shape"]))))
    back = f", documented axes = transpose {perm}" if perm != sorted(perm) else ""
    return f" (this file: {io['dtype']} {io['shape']}{back})"


def _builder():
    import flatbuffers

    return flatbuffers.Builder(1024)


def _file(name: str, description: str, kind: int) -> md.AssociatedFileT:
    f = md.AssociatedFileT()
    f.name, f.description, f.type = name, description, kind
    return f


def _input_metadata(doc: dict[str, Any]) -> md.TensorMetadataT:
    """Image properties, normalisation (pixel units: x = (pixel - mean) / std) and the value range."""
    spec = doc["input"]
    if spec.get("normalization") == "in_graph":  # MediaPipe targets: [0, 1] in, ImageNet mean/std in the graph
        mean, std = [0.0], [255.0]
    else:
        mean = [float(np.float32(m * 255.0)) for m in spec["mean"]]
        std = [float(np.float32(s * 255.0)) for s in spec["std"]]
    t = md.TensorMetadataT()
    t.name = spec["name"]
    t.description = (f"RGB image, {spec['imgsz']}x{spec['imgsz']}, NHWC float32: {spec['preprocess']}"
                     if spec.get("normalization") != "in_graph" else
                     f"RGB image, {spec['imgsz']}x{spec['imgsz']}, NHWC float32 pixel / 255 (ImageNet mean/std "
                     "applied inside the graph)")
    content = md.ContentT()
    content.contentPropertiesType = md.ContentProperties.ImageProperties
    props = md.ImagePropertiesT()
    props.colorSpace = md.ColorSpaceType.RGB
    content.contentProperties = props
    t.content = content
    norm = md.NormalizationOptionsT()
    norm.mean, norm.std = mean, std
    unit = md.ProcessUnitT()
    unit.optionsType = md.ProcessUnitOptions.NormalizationOptions
    unit.options = norm
    t.processUnits = [unit]
    stats = md.StatsT()
    n = max(len(mean), len(std))
    stats.min = [float(np.float32((0.0 - mean[i % len(mean)]) / std[i % len(std)])) for i in range(n)]
    stats.max = [float(np.float32((255.0 - mean[i % len(mean)]) / std[i % len(std)])) for i in range(n)]
    t.stats = stats
    return t


def _output_content(name: str, mp: dict[str, Any]) -> md.ContentT:
    content = md.ContentT()
    if mp.get("task") == "object_detector" and name == mp.get("boxes"):
        box = md.BoundingBoxPropertiesT()
        box.index = list(mp["box_index"])  # positions of left, top, right, bottom in the last axis
        box.type = md.BoundingBoxType.BOUNDARIES
        box.coordinateType = md.CoordinateType.RATIO
        content.contentPropertiesType = md.ContentProperties.BoundingBoxProperties
        content.contentProperties = box
    elif mp.get("task") == "image_segmenter":
        props = md.ImagePropertiesT()
        props.colorSpace = md.ColorSpaceType.GRAYSCALE
        content.contentPropertiesType = md.ContentProperties.ImageProperties
        content.contentProperties = props
    else:
        content.contentPropertiesType = md.ContentProperties.FeatureProperties
        content.contentProperties = md.FeaturePropertiesT()
    if mp.get("task") == "object_detector":
        rng = md.ValueRangeT()
        rng.min, rng.max = 2, 2  # the detection index is axis 1 of [1, N, ...] (the SSD writer's convention)
        content.range = rng
    return content


def _segmenter_options(activation: str) -> md.CustomMetadataT:
    """MediaPipe ImageSegmenter's ``SEGMENTER_METADATA`` (its own schema, identifier ``V001``)."""
    opts = seg_schema.ImageSegmenterOptionsT()
    opts.activation = getattr(seg_schema.Activation, activation)
    opts.minParserVersion = "1.0.0"
    builder = _builder()
    builder.Finish(opts.Pack(builder), file_identifier=b"V001")
    custom = md.CustomMetadataT()
    custom.name = SEGMENTER_METADATA_NAME
    custom.data = list(bytes(builder.Output()))
    return custom


def min_parser_version(meta: md.ModelMetadataT) -> str:
    """The lowest metadata parser version that reads every field used (tflite-support ``metadata_version.cc``:
    1.0.1 vocabulary files, 1.1.0 subgraph process units and tokenizers, 1.2.0 tensor groups, 1.2.1 regex
    tokenizer, 1.3.0 audio properties)."""
    version = (1, 0, 0)

    def bump(v: tuple[int, int, int]) -> None:
        nonlocal version
        version = max(version, v)

    def files(items) -> None:
        if any(f.type == md.AssociatedFileType.VOCABULARY for f in items or []):
            bump((1, 0, 1))

    def units(items) -> None:
        for u in items or []:
            if u.optionsType in (md.ProcessUnitOptions.BertTokenizerOptions,
                                 md.ProcessUnitOptions.SentencePieceTokenizerOptions):
                bump((1, 1, 0))
            if u.optionsType == md.ProcessUnitOptions.RegexTokenizerOptions:
                bump((1, 2, 1))

    files(meta.associatedFiles)
    for sub in meta.subgraphMetadata or []:
        for t in (sub.inputTensorMetadata or []) + (sub.outputTensorMetadata or []):
            files(t.associatedFiles)
            units(t.processUnits)
            if t.content is not None and t.content.contentPropertiesType == md.ContentProperties.AudioProperties:
                bump((1, 3, 0))
        files(sub.associatedFiles)
        for group in (sub.inputProcessUnits, sub.outputProcessUnits):
            if group is not None:
                bump((1, 1, 0))
                units(group)
        if sub.inputTensorGroups is not None or sub.outputTensorGroups is not None:
            bump((1, 2, 0))
    return ".".join(map(str, version))


def attach(model: Any, metadata: bytes) -> None:
    """Put ``metadata`` into a TFLite ``ModelT`` as the ``TFLITE_METADATA`` buffer (replacing an earlier one)."""
    from ai_edge_litert import schema_py_generated as schema

    buf = schema.BufferT()
    buf.data = np.frombuffer(metadata, np.uint8)
    model.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME.encode()
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME.encode()] + [entry]


def append_associated_files(model_bytes: bytes, files: dict[str, bytes]) -> bytes:
    """``model_bytes`` followed by a zip (stored, not deflated: readers map the files in place) of ``files``."""
    out = io.BytesIO()
    out.write(model_bytes)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def read_metadata(path: str | Path) -> md.ModelMetadataT:
    """The standard metadata of a ``.tflite`` (raises ``ModelJsonError`` when it has none)."""
    from ai_edge_litert import schema_py_generated as schema

    from mtnet.modeljson import ModelJsonError

    data = bytearray(Path(path).read_bytes())
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        if model.Metadata(i).Name().decode() == METADATA_NAME:
            raw = model.Buffers(model.Metadata(i).Buffer()).DataAsNumpy().tobytes()
            if not md.ModelMetadata.ModelMetadataBufferHasIdentifier(raw, 0):
                raise ModelJsonError(f"{path}: {METADATA_NAME} is not a metadata flatbuffer (identifier M001)")
            return md.ModelMetadataT.InitFromObj(md.ModelMetadata.GetRootAs(raw, 0))
    raise ModelJsonError(f"{path}: no standard TFLite metadata ({METADATA_NAME}); export it with `mtnet export`")


def read_associated_files(path: str | Path) -> dict[str, bytes]:
    """The associated files packed into a ``.tflite`` (name -> bytes)."""
    with zipfile.ZipFile(io.BytesIO(Path(path).read_bytes())) as zf:
        return {name: zf.read(name) for name in zf.namelist()}
