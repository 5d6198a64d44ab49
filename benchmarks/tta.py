"""What test-time augmentation buys and costs: every task's val metrics and the per-image time, with and without.

    python benchmarks/tta.py MODEL [MODEL ...] [--data DIR] [--views flip+1.2,flip+0.83,flip]
                             [--threads 1] [--timing-images 50] [--out benchmarks/results/tta.json]

MODEL: a checkpoint or an exported file (.onnx / .tflite, then ``--data`` names the val folder). Each model is
scored on the val split plain and with each TTA view set of ``--views`` (``flip+1.2``: original + mirrored view
with the keypoint swap + a 1.2x view, merged: ``mtnet.infer.tta``, the ``tta=True`` default; ``flip``: the
mirror only; ``0.83``: one second scale only), through the same evaluator as ``mtnet eval``.
The time cost is one image at a time (an app's case), end to end (letterbox, backend, decode and merge),
the plain and TTA predictors alternating image by image; medians.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mtnet.fileio import atomic_write
from mtnet.infer.tta import TTAConfig

METRICS = ("bbox_AP", "bbox_AP50", "kpt_AP", "kpt_AP50", "mIoU")


def per_image_ms(predictors: dict, images: list[np.ndarray]) -> dict[str, float]:
    """Median ms of ``predict([image])`` per predictor, alternating predictors image by image."""
    times: dict[str, list[float]] = {k: [] for k in predictors}
    for pred in predictors.values():  # warm-up
        pred.predict(images[:1])
    for image in images:
        for name, pred in predictors.items():
            start = time.perf_counter()
            pred.predict([image])
            times[name].append((time.perf_counter() - start) * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


def parse_views(spec: str) -> TTAConfig:
    """``flip+1.2`` -> TTAConfig(flip=True, scales=(1.2,)); ``flip`` -> mirror only; ``0.83`` -> scale only."""
    parts = spec.split("+")
    return TTAConfig(flip="flip" in parts, scales=tuple(float(p) for p in parts if p != "flip"))


def measure(model: str, data: str | None, threads: int, timing_images: int, views: list[str]) -> dict:
    from mtnet.checkpoint_io import load_config_from_checkpoint
    from mtnet.config import Config, DataConfig
    from mtnet.data.build import open_split
    from mtnet.eval.evaluator import evaluate
    from mtnet.infer.backends import load_backend
    from mtnet.infer.predictor import Predictor

    if model.endswith(".pt"):
        import torch

        torch.set_num_threads(threads)
        make = lambda **kw: Predictor.from_checkpoint(model, **kw)  # noqa: E731
    else:
        backend = load_backend(model, threads)
        make = lambda **kw: Predictor(backend, **kw)  # noqa: E731
    if data is not None:
        source = open_split(Config(data=DataConfig(root=data, val_split="val")), "val")
    else:
        source = open_split(load_config_from_checkpoint(model), "val")
    configs = {"plain": False} | {v: parse_views(v) for v in views}
    row: dict = {"model": model, "threads": threads, "num_images": len(source), "metrics": {}}
    for name, tta in configs.items():
        metrics = evaluate(make(conf=0.001, multi_label=True, tta=tta), source, progress=False)
        row["metrics"][name] = {k: metrics.get(k) for k in METRICS}
    images = [source.load(i).image for i in range(min(timing_images, len(source)))]
    ms = per_image_ms({name: make(tta=tta) for name, tta in configs.items()}, images)
    row["ms_per_image"] = {k: round(v, 2) for k, v in ms.items()}
    row["time_ratio"] = {k: round(v / ms["plain"], 2) for k, v in ms.items() if k != "plain"}
    plain = row["metrics"]["plain"]
    row["gain"] = {name: {k: round(m[k] - plain[k], 4) for k in METRICS if plain.get(k) is not None}
                   for name, m in row["metrics"].items() if name != "plain"}
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--data", help="COCO-layout folder whose val split scores the models (default: a .pt's own)")
    p.add_argument("--views", default="flip+1.2", help="comma-separated TTA view sets (flip, scales joined by +)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timing-images", type=int, default=50)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/tta.json"))
    args = p.parse_args()
    rows = [measure(m, args.data, args.threads, args.timing_images, args.views.split(",")) for m in args.models]
    print("| model | views | " + " | ".join(METRICS) + " | ms / image | x time |\n|---|---|"
          + "---:|" * (len(METRICS) + 2))
    for r in rows:
        for view, m in r["metrics"].items():
            cells = [f"{m[k]:.3f}" if m.get(k) is not None else "–" for k in METRICS]
            print(f"| {Path(r['model']).parent.name}/{Path(r['model']).name} | {view} | " + " | ".join(cells)
                  + f" | {r['ms_per_image'][view]:.1f} | {r['time_ratio'].get(view, 1.0):.2f} |")
    doc = {"date": time.strftime("%Y-%m-%d"), "rows": rows}
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=2)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
