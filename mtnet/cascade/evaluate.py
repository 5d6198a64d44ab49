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


def _invoker(path: Path, threads: int):
    """A zero-argument call running one inference of a model file on a fixed random batch-1 input: the
    model alone, as ``mtnet bench`` / benchmark_model time it (no decoding, no pre- or post-processing)."""
    import numpy as np

    if path.suffix == ".tflite":
        from ..bench.host import feed_random_inputs, open_interpreter

        interp = open_interpreter(path, threads)
        feed_random_inputs(interp)
        return interp.invoke
    if path.suffix == ".pt":
        return _torch_invoker(path)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.random.default_rng(0).uniform(-0.5, 0.5, [d if isinstance(d, int) else 1 for d in inp.shape]).astype(np.float32)
    return lambda: sess.run(None, {inp.name: x})


def _torch_invoker(path: Path):
    """One deploy-mode forward of a checkpoint (detector or classifier) on a zero batch-1 input."""
    import torch

    from ..checkpoint_io import load_checkpoint, load_model_from_checkpoint
    from .backends import load_classifier_model

    if load_checkpoint(path).get("kind") == "crop_classifier":
        model, state = load_classifier_model(path)
        size = int(state["arch"]["input_size"])
    else:
        model, cfg = load_model_from_checkpoint(path)
        size = cfg.data.imgsz
    model.eval().deploy = True
    x = torch.zeros(1, 3, size, size)

    def call():
        with torch.inference_mode():
            model(x)

    return call


def model_latency(files: dict[str, str | Path], *, runs: int = 1000, warmup: int = 20, threads: int = 1) -> dict[str, float]:
    """Median milliseconds of one inference of each model file (``.tflite`` with LiteRT, ``.onnx`` with
    ONNX Runtime, ``.pt`` with PyTorch), timed in turn (A, B, C, A, ...)."""
    calls = {name: _invoker(Path(f), threads) for name, f in files.items()}
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def evaluate_cascade(detector: str | Path, classifier: str | Path, *, baseline: str | Path | None = None,
                     data_root: str | Path | None = None, split: str = "val", latency_images: int = 100,
                     latency_rounds: int = 1, latency_conf: float = 0.25, threads: int = 1,
                     progress: bool = True) -> dict[str, Any]:
    """Fine-grained box AP of the cascade (and of ``baseline``, a single detector trained on the fine
    classes) on ``split`` of the classifier's data (or ``data_root``), plus their latency.

    AP uses mAP settings (conf 0.001, multi-label). Latency uses deployment settings (``latency_conf``, best
    class only), where crops per image is what an application pays for, two ways: ``model_latency`` = one
    inference of each model file (as ``mtnet bench`` and phones' benchmark_model time them), the cascade's
    being detector + classifier x crops per image; and ``latency`` = ``predict()`` end to end in Python
    (decoding, letterbox, crops and NMS included). Files of any backend."""
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
    models = {"detector": detector, "classifier": classifier} | ({"single_fine_detector": baseline} if baseline else {})
    ms = model_latency(models, threads=threads)
    crops = rows["cascade"]["latency"]["crops_per_image"]
    rows["model_latency"] = ms | {"crops_per_image": crops, "cascade_ms": ms["detector"] + ms["classifier"] * crops}
    if baseline is not None:
        c, b = rows["cascade"], rows["single_fine_detector"]
        rows["comparison"] = {"ap50_gain": c["bbox_AP50"] - b["bbox_AP50"],
                              "model_latency_ratio": rows["model_latency"]["cascade_ms"] / ms["single_fine_detector"],
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
    m = rows["model_latency"]
    lines.append(f"\nmodel latency (one inference per model file): detector {m['detector']:.3f} ms + classifier "
                 f"{m['classifier']:.3f} ms x {m['crops_per_image']:.2f} crops = {m['cascade_ms']:.3f} ms"
                 + (f" vs single fine detector {m['single_fine_detector']:.3f} ms" if "single_fine_detector" in m else ""))
    if "comparison" in rows:
        c = rows["comparison"]
        lines.append(f"AP50 gain {c['ap50_gain']:+.3f}; latency ratio {c['model_latency_ratio']:.2f}x by model latency, "
                     f"{c['latency_ratio']:.2f}x end to end in Python ({c['latency_ratio_formula']:.2f}x as its "
                     "detector + classifier x crops)")
    return "\n".join(lines)
