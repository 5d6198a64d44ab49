"""Standard TFLite Model Metadata in every exported ``.tflite``, read back with ``tflite-support``'s own
``MetadataDisplayer`` (in its own environment: it pins protobuf < 4): model fields, input image properties,
normalisation and range, a description of every output from ``model.json``, labels / keypoint names / model.json
as associated files, the parser version tflite-support computes; and mtnet's own readers still work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mtnet.cli import main
from mtnet.data.preprocess import MEAN, STD

from .conftest import require_side_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports_meta")
    rc = main(["export", str(tiny_run / "best.pt"), "--formats", "tflite", "--precision", "fp32,fp16", "--imgsz", "160",
               "--out", str(out), "--name", "meta", "--no-eval", "--bench-runs", "0", "--parity-images", "1",
               "--author", "Test Lab", "--license", "CC-BY-4.0", "--no-progress"])
    assert rc == 0
    return out / "meta"


@pytest.mark.parametrize("name", ["model_float32.tflite", "model_float16.tflite"])
def test_metadata_displayer_reads_everything_back(exported, name):
    from ai_edge_litert.interpreter import Interpreter
    from mtnet.export.tflite_support_env import display

    from mtnet.modeljson import read_tflite

    path = exported / name
    require_side_env("tflite-support")
    view = display(path)
    meta, files = view["metadata"], view["file_contents"]
    doc = read_tflite(path)
    assert meta["name"] == doc["model_info"]["name"] and "det" in meta["name"]
    assert meta["author"] == "Test Lab" and meta["license"] == "CC-BY-4.0"
    assert meta["version"] == doc["model_info"]["version"] and meta["version"]
    assert meta["min_parser_version"] == view["computed_min_parser_version"]

    (sub,) = meta["subgraph_metadata"]
    (image,) = sub["input_tensor_metadata"]
    assert image["content"]["content_properties"]["color_space"] == "RGB"
    (norm,) = image["process_units"]
    assert norm["options_type"] == "NormalizationOptions"
    np.testing.assert_allclose(norm["options"]["mean"], np.array(MEAN) * 255, rtol=1e-6)
    np.testing.assert_allclose(norm["options"]["std"], np.array(STD) * 255, rtol=1e-6)
    np.testing.assert_allclose(image["stats"]["min"], -np.array(MEAN) / STD, rtol=1e-5)
    np.testing.assert_allclose(image["stats"]["max"], (1 - np.array(MEAN)) / STD, rtol=1e-5)

    # one entry per output, in the file's output order, each described from model.json
    outputs = sub["output_tensor_metadata"]
    assert [t["name"] for t in outputs] == [d["name"] for d in Interpreter(str(path)).get_output_details()]
    specs = {o["name"]: o for o in doc["outputs"]}
    assert [t["name"] for t in outputs] == [o["name"] for o in doc["outputs"]]
    for t in outputs:
        spec = specs[t["name"]]
        assert t["description"].startswith(f"{spec['name']} [{spec['axes']}]: {spec['meaning']}")
    labelled = {t["name"]: t["associated_files"][0] for t in outputs if t.get("associated_files")}
    assert labelled["scores"]["type"] == "TENSOR_AXIS_LABELS"
    assert labelled["seg"]["type"] == "TENSOR_AXIS_LABELS"
    assert files[labelled["scores"]["name"]].splitlines() == doc["labels"]["det"]
    assert files[labelled["seg"]["name"]].splitlines() == doc["labels"]["seg"]
    assert files[labelled["keypoints"]["name"]].splitlines() == doc["keypoints"]["names"]
    assert [f["name"] for f in meta["associated_files"]] == ["model.json"]
    assert json.loads(files["model.json"]) == doc  # the same contract our own backends read
    assert set(view["files"]) == {"model.json", "labels_det.txt", "labels_seg.txt", "keypoints_names.txt"}


def test_own_backends_still_read_the_file(exported, synthetic_root):
    from mtnet.data.coco import CocoSource
    from mtnet.infer.predictor import Predictor

    predictor = Predictor.from_path(exported / "model_float32.tflite", conf=0.0)
    image = CocoSource(synthetic_root, "val").load(0).image
    pred = predictor.predict([image])[0]
    assert pred.detections is not None and pred.seg is not None


def test_a_new_output_is_described_from_model_json_alone():
    """The metadata is generic per output: an output the builder has never heard of (another task's) gets its
    description and its labels file from model.json."""
    from mtnet.export import metadata_schema_py_generated as md
    from mtnet.export.tflite_metadata import build_metadata

    doc = {"tasks": ["det", "inst"], "postprocess": "p", "model_info": {"name": "n", "version": "v", "author": "a",
                                                                       "license": "l"},
           "input": {"name": "images", "imgsz": 64, "preprocess": "x", "mean": list(MEAN), "std": list(STD)},
           "labels": {"det": ["a", "b"]},
           "outputs": [{"name": "masks", "axes": "B,A,M", "meaning": "instance mask coefficients",
                        "labels": "labels.det", "labels_kind": "value"}]}
    data, files = build_metadata(doc, ["masks"])
    meta = md.ModelMetadataT.InitFromObj(md.ModelMetadata.GetRootAs(data, 0))
    (out,) = meta.subgraphMetadata[0].outputTensorMetadata
    assert out.name == b"masks" and out.description.decode().startswith("masks [B,A,M]: instance mask coefficients")
    assert out.associatedFiles[0].type == md.AssociatedFileType.TENSOR_VALUE_LABELS
    assert files[out.associatedFiles[0].name.decode()] == b"a\nb\n"


def test_constant_buffers_are_16_byte_aligned(exported):
    """TFLite's schema asks for 16-byte aligned buffer data; otherwise LiteRT copies each constant to the heap
    ("unaligned buffer ... copying") instead of using the mapped file."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray((exported / "model_float32.tflite").read_bytes()), 0)
    starts = [model.Buffers(i)._tab.Vector(model.Buffers(i)._tab.Offset(4))
              for i in range(model.BuffersLength()) if model.Buffers(i).DataLength()]
    assert len(starts) > 50 and all(p % 16 == 0 for p in starts)
