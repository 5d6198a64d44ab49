"""Host latency of the exported TFLite model: width x input size x precision x threads, plus head cost.

    python benchmarks/latency.py [--runs 50] [--out benchmarks/results/latency.json]

Every model is built with random weights (latency does not depend on weight values), exported through
the real pipeline (torch -> ONNX -> onnx2tf; int8 calibrated on random images) and timed with LiteRT via
``mtnet.bench.host.benchmark_tflite`` (median of ``--runs`` invokes, XNNPACK). The head-cost rows
(bare MobileNetV2 / det / det+seg / det+seg+pose / + instance masks) share one backbone config and are timed interleaved
(40 rounds of head_runs/40 invokes each, A B C D E A B C D E ...), so their ratios are comparable on this noisy
shared host. Class counts default to COCO detection (80), 17 keypoints and 21 semantic classes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mtnet.config import ModelConfig
from mtnet.data.meta import DatasetMeta, default_sigmas, flip_index_from_names
from mtnet.models.multitask import MultiTaskNet

COCO_KPTS = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
             "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
             "right_knee", "left_ankle", "right_ankle"]


def coco_like_meta(det_classes: int, seg_classes: int) -> DatasetMeta:
    return DatasetMeta(det_classes=[f"c{i}" for i in range(det_classes)], det_category_ids=list(range(1, det_classes + 1)),
                       seg_classes=[f"s{i}" for i in range(seg_classes)], seg_category_ids=list(range(1, seg_classes + 1)),
                       keypoint_names=COCO_KPTS, flip_index=flip_index_from_names(COCO_KPTS), keypoint_class=0,
                       keypoint_sigmas=default_sigmas(17))


class _Backbone(nn.Module):
    """The bare MobileNetV2 feature extractor (all four strides as outputs)."""

    def __init__(self, net: MultiTaskNet):
        super().__init__()
        self.backbone = net.backbone

    def forward(self, x: torch.Tensor):
        return tuple(self.backbone(x))


def tflite_files(model: nn.Module, imgsz: int, work: Path, *, quantize: bool) -> dict[str, Path]:
    """torch -> ONNX -> onnx2tf, as ``mtnet export`` converts; the variant files by name (float32, int8, ...)."""
    from mtnet.export.onnx import export_onnx
    from mtnet.export.tflite import convert_onnx_to_tflite

    work.mkdir(parents=True)
    onnx_path = work / "model.onnx"
    if isinstance(model, MultiTaskNet):
        export_onnx(model, onnx_path, imgsz)
    else:
        torch.onnx.export(model.eval(), (torch.zeros(1, 3, imgsz, imgsz),), str(onnx_path), dynamo=False,
                          opset_version=17, input_names=["images"])
    calib = np.random.default_rng(0).random((8, imgsz, imgsz, 3), np.float32) if quantize else None
    tail = tuple(o.name for o in model.output_defs() if o.float_tail) if isinstance(model, MultiTaskNet) else ()
    return convert_onnx_to_tflite(onnx_path, work / "conv", calibration=calib, float_tail=tail).files


def _time(path: Path, threads: int, runs: int) -> float:
    from mtnet.bench.host import benchmark_tflite

    return benchmark_tflite(path, threads=threads, runs=runs, warmup=5).median_ms


def _interleaved_medians(paths: dict[str, Path], threads: int, runs: int, rounds: int) -> dict[str, float]:
    """Median invoke ms of each model, timed in ``rounds`` interleaved blocks (``mtnet.bench.interleave``)."""
    from mtnet.bench.interleave import time_interleaved

    return {name: r.median_ms for name, r in time_interleaved(paths, threads=threads, runs=runs, rounds=rounds).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="0.5,1.0")
    ap.add_argument("--sizes", default="256,320")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--head-runs", type=int, default=400,
                    help="invokes per model for the head-cost ratios (timed in 40 interleaved rounds)")
    ap.add_argument("--det-classes", type=int, default=80)
    ap.add_argument("--seg-classes", type=int, default=21)
    ap.add_argument("--head-channels", type=int, default=ModelConfig.head_channels, help="model.head_channels (det and pose towers)")
    ap.add_argument("--seg-channels", type=int, default=ModelConfig.seg_channels, help="model.seg_channels")
    ap.add_argument("--head-cost-only", action="store_true", help="skip the width x size x precision grid")
    ap.add_argument("--out", default="benchmarks/results/latency.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    meta = coco_like_meta(args.det_classes, args.seg_classes)
    threads = [int(t) for t in args.threads.split(",")]
    variants = {"fp32": "float32", "fp16": "float16", "int8": "int8"}
    rows, heads = [], []
    with tempfile.TemporaryDirectory(prefix="mtnet-latency-") as tmp:
        for w in ([] if args.head_cost_only else (float(x) for x in args.widths.split(","))):
            for s in (int(x) for x in args.sizes.split(",")):
                net = MultiTaskNet(meta, tasks=["det", "seg", "pose"], width=w, neck_channels=64,
                                   head_channels=args.head_channels, seg_channels=args.seg_channels).eval()
                files = tflite_files(net, s, Path(tmp) / f"w{w}_s{s}", quantize=True)
                for prec, variant in variants.items():
                    for t in threads:
                        ms = _time(files[variant], t, args.runs)
                        rows.append({"width": w, "imgsz": s, "precision": prec, "threads": t, "median_ms": round(ms, 2),
                                     "size_mb": round(files[variant].stat().st_size / 1e6, 2)})
                        print(f"width {w} {s}px {prec} {t}T: {ms:.2f} ms", flush=True)
        # head cost: same backbone config (width 1.0, 320 px, fp32), built and timed back to back
        builds = {"backbone": None, "det": ["det"], "det+seg": ["det", "seg"], "det+seg+pose": ["det", "seg", "pose"],
                  "det+seg+pose+inst": ["det", "seg", "pose", "inst"]}
        paths = {}
        for name, tasks in builds.items():
            net = MultiTaskNet(meta, tasks=tasks or ["det"], width=1.0, neck_channels=64,
                               head_channels=args.head_channels, seg_channels=args.seg_channels).eval()
            model = _Backbone(net) if tasks is None else net
            paths[name] = tflite_files(model, 320, Path(tmp) / f"head_{name}", quantize=False)["float32"]
        for t in threads:
            times = _interleaved_medians(paths, t, args.head_runs, rounds=40)
            for name, ms in times.items():
                heads.append({"model": name, "threads": t, "median_ms": round(ms, 2),
                              "vs_backbone": round(ms / times["backbone"], 3), "vs_det": round(ms / times["det"], 3)})
    print("\n| width | input | precision | 1 thread ms | 2 threads ms | size MB |\n|---|---|---|---|---|---|")
    for key in sorted({(r["width"], r["imgsz"], r["precision"]) for r in rows}, key=lambda k: (k[0], k[1], list(variants).index(k[2]))):
        sel = {r["threads"]: r for r in rows if (r["width"], r["imgsz"], r["precision"]) == key}
        print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(str(sel[t]["median_ms"]) if t in sel else "–" for t in (1, 2))
              + f" | {next(iter(sel.values()))['size_mb']} |")
    print(f"\nHead cost (width 1.0, 320 px, fp32, head_channels {args.head_channels}, "
          f"seg_channels {args.seg_channels}):\n| model | threads | median ms | x backbone | x det-only |\n|---|---|---|---|---|")
    for h in heads:
        print(f"| {h['model']} | {h['threads']} | {h['median_ms']} | {h['vs_backbone']} | {h['vs_det']} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from mtnet.bench.host import host_device_facts

    out.write_text(json.dumps({"device": host_device_facts(), "runs": args.runs, "det_classes": args.det_classes,
                               "seg_classes": args.seg_classes, "head_channels": args.head_channels, "seg_channels": args.seg_channels,
                               "latency": rows, "head_cost": heads}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
