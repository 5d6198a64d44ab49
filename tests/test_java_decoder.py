"""The Java reference decoder (``android/decoder``) on a real JDK: real val images through LiteRT, the output
tensors dumped as an app reads them, decoded in Java with the model's own metadata, compared with
``mtnet.decode`` (through ``Predictor``) on the same file: same detections in the same order (boxes within
1e-3 px), same keypoints, equal masks; raw and ``--nms`` exports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mtnet.cli import main
from mtnet.data.coco import CocoSource
from mtnet.data.preprocess import letterbox, normalize_nhwc
from tests.test_export_nms import spread_checkpoint  # noqa: F401  (fixture: distinct detection scores)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DECODER = ROOT / "android" / "decoder"
IMGSZ, CONF, IOU = 160, 0.3, 0.6


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory) -> Path:
    """The decoder and its host harness compiled with javac (no dependencies: the JDK alone)."""
    javac = shutil.which("javac")
    assert javac, "javac not found: install a JDK (Debian: apt-get install default-jdk-headless; .ci/run does)"
    out = tmp_path_factory.mktemp("java")
    sources = sorted(str(p) for p in DECODER.rglob("*.java"))
    subprocess.run([javac, "-Xlint:all", "-Werror", "-d", str(out), *sources], check=True)
    return out


def _export(checkpoint: Path, out: Path, name: str, *extra: str) -> Path:
    rc = main(["export", str(checkpoint), "--formats", "tflite", "--precision", "fp32", "--imgsz", str(IMGSZ),
               "--out", str(out), "--name", name, "--no-eval", "--bench-runs", "0", "--parity-images", "2",
               "--no-progress", *extra])
    assert rc == 0
    return out / name / "model_float32.tflite"


@pytest.fixture(scope="module")
def exports(spread_checkpoint, tmp_path_factory) -> dict[str, Path]:  # noqa: F811
    out = tmp_path_factory.mktemp("exports_java")
    return {"raw": _export(spread_checkpoint, out, "raw"),
            "nms": _export(spread_checkpoint, out, "nms", "--nms", "--nms-conf", str(CONF), "--nms-iou", str(IOU))}


def _images(root: Path) -> list[np.ndarray]:
    """Val images, plus one cropped to another aspect ratio (letterbox padding and mask mapping back)."""
    val = CocoSource(root, "val")
    images = [val.load(i).image for i in range(len(val))]
    return images + [np.ascontiguousarray(images[0][:, 20:130])]


def _run_java(classes: Path, model: Path, work: Path, image: np.ndarray, *, multi_label: bool) -> dict:
    """LiteRT on the letterboxed image, every output dumped in the file's own layout, decoded in Java."""
    from ai_edge_litert.interpreter import Interpreter

    boxed, _, scale = letterbox(image, IMGSZ)
    interp = Interpreter(model_path=str(model))
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    interp.set_tensor(inp["index"], normalize_nhwc(boxed[None]))
    interp.invoke()
    work.mkdir()
    lines = []
    for d in interp.get_output_details():
        t = interp.get_tensor(d["index"]).astype("<f4")
        t.tofile(work / f"{d['name']}.bin")
        lines.append(" ".join([d["name"], *map(str, t.shape)]))
    (work / "outputs.txt").write_text("\n".join(lines) + "\n")
    argb = (0xFF << 24) | (boxed[..., 0].astype(np.uint32) << 16) | (boxed[..., 1].astype(np.uint32) << 8) | boxed[..., 2]
    argb.astype("<u4").tofile(work / "image.argb")
    h, w = image.shape[:2]
    subprocess.run(["java", "-cp", str(classes), "dev.mtnet.decoder.DecodeDump", str(model), str(work), str(CONF),
                    str(IOU), "100", str(multi_label).lower(), repr(scale), str(w), str(h)], check=True)
    rows = [line.split() for line in (work / "detections.txt").read_text().splitlines()]

    def floats(hexes: list[str]) -> np.ndarray:
        return np.array([int(x, 16) for x in hexes], np.uint32).view(np.float32)

    return {"labels": [int(r[0]) for r in rows], "names": [r[1].replace("_", " ") for r in rows],
            "scores": floats([r[2] for r in rows]), "boxes": floats([x for r in rows for x in r[3:7]]).reshape(-1, 4),
            "keypoints": [floats(r[7:]).reshape(-1, 3) for r in rows],
            "mask": np.fromfile(work / "mask.bin", np.uint8).reshape(h, w),
            "input": np.fromfile(work / "input.bin", "<f4").reshape(boxed.shape), "boxed": boxed,
            "skeleton": (work / "skeleton.txt").read_text().split()}


@pytest.mark.parametrize("kind,multi_label", [("raw", False), ("raw", True), ("nms", False)])
def test_java_decoder_matches_mtnet_decode(java_classes, exports, synthetic_root, tmp_path, kind, multi_label):
    from mtnet.infer.predictor import Predictor

    model = exports[kind]
    predictor = Predictor.from_path(model, conf=CONF, iou=IOU, multi_label=multi_label)
    meta = predictor.meta
    total = 0
    for i, image in enumerate(_images(synthetic_root)):
        got = _run_java(java_classes, model, tmp_path / str(i), image, multi_label=multi_label)
        ref = predictor.predict([image])[0]
        det = ref.detections
        assert got["labels"] == det.labels.tolist()  # same detections, same order
        assert got["names"] == [meta.det_classes[c] for c in det.labels]
        np.testing.assert_allclose(got["scores"], det.scores, rtol=0, atol=1e-6)
        np.testing.assert_allclose(got["boxes"], det.boxes.reshape(-1, 4), rtol=0, atol=1e-3)
        for kp, ref_kp in zip(got["keypoints"], det.keypoints, strict=True):
            np.testing.assert_allclose(kp, ref_kp, rtol=0, atol=1e-3)
        np.testing.assert_array_equal(got["mask"], ref.seg)
        np.testing.assert_array_equal(got["input"], normalize_nhwc(got["boxed"][None])[0])  # metadata mean/std
        assert got["skeleton"] == [f"{a}-{b}" for a, b in meta.skeleton]
        total += len(det)
    assert total >= 10  # the comparison saw real detections
