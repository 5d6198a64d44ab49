"""``mtnet export --target mediapipe``: the files run in MediaPipe Tasks' real ``ObjectDetector`` and
``ImageSegmenter`` (the C++ graph Android, iOS and Web run) and agree with mtnet's own ``Predictor`` on the same
file, on real val images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtnet.cli import main
from mtnet.data.coco import CocoSource
from tests.test_export_nms import spread_checkpoint  # noqa: F401  (fixture: distinct detection scores)

pytestmark = pytest.mark.slow

CONF, IOU = 0.3, 0.6


@pytest.fixture(scope="module")
def mixed_checkpoint(spread_checkpoint, synthetic_root, tmp_path_factory) -> Path:  # noqa: F811
    """``spread_checkpoint`` with a segmentation classifier whose argmax varies over real images.

    After one epoch one class wins every pixel, so a mask comparison would only see that class. As for the
    detection scores in ``spread_checkpoint``: the classifier becomes a fixed random projection of the real
    head features, centred per class and scaled to a standard deviation of 2 over two val images.
    """
    import torch

    from mtnet.checkpoint_io import load_checkpoint, load_model_from_checkpoint
    from mtnet.data.preprocess import letterbox
    from mtnet.engine.checkpoint import save_checkpoint
    from mtnet.infer.predictor import TorchBackend

    model, _ = load_model_from_checkpoint(spread_checkpoint)
    head = model.heads["seg"].classifier
    feats: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda mod, inp, out: feats.append(inp[0]))
    val = CocoSource(synthetic_root, "val")
    TorchBackend(model, 160)(np.stack([letterbox(val.load(i).image, 160)[0] for i in range(2)]))
    hook.remove()
    f = torch.cat([x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]) for x in feats]).double()
    w = torch.randn(head.weight.shape[:2], generator=torch.Generator().manual_seed(1)).double()
    w = w * (2.0 / (f @ w.T).std(0))[:, None]
    state = load_checkpoint(spread_checkpoint)
    weights = state["ema"]["module"] if state.get("ema") else state["model"]
    weights["heads.seg.classifier.weight"] = w.float()[:, :, None, None]
    weights["heads.seg.classifier.bias"] = (-(f @ w.T).mean(0)).float()
    dst = tmp_path_factory.mktemp("mixed") / "mixed.pt"
    save_checkpoint({k: v for k, v in state.items() if k not in ("format", "version")}, dst)
    return dst


@pytest.fixture(scope="module")
def mp_export(mixed_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports_mp")
    rc = main(["export", str(mixed_checkpoint), "--formats", "onnx", "--precision", "fp32", "--target", "mediapipe",
               "--nms-conf", str(CONF), "--nms-iou", str(IOU), "--imgsz", "160", "--out", str(out), "--name", "mp",
               "--no-eval", "--bench-runs", "0", "--parity-images", "2", "--no-progress"])
    assert rc == 0
    return out / "mp"


def _images(root: Path) -> list[np.ndarray]:
    val = CocoSource(root, "val")
    return [np.ascontiguousarray(val.load(i).image) for i in range(len(val))]


def _mp_image(image: np.ndarray):
    import mediapipe as mp

    return mp.Image(image_format=mp.ImageFormat.SRGB, data=image)


def test_object_detector_matches_mtnet_predictor(mp_export, synthetic_root):
    from mediapipe.tasks.python import BaseOptions, vision

    from mtnet.infer.predictor import Predictor

    path = mp_export / "model_mediapipe_detector.tflite"
    predictor = Predictor.from_path(path, conf=0.0)
    options = vision.ObjectDetectorOptions(base_options=BaseOptions(model_asset_path=str(path)), score_threshold=0.0,
                                           max_results=-1)
    total = 0
    with vision.ObjectDetector.create_from_options(options) as detector:
        for image in _images(synthetic_root):
            got = detector.detect(_mp_image(image)).detections
            ref = predictor.predict([image])[0].detections
            assert len(got) == len(ref) > 0
            unmatched = list(range(len(ref)))
            for d in got:
                # MediaPipe reports integer pixels (origin and size truncated): each within 1 px; detections
                # with equal scores may come in either order, so each is matched to one of mtnet's
                b = d.bounding_box
                got_box = np.array([b.origin_x, b.origin_y, b.width, b.height], np.float64)
                ref_boxes = np.concatenate([ref.boxes[:, :2], ref.boxes[:, 2:] - ref.boxes[:, :2]], 1)
                same = [d.categories[0].category_name == predictor.meta.det_classes[int(label)]
                        and abs(d.categories[0].score - float(score)) <= 1e-5
                        and np.abs(got_box - box).max() < 1.0
                        for box, label, score in zip(ref_boxes, ref.labels, ref.scores, strict=True)]
                match = next((i for i in unmatched if same[i]), None)
                assert match is not None, (d, ref)
                unmatched.remove(match)
            total += len(got)
    assert total >= 20


def test_image_segmenter_matches_mtnet_predictor(mp_export, synthetic_root):
    from mediapipe.tasks.python import BaseOptions, vision

    from mtnet.infer.predictor import Predictor

    path = mp_export / "model_mediapipe_segmenter.tflite"
    predictor = Predictor.from_path(path)
    options = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                           output_category_mask=True, output_confidence_masks=True)
    seen: set[int] = set()
    with vision.ImageSegmenter.create_from_options(options) as segmenter:
        assert segmenter.labels == predictor.meta.seg_classes
        for image in _images(synthetic_root):
            result = segmenter.segment(_mp_image(image))
            mask = result.category_mask.numpy_view().reshape(image.shape[:2])
            ref = predictor.predict([image])[0].seg
            seen.update(np.unique(ref).tolist())
            for c in np.union1d(np.unique(mask), np.unique(ref)):
                inter, union = np.sum((mask == c) & (ref == c)), np.sum((mask == c) | (ref == c))
                assert inter / union >= 0.99, (c, inter / union)
            # confidence masks: the SOFTMAX the metadata asks for, of the same logits mtnet reads
            logits = predictor.backend(image[None])["seg"][0].astype(np.float64)
            prob = np.exp(logits - logits.max(0)) / np.exp(logits - logits.max(0)).sum(0)
            conf = np.stack([m.numpy_view().reshape(image.shape[:2]) for m in result.confidence_masks])
            np.testing.assert_allclose(conf, prob, atol=1e-4)
    assert len(seen) >= 3  # the masks compared hold several classes


def test_object_detector_refuses_the_file_without_standard_metadata(mp_export, tmp_path):
    """The metadata is what MediaPipe needs: the same graph without it is refused."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema
    from mediapipe.tasks.python import BaseOptions, vision
    from mtnet.export.tflite_metadata import METADATA_NAME

    data = bytearray((mp_export / "model_mediapipe_detector.tflite").read_bytes())
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    model.metadata = [m for m in model.metadata if m.name.decode() != METADATA_NAME]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(builder.Output())
    with pytest.raises(Exception, match="[Mm]etadata"):
        vision.ObjectDetector.create_from_options(
            vision.ObjectDetectorOptions(base_options=BaseOptions(model_asset_path=str(bare))))
