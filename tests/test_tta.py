"""Test-time augmentation (mtnet.infer.tta): flip views merge keypoints with the left/right swap, every task's
merged output is mirror-consistent, unmergeable graphs are refused, and ``mtnet eval --tta`` runs."""

import json

import numpy as np
import pytest
import torch

from mtnet.cli import main as cli_main
from mtnet.config import ModelConfig
from mtnet.data.meta import DatasetMeta, flip_index_from_names
from mtnet.data.synthetic import KEYPOINT_NAMES
from mtnet.infer.predictor import Predictor, TorchBackend
from mtnet.infer.tta import TTAConfig, TTAError, merge_views
from mtnet.models import build_model

META = DatasetMeta(
    det_classes=["person", "ball"], det_category_ids=[1, 2], seg_classes=list("abc"), seg_category_ids=[1, 2, 3],
    keypoint_names=KEYPOINT_NAMES, flip_index=flip_index_from_names(KEYPOINT_NAMES), keypoint_class=0,
    keypoint_sigmas=[0.05] * 17,
)
SIZE = 160


@pytest.fixture(scope="module")
def backend():
    torch.manual_seed(0)
    # softplus box distances: random DFL bins give boxes of ~7.5 strides, clipped into near-identical boxes
    cfg = ModelConfig(width=0.35, neck_channels=24, head_channels=24, seg_channels=24, head_strides=[8], box_bins=0)
    model = build_model(cfg, META).eval()
    with torch.no_grad():  # spread the scores so the kept set is not decided by near-ties
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.weight.normal_(0, 0.1)
                m.bias.normal_(0, 0.5)
    return TorchBackend(model, SIZE)


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((SIZE, SIZE, 3), 90, np.uint8)
    for _ in range(6):  # an asymmetric scene: blocks of colour at random places
        x, y, w, h = rng.integers(0, SIZE - 30, 2).tolist() + rng.integers(12, 40, 2).tolist()
        img[y:y + h, x:x + w] = rng.integers(0, 255, 3)
    return img


def _mirror(pred, width: int, flip_index):
    """A prediction of the mirrored image brought back to the original: x -> W - x, left <-> right joints."""
    det = pred.detections
    boxes = det.boxes.copy()
    boxes[:, [0, 2]] = width - det.boxes[:, [2, 0]]
    kp = det.keypoints.copy()
    kp[..., 0] = width - kp[..., 0]
    return boxes, kp[:, flip_index], pred.seg[:, ::-1]


def test_flip_tta_merges_keypoints_with_left_right_swap(backend):
    """TTA over {image, mirror} of an image and of its mirror sees the same two views, so the two results must
    be mirror images with left and right joints exchanged. Without the swap in the merge, the flipped view's
    left wrist would be averaged into the right wrist and the results would differ by the swap."""
    predictor = Predictor(backend, conf=0.05, max_det=15, tta=TTAConfig(flip=True, scales=()))
    image = _image()
    a = predictor.predict([image])[0]
    b = predictor.predict([np.ascontiguousarray(image[:, ::-1])])[0]
    assert len(a.detections) >= 5
    boxes_b, kp_b, seg_b = _mirror(b, SIZE, META.flip_index)
    matched = 0
    for i in range(len(a.detections)):
        same = np.nonzero((b.detections.labels == a.detections.labels[i])
                          & (np.abs(boxes_b - a.detections.boxes[i]).max(1) < 1e-2))[0]
        if len(same):
            matched += 1
            np.testing.assert_allclose(kp_b[same[0]], a.detections.keypoints[i], atol=1e-2)
            np.testing.assert_allclose(b.detections.scores[same[0]], a.detections.scores[i], atol=1e-5)
    assert matched >= 0.8 * len(a.detections)
    assert (seg_b == a.seg).mean() > 0.99
    # the merge really swaps: a person's left/right joints differ in the plain prediction
    plain = Predictor(backend, conf=0.05, max_det=15).predict([image])[0]
    kp = plain.detections.keypoints
    assert np.abs(kp[:, META.flip_index, :2] - kp[..., :2]).max() > 1.0


def test_tta_views_run_in_one_batch_and_change_the_result(backend):
    """Flip + 0.83x: three views per image, every image of a batch merged on its own."""
    calls = []
    real = backend.__call__

    class Counting:
        imgsz, meta, tasks = backend.imgsz, backend.meta, backend.tasks

        def __call__(self, images):
            calls.append(len(images))
            return real(images)

    images = [_image(1), _image(2)[:120]]  # a letterboxed (padded) image too
    tta = Predictor(Counting(), conf=0.05, tta=True).predict(images)
    plain = Predictor(backend, conf=0.05).predict(images)
    assert calls == [6]
    for t, p, im in zip(tta, plain, images, strict=True):
        assert t.seg.shape == im.shape[:2]
        assert not np.array_equal(t.detections.boxes[:3], p.detections.boxes[:3])


def test_tta_refuses_outputs_it_cannot_map():
    out = {"detections": np.zeros((2, 10, 6)), "num_detections": np.zeros((2,))}
    with pytest.raises(TTAError, match="detections"):
        merge_views(out, [(1.0, False), (1.0, True)], [(SIZE, SIZE)] * 2, (SIZE, SIZE), SIZE, META.flip_index)
    with pytest.raises(TTAError):
        TTAConfig(flip=False, scales=(1.0,)).views()


@pytest.mark.slow
def test_cli_eval_tta(tiny_run, tmp_path, monkeypatch):
    """``mtnet eval --tta`` scores every task through the TTA path (counted, not replaced)."""
    import mtnet.infer.predictor as predictor_module

    calls = []
    real = predictor_module.predict_tta
    monkeypatch.setattr(predictor_module, "predict_tta", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    plain, tta = tmp_path / "plain.json", tmp_path / "tta.json"
    assert cli_main(["eval", str(tiny_run / "best.pt"), "--json", str(plain), "--no-progress"]) == 0
    assert not calls
    assert cli_main(["eval", str(tiny_run / "best.pt"), "--tta", "--json", str(tta), "--no-progress"]) == 0
    assert sum(calls) == json.loads(tta.read_text())["num_images"] == 6
    assert {"bbox_AP", "kpt_AP", "mIoU"} <= set(json.loads(tta.read_text()))
