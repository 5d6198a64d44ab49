"""Accuracy vs latency: width x input size x precision, every point trained on an equal budget and scored from
its exported artifact.

    python benchmarks/pareto.py [--widths 0.35,0.5,0.75,1.0] [--sizes 160,224,320] [--budget-min 5 | --epochs N]
                                [--only w0.5_s224,...] [--force] [--android RESULTS.json ...]
                                [--out benchmarks/results/pareto.json] [--png docs/pareto.png]

Each grid point ``w<width>_s<size>`` is the quickstart recipe (``configs/quickstart.yaml``: three tasks,
stride-8 heads) with ``model.width`` and ``data.imgsz`` changed, trained from scratch in its own process for
``--budget-min`` minutes (``train.time_budget_min``: the epoch count and LR schedule are refitted to the
budget; on a machine shared with other work the epochs a point gets depend on that load, so ``--epochs N``
gives every point N epochs instead) on one synthetic set generated at 320 px, so every input size downsamples
the same images. Then
``mtnet.export`` writes fp32 and int8 (full-integer, calibrated on train images) TFLite files and scores every
task of every file with the LiteRT backend on the val split (box AP, keypoint AP, mIoU): the accuracy plotted
is the artifact's, not the PyTorch model's.

A finished grid point is written to ``<out stem>/<key>.json`` (atomically) as soon as its export ends, so a
sweep can be split over processes (``--only``) and a rerun skips finished points (``--force`` redoes them).
Then every artifact present is timed on the host with one thread, interleaved (A B C ... A B C ...: a load
spike on a shared machine hits every model alike), written in the ``mtnet bench`` schema
(``<out stem>_host.json``), and plotted: one panel per task metric against latency, the Pareto front marked.
``--android`` adds ``mtnet bench-android`` results of the same files to the picture (the schema is shared;
rows are matched to grid points by the file's SHA-256).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from result_rows import run_rows, write_json

ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = ROOT / "configs" / "quickstart.yaml"
PRECISIONS = ("fp32", "int8")
PANELS = (("bbox_AP50", "box AP50"), ("kpt_AP50", "keypoint AP50"), ("mIoU", "mIoU"))
METRICS = ("bbox_AP", "bbox_AP50", "kpt_AP", "kpt_AP50", "mIoU")


def key_of(width: float, size: int) -> str:
    return f"w{width:g}_s{size}"


def train_point(width: float, size: int, args: argparse.Namespace) -> tuple[Path, dict]:
    """``mtnet train`` of one grid point in a child process (its own thread count); returns best.pt, metrics."""
    key = key_of(width, size)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, "-m", "mtnet", "train", str(BASE_CONFIG), f"model.width={width}", f"data.imgsz={size}",
           f"data.root={args.data}", f"data.synthetic.image_size={args.image_size}",
           *([f"train.epochs={args.epochs}"] if args.epochs else [f"train.time_budget_min={args.budget_min}"]),
           f"name={key}", f"output_dir={args.runs}", "--no-progress"]
    print("+", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    run_dir = Path(args.runs) / key
    return run_dir / "best.pt", json.loads((run_dir / "metrics.json").read_text())


def export_point(checkpoint: Path, key: str, args: argparse.Namespace) -> dict:
    """fp32 + int8 TFLite through ``mtnet.export`` (its own evaluation of each file); returns its report."""
    from mtnet.export.pipeline import ExportOptions, export_checkpoint

    opts = ExportOptions(formats=("tflite",), precisions=PRECISIONS, bench_runs=0, progress=False)
    folder = export_checkpoint(checkpoint, Path(args.runs) / "exports", name=key, options=opts)
    return json.loads((folder / "report.json").read_text()) | {"folder": str(folder)}


def run_point(width: float, size: int, args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    checkpoint, trained = train_point(width, size, args)
    report = export_point(checkpoint, key_of(width, size), args)
    artifacts = {a["precision"]: {"file": str(Path(report["folder"]) / a["file"]), "size_mb": a["size_mb"],
                                  "metrics": {k: a["metrics"].get(k) for k in METRICS if k in a["metrics"]}}
                 for a in report["artifacts"]}
    budget = {"epochs_budget": args.epochs} if args.epochs else {"budget_min": args.budget_min}
    return {"key": key_of(width, size), "width": width, "imgsz": size, **budget,
            "epochs": trained["epochs"], "train_min": round(trained["train_s"] / 60, 2), "params": trained["params"],
            "pytorch_metrics": {k: trained.get(k) for k in METRICS}, "artifacts": artifacts,
            "wall_min": round((time.perf_counter() - start) / 60, 2)}


def time_artifacts(rows: dict[str, dict], runs: int, rounds: int) -> list:
    """One-thread host latency of every artifact, interleaved; BenchRecords carrying their accuracy."""
    from mtnet.bench.interleave import time_interleaved

    paths, accuracy = {}, {}
    for key, row in rows.items():
        for prec, art in row["artifacts"].items():
            if Path(art["file"]).is_file():
                paths[f"{key}_{prec}"] = Path(art["file"])
                accuracy[f"{key}_{prec}"] = art["metrics"]
    records = time_interleaved(paths, threads=1, runs=runs, rounds=rounds)
    for name, rec in records.items():
        rec.model = name
        rec.extra["accuracy"] = accuracy[name]
    return list(records.values())


def android_records(files: list[str], rows: dict[str, dict]) -> list:
    """``mtnet bench-android`` rows of grid-point files, named and scored like the host rows (by SHA-256)."""
    from mtnet.bench.schema import read_results, sha256_file

    by_sha = {}
    for key, row in rows.items():
        for prec, art in row["artifacts"].items():
            if Path(art["file"]).is_file():
                by_sha[sha256_file(art["file"])] = (f"{key}_{prec}", art["metrics"])
    out = []
    for f in files:
        for rec in read_results(f)[0]:
            if rec.status == "ok" and rec.model_sha256 in by_sha:
                rec.model, rec.extra["accuracy"] = by_sha[rec.model_sha256]
                out.append(rec)
    return out


def table(rows: dict[str, dict], latency: dict[str, float]) -> str:
    head = ("| width | input | precision | epochs | box AP | box AP50 | kpt AP | kpt AP50 | mIoU | 1-thread ms "
            "| size MB | front |")
    lines = [head, "|---:|---:|---|---:|" + "---:|" * 8]
    for row in sorted(rows.values(), key=lambda r: (r["width"], r["imgsz"])):
        for prec, art in row["artifacts"].items():
            name = f"{row['key']}_{prec}"
            m = art["metrics"]
            ms = latency.get(name)
            cells = [f"{m[k]:.3f}" if m.get(k) is not None else "–" for k in METRICS]
            front = ", ".join(label for metric, label in PANELS if name in _front_names(rows, latency, metric))
            lines.append(f"| {row['width']:g} | {row['imgsz']} | {prec} | {row['epochs']} | " + " | ".join(cells)
                         + f" | {'–' if ms is None else f'{ms:.2f}'} | {art['size_mb']:.2f} | {front} |")
    return "\n".join(lines)


def _front_names(rows: dict[str, dict], latency: dict[str, float], metric: str) -> set[str]:
    from mtnet.bench.report import pareto_front

    pts = {name: (ms, rows[name.rsplit("_", 1)[0]]["artifacts"][name.rsplit("_", 1)[1]]["metrics"].get(metric))
           for name, ms in latency.items()}
    pts = {n: p for n, p in pts.items() if p[1] is not None}
    front = set(pareto_front(list(pts.values())))
    return {n for n, p in pts.items() if p in front}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="0.35,0.5,0.75,1.0")
    p.add_argument("--sizes", default="160,224,320")
    p.add_argument("--budget-min", type=float, default=5.0, help="training minutes per grid point (equal for all)")
    p.add_argument("--epochs", type=int, default=0,
                   help="> 0: an equal number of epochs per point instead of --budget-min (independent of other load)")
    p.add_argument("--only", default="", help="comma-separated grid keys, e.g. w0.5_s224 (default: the whole grid)")
    p.add_argument("--force", action="store_true", help="retrain and re-export points that already have a row")
    p.add_argument("--skip-train", action="store_true", help="only time and plot the rows already present")
    p.add_argument("--no-report", action="store_true", help="train and export only (e.g. one of several workers)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    p.add_argument("--data", default="data/pareto", help="synthetic set (generated at --image-size if missing)")
    p.add_argument("--image-size", type=int, default=320, help="side of the generated images")
    p.add_argument("--runs", default=str(ROOT / "runs" / "pareto"), help="training runs and exports")
    p.add_argument("--latency-runs", type=int, default=200, help="timed invokes per artifact")
    p.add_argument("--latency-rounds", type=int, default=20, help="interleaved rounds the invokes are split into")
    p.add_argument("--android", nargs="*", default=[], help="mtnet bench-android results JSON of grid-point files")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pareto.json"))
    p.add_argument("--png", default=str(ROOT / "docs" / "pareto.png"))
    args = p.parse_args()
    grid = {key_of(float(w), int(s)): (float(w), int(s)) for w in args.widths.split(",") for s in args.sizes.split(",")}
    chosen = [k for k in args.only.split(",") if k] or list(grid)
    unknown = [k for k in chosen if k not in grid]
    if unknown:
        p.error(f"unknown grid keys {unknown}; choose from {list(grid)}")
    out = Path(args.out)
    rows = run_rows(out, [] if args.skip_train else chosen, lambda key: run_point(*grid[key], args),
                    lambda row: {p: a["metrics"] for p, a in row["artifacts"].items()}, force=args.force)
    if args.no_report:
        return
    if not rows:
        sys.exit("no grid point finished yet")
    from mtnet.bench.host import host_device_facts
    from mtnet.bench.report import plot_pareto_panels
    from mtnet.bench.schema import write_results

    host = time_artifacts(rows, args.latency_runs, args.latency_rounds)
    write_results(host, out.parent, f"{out.stem}_host", {"command": "benchmarks/pareto.py", "interleaved": True})
    latency = {r.model: r.median_ms for r in host}
    plot_pareto_panels(host + android_records(args.android, rows), args.png, PANELS)
    write_json(out, {"date": time.strftime("%Y-%m-%d"), "machine": host_device_facts(),
                     "host": f"{platform.machine()} {os.cpu_count()} cores", "budget_min": args.budget_min,
                     "epochs_budget": args.epochs, "base_config": str(BASE_CONFIG.relative_to(ROOT)), "data": args.data,
                     "latency": {"threads": 1, "runs": args.latency_runs, "rounds": args.latency_rounds,
                                 "median_ms": latency}, "rows": rows})
    print(table(rows, latency))
    print(f"wrote {out}, {args.png}")


if __name__ == "__main__":
    main()
