"""Fine-grained evaluation: COCO box AP of any predictor with ``predict(images)`` and a ``meta`` whose
category ids are fine ids (a ``Cascade``, or a single detector trained on the fine classes) against a
fine instances json; and their per-image latency, measured interleaved on the same images."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..eval.coco import coco_bbox_metrics, detections_to_coco


def fine_box_metrics(predictor, source, gt_path: str | Path, *, batch_size: int = 16, progress: bool = True) -> dict[str, float]:
    """COCO box AP of ``predictor`` on every image of ``source`` against ``gt_path`` (fine categories)."""
    results: list[dict] = []
    for s in tqdm(range(0, len(source), batch_size), desc="fine eval", disable=not progress, leave=False):
        samples = [source.load(i) for i in range(s, min(s + batch_size, len(source)))]
        for sample, pred in zip(samples, predictor.predict([x.image for x in samples]), strict=True):
            results += detections_to_coco(sample.image_id, pred.detections, predictor.meta)[0]
    return coco_bbox_metrics(gt_path, results)


def interleaved_latency(predictors: dict[str, Any], images: list, *, warmup: int = 5, rounds: int = 1) -> dict[str, Any]:
    """Median milliseconds per image of each predictor, timed one image at a time in turn (A, B, A, B, ...)
    so a shared machine's load shifts hit all of them alike. A ``Cascade`` also gets its stages: median
    detector time per image, median classifier time per crop (crop extraction included), mean crops per
    image, and ``formula_ms`` = detector + classifier per crop x crops per image."""
    for p in predictors.values():
        for im in images[:warmup]:
            p.predict([im])
        if hasattr(p, "timing"):
            p.timing = type(p.timing)()
    times: dict[str, list[float]] = {k: [] for k in predictors}
    for _ in range(rounds):
        for im in images:
            for name, p in predictors.items():
                t0 = time.perf_counter()
                p.predict([im])
                times[name].append(time.perf_counter() - t0)
    out: dict[str, Any] = {name: {"median_ms": 1e3 * statistics.median(t), "mean_ms": 1e3 * statistics.fmean(t),
                                  "calls": len(t)} for name, t in times.items()}
    for name, p in predictors.items():
        t = getattr(p, "timing", None)
        if t is not None and t.images:
            per_crop = [s / n for s, n in zip(t.classifier_s, (n for n in t.crops_per_call if n), strict=True)]
            lat = {"detector_ms": 1e3 * statistics.median(t.detector_s),
                   "classifier_ms_per_crop": 1e3 * statistics.median(per_crop) if per_crop else 0.0,
                   "crops_per_image": t.crops / t.images}
            lat["formula_ms"] = lat["detector_ms"] + lat["classifier_ms_per_crop"] * lat["crops_per_image"]
            out[name] |= lat
    return out


def evaluate_cascade(detector: str | Path, classifier: str | Path, *, baseline: str | Path | None = None,
                     data_root: str | Path | None = None, split: str = "val", latency_images: int = 100,
                     latency_rounds: int = 1, latency_conf: float = 0.25, threads: int = 1,
                     progress: bool = True) -> dict[str, Any]:
    """Fine-grained box AP of the cascade (and of ``baseline``, a single detector trained on the fine
    classes) on ``split`` of the classifier's data (or ``data_root``), plus their latency per image.

    AP uses mAP settings (conf 0.001, multi-label); latency uses deployment settings (``latency_conf``,
    best class only), where crops per image is what an application pays for. Files of any backend."""
    from ..data.coco import CocoSource
    from ..infer.predictor import Predictor
    from .backends import load_classifier
    from .config import ClassifierConfig
    from .predictor import Cascade
    from .train import fine_instances_path

    cls_backend = load_classifier(classifier, threads)
    cfg = ClassifierConfig(data_root=str(data_root)) if data_root else ClassifierConfig(**_classifier_config(classifier))
    gt = fine_instances_path(cfg, split)
    source = CocoSource(cfg.data_root, split, instances=gt, seg="none")
    rows: dict[str, Any] = {}
    cascade = Cascade(Predictor.from_path(detector, conf=0.001, multi_label=True), cls_backend)
    rows["cascade"] = {"files": [str(detector), str(classifier)], **fine_box_metrics(cascade, source, gt, progress=progress)}
    timed = {"cascade": Cascade(Predictor.from_path(detector, conf=latency_conf), cls_backend)}
    if baseline is not None:
        base = Predictor.from_path(baseline, conf=0.001, multi_label=True)
        if sorted(base.meta.det_category_ids) != sorted(cls_backend.fine.fine_ids):
            from ..errors import UserError

            raise UserError(f"{baseline}: its classes {base.meta.det_category_ids} are not the fine classes "
                            f"{cls_backend.fine.fine_ids} of {classifier}")
        rows["single_fine_detector"] = {"files": [str(baseline)], **fine_box_metrics(base, source, gt, progress=progress)}
        timed["single_fine_detector"] = Predictor.from_path(baseline, conf=latency_conf)
    images = [source.load(i).image for i in range(min(latency_images, len(source)))]
    for name, lat in interleaved_latency(timed, images, rounds=latency_rounds).items():
        rows[name]["latency"] = lat
    if baseline is not None:
        c, b = rows["cascade"], rows["single_fine_detector"]
        rows["comparison"] = {"ap50_gain": c["bbox_AP50"] - b["bbox_AP50"],
                              "latency_ratio": c["latency"]["median_ms"] / b["latency"]["median_ms"],
                              "latency_ratio_formula": c["latency"]["formula_ms"] / b["latency"]["median_ms"]}
    rows["data"] = {"instances": str(gt), "images": len(source), "latency_images": len(images),
                    "latency_rounds": latency_rounds, "latency_conf": latency_conf, "threads": threads}
    return rows


def _classifier_config(classifier: str | Path) -> dict[str, Any]:
    """The training recipe stored in a classifier checkpoint or export (for its data folder)."""
    from .backends import load_classifier

    path = Path(classifier)
    if path.suffix == ".pt":
        from ..checkpoint_io import load_checkpoint

        return load_checkpoint(path)["config"]
    return load_classifier(path).doc["config"]


def cascade_table(rows: dict[str, Any]) -> str:
    """The comparison as a Markdown table."""
    lines = ["| model | fine box AP50 | fine box AP | latency ms / image (median) | detector ms | classifier ms x crops |",
             "|---|---|---|---|---|---|"]
    for name in ("cascade", "single_fine_detector"):
        if name not in rows:
            continue
        r, lat = rows[name], rows[name]["latency"]
        split = (f"{lat['detector_ms']:.2f} | {lat['classifier_ms_per_crop']:.2f} x {lat['crops_per_image']:.2f}"
                 if "detector_ms" in lat else f"{lat['median_ms']:.2f} | -")
        lines.append(f"| {name} | {r['bbox_AP50']:.3f} | {r['bbox_AP']:.3f} | {lat['median_ms']:.2f} | {split} |")
    if "comparison" in rows:
        c = rows["comparison"]
        lines.append(f"\nAP50 gain {c['ap50_gain']:+.3f}; latency ratio {c['latency_ratio']:.2f}x measured "
                     f"({c['latency_ratio_formula']:.2f}x as detector + classifier x crops)")
    return "\n".join(lines)
