"""Metric tables for the terminal and the stable ``metrics.json`` schema scripts can rely on.

metrics.json keys (floats in [0, 1] unless stated; a task the model lacks is absent):
  bbox_AP, bbox_AP50, bbox_AP75        COCO box AP@[.5:.95], AP@.5, AP@.75 (faster-coco-eval)
  kpt_AP, kpt_AP50, kpt_AP75           COCO keypoint OKS-AP
  mIoU, pixel_acc, per_class_IoU       semantic segmentation; per_class_IoU maps class name -> IoU (null if absent)
  wall_s, train_s, eval_s              seconds
  params, imgsz, tasks, epochs, checkpoint, num_images
"""

from __future__ import annotations

import json
from pathlib import Path

from ..fileio import atomic_write
from ..tasks import summary_rows


def metrics_table(metrics: dict) -> str:
    lines = [f"{'metric':<22}{'value':>10}", "-" * 32]
    for label, key in summary_rows():
        if key in metrics:
            lines.append(f"{label:<22}{metrics[key]:>10.4f}")
    for key, per_class in metrics.items():  # e.g. per_class_IoU: class name -> value (None: class absent)
        if isinstance(per_class, dict):
            metric = key.removeprefix("per_class_")
            for name, v in per_class.items():
                lines.append(f"{'  ' + metric + ' ' + name:<22}{'n/a' if v is None else f'{v:.4f}':>10}")
    for label, key in (("wall time (s)", "wall_s"), ("train time (s)", "train_s"), ("eval time (s)", "eval_s")):
        if key in metrics:
            lines.append(f"{label:<22}{metrics[key]:>10.1f}")
    return "\n".join(lines)


def write_metrics_json(metrics: dict, path: str | Path) -> None:
    text = json.dumps(metrics, indent=2, sort_keys=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
