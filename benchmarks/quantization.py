"""QAT vs static (full-int8 PTQ) vs dynamic-range quantisation, each measured from its .tflite.

    python benchmarks/quantization.py CHECKPOINT [--name quickstart] [--qat-epochs 3] [--imgsz 192]
        [--runs 30] [--phone android_results.json] [--out benchmarks/results/quantization_<name>.json]
    python benchmarks/quantization.py --table benchmarks/results/quantization_*.json   # docs table only

Rows: fp32, fp16, dynamic range, full-int8 PTQ, QAT int8. Columns: every task metric through mtnet's
evaluator on the checkpoint's val split (the same evaluator and decoder for each file), drop vs fp32, size and
size decrease, host latency with 1 and 2 threads (LiteRT + XNNPACK, the files timed interleaved round by
round, medians), and the LiteRT interpreter's memory, each file in a fresh process (RSS added by loading,
allocating and invoking it, and the peak RSS it adds: ``VmHWM`` reset after the imports; ``peak_mem_mb`` is the
whole process's peak, as ``benchmark_model`` reports it). Latency and memory fields carry
``mtnet.bench.schema.BenchRecord``'s names (``median_ms``, ``peak_mem_mb``, ``mem_footprint_mb``,
``model_size_mb``, ``model_sha256``), so ``mtnet bench-android`` records of the same files join by SHA-256
into the phone columns (``--phone``).

Steps (each result file is kept, so a rerun with ``--reuse`` skips finished exports and the QAT run):
1. ``mtnet export CHECKPOINT --formats tflite --precision fp32,fp16,dynamic,int8 --int8-sensitivity``;
2. ``mtnet qat CHECKPOINT --epochs N`` -> ``qat.pt``;
3. ``mtnet export qat.pt --formats tflite --precision fp32,int8 --quant qat``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mtnet.fileio import atomic_write

ROOT = Path(__file__).resolve().parents[1]
ROWS = (  # label, export, file
    ("fp32", "ptq", "model_float32.tflite"),
    ("fp16", "ptq", "model_float16.tflite"),
    ("dynamic range", "ptq", "model_dynamic_range.tflite"),
    ("full-int8 PTQ", "ptq", "model_int8.tflite"),
    ("QAT int8", "qat", "model_int8.tflite"),
)
PTQ_BUDGET, QAT_BUDGET = 1.0, 0.3

_MEMORY_CHILD = """
import json, sys
from mtnet.bench.host import open_interpreter, feed_random_inputs
def status(key):
    line = next(ln for ln in open('/proc/self/status') if ln.startswith(key + ':'))
    return int(line.split()[1]) / 1e3
open('/proc/self/clear_refs', 'w').write('5')  # reset the peak RSS (VmHWM) after the imports
base = status('VmRSS')
interp = open_interpreter(sys.argv[1], int(sys.argv[2]))
feed_random_inputs(interp)
for _ in range(3):
    interp.invoke()
print(json.dumps({"mem_footprint_mb": status('VmRSS') - base, "interpreter_peak_mb": status('VmHWM') - base,
                  "peak_mem_mb": status('VmHWM'), "baseline_rss_mb": base}))
"""

def _run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def export(checkpoint: Path, out: Path, name: str, extra: list[str], imgsz: int | None, reuse: bool) -> dict:
    report = out / name / "report.json"
    if not (reuse and report.is_file()):
        _run([sys.executable, "-m", "mtnet", "export", str(checkpoint), "--formats", "tflite", "--out", str(out),
              "--name", name, "--bench-runs", "0", "--no-progress", *(["--imgsz", str(imgsz)] if imgsz else []),
              *extra])
    return json.loads(report.read_text())


def interleaved_latency(files: list[Path], threads: int, runs: int, warmup: int = 5) -> list[dict]:
    """Median/mean ms per file, timing the files round by round (A, B, C, A, B, C, ...) in one process."""
    from mtnet.bench.host import feed_random_inputs, open_interpreter

    interps = [open_interpreter(f, threads) for f in files]
    for it in interps:
        feed_random_inputs(it)
        for _ in range(warmup):
            it.invoke()
    times: list[list[float]] = [[] for _ in files]
    for _ in range(runs):
        for i, it in enumerate(interps):
            s = time.perf_counter()
            it.invoke()
            times[i].append((time.perf_counter() - s) * 1e3)
    return [{"threads": threads, "runs": runs, "median_ms": float(np.median(t)), "avg_ms": float(np.mean(t)),
             "min_ms": float(np.min(t)), "std_ms": float(np.std(t))} for t in times]


def interpreter_memory(path: Path, threads: int = 1) -> dict:
    """RSS added by one interpreter (load, allocate, 3 invokes) in a fresh process, and that process's peak."""
    proc = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(path), str(threads)], check=True,
                          capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def phone_records(path: Path | None) -> dict[str, list[dict]]:
    """``mtnet bench-android`` records by model SHA-256."""
    if path is None:
        return {}
    from mtnet.bench.schema import read_results

    records, _ = read_results(path)
    by_sha: dict[str, list[dict]] = {}
    for r in records:
        by_sha.setdefault(r.model_sha256, []).append(r.to_dict())
    return by_sha


def measure(args: argparse.Namespace) -> dict:
    from mtnet.calibration import accuracy_drop

    from mtnet.bench.host import host_device_facts
    from mtnet.bench.schema import sha256_file

    ckpt = Path(args.checkpoint)
    work = Path(args.work) / args.name
    ptq = export(ckpt, work, "ptq", ["--precision", "fp32,fp16,dynamic,int8", "--int8-sensitivity",
                                     "--calib-images", str(args.calib_images),
                                     *(["--int8-float", args.ptq_float] if args.ptq_float else [])],
                 args.imgsz, args.reuse)
    qat_ckpt = work / "qat.pt"
    if not (args.reuse and qat_ckpt.is_file()):
        _run([sys.executable, "-m", "mtnet", "qat", str(ckpt), "--epochs", str(args.qat_epochs), "--lr", str(args.qat_lr),
              "--out", str(qat_ckpt), "--no-progress", "--objective", args.qat_objective,
              *(["--ema"] if args.qat_ema else [])])
    from mtnet.calibration.qat import load_qat_section

    section = load_qat_section(qat_ckpt)
    qat = export(qat_ckpt, work, "qat", ["--precision", "fp32,int8", "--quant", "qat",
                                        "--calib-images", str(args.calib_images)], args.imgsz, args.reuse)
    reports = {"ptq": ptq, "qat": qat}
    files = [work / exp / f for _, exp, f in ROWS]
    arts = {(exp, a["file"]): a for exp, rep in reports.items() for a in rep["artifacts"]}
    lat = {t: interleaved_latency(files, t, args.runs) for t in (1, 2)}
    phones = phone_records(args.phone)
    fp32 = arts[("ptq", "model_float32.tflite")]
    rows = []
    for i, (label, exp, fname) in enumerate(ROWS):
        a, path = arts[(exp, fname)], files[i]
        mem = interpreter_memory(path)
        sha = sha256_file(path)
        size = path.stat().st_size / 1e6
        metrics = {k: v for k, v in (a["metrics"] or {}).items() if k not in ("drop_vs_fp32", "num_images")}
        rows.append({
            "variant": label, "export": exp, "file": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
            "model_sha256": sha, "model_size_mb": round(size, 4),
            "size_decrease_pct": round(100 * (1 - size / (files[0].stat().st_size / 1e6)), 1),
            "metrics": metrics, "drop_vs_fp32": accuracy_drop(fp32["metrics"], a["metrics"],
                                                              budget=QAT_BUDGET if exp == "qat" else PTQ_BUDGET),
            "host": {str(t): lat[t][i] for t in (1, 2)}, **mem,
            "phone": phones.get(sha, []),
        })
    return {
        "name": args.name, "checkpoint": str(ckpt), "imgsz": ptq["model"]["imgsz"],
        "train_imgsz": ptq["model"]["train_imgsz"], "width": ptq["model"]["width"], "params": ptq["model"]["params"],
        "val_split": ptq["model"]["val_split"], "pytorch_metrics": ptq["model"]["pytorch_metrics"],
        "qat": {**qat["calibration"]["qat"], "tensors": None, "lr": section["lr"], "ema": section.get("ema", False),
                "objective": section.get("objective", "labels"), "wall_s": section["train_s"],
                "qat_fp32_metrics": next(a["metrics"] for a in qat["artifacts"] if a["file"] == "model_float32.tflite")},
        "int8_sensitivity": ptq.get("int8_sensitivity"), "rows": rows,
        "latency_note": f"LiteRT {args.runs} interleaved rounds per thread count on a shared 2-core VM: compare "
                        "ratios within one table, not across tables",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "commit": _commit(),
        "machine": {**host_device_facts(), "python": platform.python_version()},
    }


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def table(doc: dict) -> str:
    """One model's comparison table (Markdown)."""
    keys = [k for k in ("bbox_AP50", "kpt_AP50", "mIoU", "mask_AP50") if any(k in r["metrics"] for r in doc["rows"])]
    head = ("| variant | " + " | ".join(keys) + " | drop (points) | size MB | size − % | host ms 1T | host ms 2T "
            "| interpreter peak MB | phone ms 1T |")
    lines = [f"**{doc['name']}**: width {doc['width']}, {doc['params'] / 1e6:.2f} M parameters, {doc['imgsz']} px "
             f"(trained at {doc['train_imgsz']}), {doc['val_split']}; QAT {doc['qat']['epochs']} epochs "
             f"({doc['qat']['ranges_in_artifact']} of {doc['qat']['points']} activation ranges in the int8 file); "
             f"{doc['date']}, commit {doc['commit']}.", "", head, "|---|" + "---:|" * (head.count("|") - 2)]
    for r in doc["rows"]:
        d = r["drop_vs_fp32"]["points"]
        drop = " / ".join(f"{d[k]:+.2f}" for k in keys if k in d) if r["variant"] != "fp32" else "–"
        phone = ", ".join(f"{p['device'].get('model', '?')} {p['median_ms'] or p['avg_ms']:.1f}" for p in r["phone"]
                          if p.get("threads") == 1) or "–"
        lines.append(f"| {r['variant']} | " + " | ".join(_fmt(r["metrics"].get(k)) for k in keys)
                     + f" | {drop} | {r['model_size_mb']:.2f} | {r['size_decrease_pct']:.0f} | "
                     f"{r['host']['1']['median_ms']:.1f} | {r['host']['2']['median_ms']:.1f} | "
                     f"{r['interpreter_peak_mb']:.1f} | {phone} |")
    own = doc["qat"]["qat_fp32_metrics"]
    qat_row = next(r for r in doc["rows"] if r["export"] == "qat")
    lines += ["", "QAT checkpoint's own fp32 file: " + " / ".join(_fmt(own.get(k)) for k in keys)
              + "; QAT int8 against it: " + " / ".join(f"{100 * (own[k] - qat_row['metrics'][k]):+.2f}" for k in keys)
              + f" points (QAT lr {doc['qat']['lr']:g}{', weight EMA' if doc['qat'].get('ema') else ''}, "
              f"objective {doc['qat'].get('objective', 'labels')}, "
              f"{doc['qat']['wall_s'] or '–'} s)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", nargs="?")
    p.add_argument("--name", default="quickstart")
    p.add_argument("--imgsz", type=int, default=None, help="export size (default: the training size)")
    p.add_argument("--qat-epochs", type=int, default=3)
    p.add_argument("--qat-lr", type=float, default=1e-4)
    p.add_argument("--qat-ema", action="store_true", help="mtnet qat --ema")
    p.add_argument("--qat-objective", choices=["labels", "teacher"], default="labels", help="mtnet qat --objective")
    p.add_argument("--calib-images", type=int, default=200)
    p.add_argument("--ptq-float", default="", help="branches the PTQ int8 row keeps float32 (export --int8-float)")
    p.add_argument("--runs", type=int, default=30, help="interleaved timing rounds per thread count")
    p.add_argument("--phone", type=Path, default=None, help="mtnet bench-android results JSON of the same files")
    p.add_argument("--work", default=str(ROOT / "exports" / "quantization"))
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--reuse", action="store_true", help="keep finished exports and the QAT checkpoint")
    p.add_argument("--table", nargs="*", type=Path, help="print the docs tables of finished result files")
    args = p.parse_args()
    if args.table:
        print("\n".join(table(json.loads(f.read_text())) for f in args.table))
        return 0
    if not args.checkpoint:
        p.error("CHECKPOINT is required (or --table FILES)")
    doc = measure(args)
    out = args.out or ROOT / "benchmarks" / "results" / f"quantization_{args.name}.json"
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1) + "\n"))
    print(table(doc))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
