"""mtnet's three-task models vs YOLO11n detect / seg / pose: TFLite latency timed side by side on this host.

    pip install -e ".[peers]"        # ultralytics 8.4.190 + litert-torch 0.10.0 (its LiteRT export)
    python benchmarks/peers.py [--imgsz 320] [--threads 1,2] [--runs 300] [--profile]
                               [--out benchmarks/results/peers.json]

- YOLO11n, YOLO11n-seg, YOLO11n-pose: built from their architecture yaml (random weights: latency does not
  depend on weight values; nothing is downloaded) and exported with ultralytics' own LiteRT export
  (``format="litert"``, fp32, no in-graph NMS, as ultralytics ships them). That export traces the PyTorch
  model with ``torch.export`` and lowers it with litert-torch: no torchvision operator is in the graph (NMS
  runs after the model, in Python), so the CUDA-built torchvision wheel only has to *import*, which
  ``peers_common.register_torchvision_nms`` makes possible (a pure-PyTorch ``torchvision::nms``).
- mtnet: the default three-task model (``ModelConfig()``) and the COCO recipe's (``configs/coco_mnv2_320.yaml``),
  random weights, with COCO's 80 box classes, 17 keypoints and ``--seg-classes`` semantic classes (21 by
  default, as ``benchmarks/latency.py``), exported as ``mtnet export`` does (ONNX -> onnx2tf), fp32.
- All five files are timed in one process with LiteRT + XNNPACK, interleaved (``mtnet.bench.interleave``:
  ``--rounds`` blocks of A B C D E), once per thread count; medians and ratios come from that one run.

Targets (per thread count): default <= 0.25 x (YOLO11n + -seg + -pose) and <= 0.8 x YOLO11n; COCO recipe
<= 1.0 x YOLO11n. ``--profile`` (automatic when a target is missed) adds an ONNX Runtime profile of every model at one
thread, by operator type and by top-level module (mtnet's backbone / neck / det / pose / seg): what costs the time. Rows go to ``<out>`` and, in the ``mtnet bench``
schema, ``<out stem>_records.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from latency import coco_like_meta, tflite_files

from mtnet.fileio import atomic_write

ROOT = Path(__file__).resolve().parents[1]
YOLO = {"yolo11n": "YOLO11n detect", "yolo11n-seg": "YOLO11n-seg", "yolo11n-pose": "YOLO11n-pose"}
MTNET = {"mtnet_default": "mtnet three-task model, default heads",
         "mtnet_coco": "mtnet three-task model, COCO recipe (configs/coco_mnv2_320.yaml)"}


def export_yolo(name: str, imgsz: int, work: Path, fmt: str = "litert") -> Path:
    """``YOLO(name.yaml).export(format=fmt)`` (random init) into ``work``; returns the file."""
    from ultralytics import YOLO as Ultralytics

    suffix = ".tflite" if fmt == "litert" else f".{fmt}"
    target = work / f"{name}{suffix}"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(dir=work) as tmp, contextlib.chdir(tmp):  # ultralytics writes into the cwd
        made = Path(Ultralytics(f"{name}.yaml").export(format=fmt, imgsz=imgsz, device="cpu", verbose=False))
        shutil.move(str(made if made.is_absolute() else Path(tmp) / made), target)
    return target


def mtnet_models(seg_classes: int) -> dict[str, torch.nn.Module]:
    from mtnet.config import ModelConfig, load_config
    from mtnet.models import build_model

    meta = coco_like_meta(80, seg_classes)
    torch.manual_seed(0)
    coco = load_config(ROOT / "configs" / "coco_mnv2_320.yaml").model
    return {"mtnet_default": build_model(ModelConfig(), meta).eval(), "mtnet_coco": build_model(coco, meta).eval()}


def export_mtnet(name: str, model: torch.nn.Module, imgsz: int, work: Path) -> tuple[Path, Path]:
    """fp32 TFLite (and the ONNX it came from) as ``mtnet export`` converts; returns (tflite, onnx)."""
    target, onnx = work / f"{name}.tflite", work / f"{name}.onnx"
    if not (target.exists() and onnx.exists()):
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            files = tflite_files(model, imgsz, Path(tmp) / "conv", quantize=False)
            shutil.copy(Path(tmp) / "conv" / "model.onnx", onnx)
            shutil.copy(files["float32"], target)
    return target, onnx


def onnx_profile(path: Path, threads: int = 1, runs: int = 30) -> dict[str, dict[str, float]]:
    """ONNX Runtime's own profiler: mean ms per run by operator type and by top-level module (the first
    component of the node name: mtnet's backbone / neck / det / pose / seg, YOLO's model.N), largest first."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    with tempfile.TemporaryDirectory() as tmp:
        opts.enable_profiling, opts.profile_file_prefix = True, str(Path(tmp) / "prof")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        x = np.random.default_rng(0).uniform(-0.5, 0.5, [d if isinstance(d, int) else 1 for d in inp.shape])
        for _ in range(5 + runs):
            sess.run(None, {inp.name: x.astype(np.float32)})
        events = json.loads(Path(sess.end_profiling()).read_text())
    by_op: dict[str, float] = {}
    by_module: dict[str, float] = {}
    kernel = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    for e in kernel[len(kernel) * 5 // (5 + runs):]:  # drop the warm-up runs
        ms = e["dur"] / 1e3 / runs
        parts = e["name"].removesuffix("_kernel_time").strip("/").split("/")
        module = parts[0] if len(parts) > 1 else "(graph glue)"
        by_op[e["args"]["op_name"]] = by_op.get(e["args"]["op_name"], 0.0) + ms
        by_module[module] = by_module.get(module, 0.0) + ms

    def ranked(d: dict[str, float]) -> dict[str, float]:
        return dict(sorted(((k, round(v, 3)) for k, v in d.items()), key=lambda kv: -kv[1]))

    return {"total_ms": round(sum(by_op.values()), 3), "by_op_type": ranked(by_op), "by_module": ranked(by_module)}


def targets(ms: dict[str, float]) -> list[dict[str, Any]]:
    yolo_sum = ms["yolo11n"] + ms["yolo11n-seg"] + ms["yolo11n-pose"]
    checks = [("default <= 0.25 x sum of the three YOLO11n", ms["mtnet_default"] / yolo_sum, 0.25),
              ("default <= 0.8 x YOLO11n detect", ms["mtnet_default"] / ms["yolo11n"], 0.8),
              ("COCO recipe <= 1.0 x YOLO11n detect", ms["mtnet_coco"] / ms["yolo11n"], 1.0)]
    return [{"target": t, "ratio": round(r, 3), "limit": lim, "met": r <= lim} for t, r, lim in checks]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--runs", type=int, default=300, help="timed invokes per model and thread count")
    p.add_argument("--rounds", type=int, default=30, help="interleaved blocks the invokes are split into")
    p.add_argument("--seg-classes", type=int, default=21)
    p.add_argument("--profile", action="store_true", help="ONNX Runtime per-op profile even if every target is met")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "peers_latency", help="exported files (reused)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "peers.json")
    args = p.parse_args()
    args.work = args.work.resolve()  # the exports run inside a temporary working directory
    args.work.mkdir(parents=True, exist_ok=True)
    from peers_common import check_nms, offline_ultralytics

    offline_ultralytics(args.work / "ultralytics_config", threads=1)
    print(f"torchvision::nms (pure PyTorch) matches the reference on {check_nms()} random trials", flush=True)
    tflite, onnx = {}, {}
    for name in YOLO:
        start = time.perf_counter()
        tflite[name] = export_yolo(name, args.imgsz, args.work)
        print(f"{name}: {tflite[name]} ({time.perf_counter() - start:.0f} s)", flush=True)
    for name, model in mtnet_models(args.seg_classes).items():
        tflite[name], onnx[name] = export_mtnet(name, model, args.imgsz, args.work)
    from mtnet.bench.interleave import time_interleaved
    from mtnet.bench.schema import write_results

    records, ms = [], {}
    for t in (int(x) for x in args.threads.split(",")):
        timed = time_interleaved(tflite, threads=t, runs=args.runs, rounds=args.rounds)
        records += list(timed.values())
        ms[t] = {name: r.median_ms for name, r in timed.items()}
    checks = {t: targets(m) for t, m in ms.items()}
    lines = ["| model | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in ms) + " | size MB |",
             "|---|" + "---:|" * (len(ms) + 1)]
    for name, label in (YOLO | MTNET).items():
        lines.append(f"| {label} | " + " | ".join(f"{m[name]:.1f} ms" for m in ms.values())
                     + f" | {tflite[name].stat().st_size / 1e6:.1f} |")
    lines += ["", "| target | " + " | ".join(f"{t}T ratio" for t in ms) + " | met |", "|---|" + "---:|" * (len(ms) + 1)]
    for i, c in enumerate(next(iter(checks.values()))):
        lines.append(f"| {c['target']} | " + " | ".join(f"{checks[t][i]['ratio']:.3f}" for t in ms)
                     + f" | {'yes' if all(checks[t][i]['met'] for t in ms) else 'no'} |")
    profile = {}
    if args.profile or not all(c["met"] for cs in checks.values() for c in cs):
        for name in YOLO:
            onnx[name] = export_yolo(name, args.imgsz, args.work, fmt="onnx")
        profile = {name: onnx_profile(path) for name, path in onnx.items()}
        lines += ["", "ONNX Runtime profile, 1 thread, mean ms per run (largest first):"]
        for name, prof in profile.items():
            total = prof["total_ms"]
            lines.append(f"- {name} ({total:.1f} ms): by module " + ", ".join(
                f"{k} {v:.1f} ({100 * v / total:.0f}%)" for k, v in list(prof["by_module"].items())[:6])
                + "; by op type " + ", ".join(f"{k} {v:.1f}" for k, v in list(prof["by_op_type"].items())[:4]))
    table = "\n".join(lines)
    print(table)
    write_results(records, args.out.parent, f"{args.out.stem}_records", {"command": "benchmarks/peers.py"})
    from mtnet.bench.host import host_device_facts

    doc = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": host_device_facts(),
           "imgsz": args.imgsz, "runs": args.runs, "rounds": args.rounds, "seg_classes": args.seg_classes,
           "median_ms": {str(t): m for t, m in ms.items()}, "targets": {str(t): c for t, c in checks.items()},
           "onnxruntime_op_profile_ms": profile, "files": {k: str(v) for k, v in tflite.items()}, "table": table}
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=2)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
