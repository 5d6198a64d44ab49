"""Decoding and the COCO evaluators, checked with known answers through the real faster-coco-eval code."""

import json

import numpy as np
import pytest

from mtnet.data.coco import CocoSource
from mtnet.decode import Detections, batched_nms, decode_detections, nms, vote_keypoints
from mtnet.eval.coco import coco_bbox_metrics, coco_keypoint_metrics, detections_to_coco
from mtnet.eval.segmentation import ConfusionMatrix


def test_nms_suppresses_overlaps_within_class_only():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]
    labels = np.array([0, 0, 0, 1])
    assert sorted(batched_nms(boxes, scores, labels, 0.5).tolist()) == [0, 2, 3]


def test_decode_thresholds_and_keeps_keypoints_with_their_box():
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10.5]], np.float32)
    scores = np.array([[0.9, 0.1], [0.05, 0.2], [0.8, 0.0]], np.float32)
    kpts = np.arange(3 * 6, dtype=np.float32).reshape(3, 6)
    det = decode_detections(boxes, scores, kpts, conf=0.15, iou=0.5, multi_label=False)
    assert det.labels.tolist() == [0, 1] and det.keypoints.shape == (2, 2, 3)
    np.testing.assert_array_equal(det.keypoints[1].reshape(-1), kpts[1])


def _gt_as_detections(src: CocoSource, index: int) -> Detections:
    s = src.load(index)
    return Detections(s.boxes, np.ones(len(s.boxes), np.float32), s.labels, s.keypoints.copy())


def test_keypoint_vote_averages_the_overlapping_anchors_of_its_class_by_score():
    boxes = np.array([[10, 10, 50, 90], [11, 10, 51, 90], [10, 12, 50, 92], [30, 10, 70, 90], [10, 10, 50, 90],
                      [10, 10, 50, 90]], np.float32)
    scores = np.array([[0.8, 0.0], [0.4, 0.0], [0.6, 0.1], [0.7, 0.0], [0.3, 0.0], [0.0, 0.9]], np.float32)
    kp = np.zeros((6, 2, 3), np.float32)
    kp[:, :, 0] = np.arange(6)[:, None] * 10.0  # x: 0, 10, 20, ... per anchor
    kp[:, :, 1] = 5.0
    kp[:, :, 2] = np.linspace(0.1, 0.6, 6)[:, None]
    det = Detections(boxes[[0]], np.array([0.8], np.float32), np.array([0]), None, np.array([0]))
    voted = vote_keypoints(kp, boxes, scores, det, conf=0.001)
    # anchors 0, 1, 2 vote (IoU > 0.7, class-0 score >= 0.4); 3 overlaps too little, 4 scores under half of
    # 0.8, 5 is another class
    assert voted[0, :, 0] == pytest.approx((0 * 0.8 + 10 * 0.4 + 20 * 0.6) / 1.8)
    assert voted[0, :, 1] == pytest.approx(5.0)
    assert voted[0, :, 2] == pytest.approx(0.1)  # visibility: the detection's own anchor
    assert vote_keypoints(kp, boxes, scores, det, conf=0.5)[0, 0, 0] == pytest.approx((0 * 0.8 + 20 * 0.6) / 1.4)
    alone = Detections(boxes[[3]], np.array([0.7], np.float32), np.array([0]), None, np.array([3]))
    assert vote_keypoints(kp, boxes, scores, alone, conf=0.001)[0, 0, 0] == pytest.approx(30.0)


def test_ground_truth_scores_perfect_ap(synthetic_root):
    src = CocoSource(synthetic_root, "val")
    boxes, kpts = [], []
    for i in range(len(src)):
        det = _gt_as_detections(src, i)
        boxes += detections_to_coco(src.load(i).image_id, det, src.meta)[0]
        # persons without labelled keypoints (COCO: num_keypoints = 0, ignored) get no keypoint result
        labelled = (det.keypoints[..., 2] > 0).any(1)
        only = Detections(det.boxes[labelled], det.scores[labelled], det.labels[labelled], det.keypoints[labelled])
        kpts += detections_to_coco(src.load(i).image_id, only, src.meta)[1]
    assert coco_bbox_metrics(src.instances_path, boxes)["bbox_AP"] == pytest.approx(1.0)
    assert coco_keypoint_metrics(src.keypoints_path, kpts, src.meta.keypoint_sigmas)["kpt_AP"] == pytest.approx(1.0)


def test_shifted_boxes_lower_ap_and_wrong_class_scores_zero(synthetic_root):
    src = CocoSource(synthetic_root, "val")
    shifted, wrong = [], []
    for i in range(len(src)):
        det = _gt_as_detections(src, i)
        w = det.boxes[:, 2] - det.boxes[:, 0]
        moved = Detections(det.boxes + np.stack([w * 0.3, 0 * w, w * 0.3, 0 * w], 1), det.scores, det.labels)
        shifted += detections_to_coco(src.load(i).image_id, moved, src.meta)[0]
        relabel = Detections(det.boxes, det.scores, (det.labels + 1) % len(src.meta.det_classes))
        wrong += detections_to_coco(src.load(i).image_id, relabel, src.meta)[0]
    m = coco_bbox_metrics(src.instances_path, shifted)
    assert 0.0 < m["bbox_AP"] < 0.9 and m["bbox_AP50"] > m["bbox_AP75"]
    assert coco_bbox_metrics(src.instances_path, wrong)["bbox_AP"] == pytest.approx(0.0, abs=1e-6)


def test_result_entries_use_dataset_category_ids(synthetic_root):
    src = CocoSource(synthetic_root, "val")
    entries, _ = detections_to_coco(7, _gt_as_detections(src, 0), src.meta)
    gt_ids = {c["id"] for c in json.loads(src.instances_path.read_text())["categories"]}
    assert entries and {e["category_id"] for e in entries} <= gt_ids


def test_confusion_matrix_miou_ignores_255():
    cm = ConfusionMatrix(3)
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 0]], np.uint8)
    cm.update(pred, gt)
    s = cm.summary(["a", "b", "c"])
    assert s["per_class_IoU"] == {"a": 0.5, "b": pytest.approx(2 / 3), "c": 1.0}
    assert s["mIoU"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
