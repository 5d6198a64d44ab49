"""Evaluation: COCO box / keypoint AP and segmentation mIoU for any predictor backend."""
