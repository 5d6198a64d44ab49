"""mtnet bench MODEL.tflite [...] --threads 1,2: host latency with LiteRT, JSON/CSV + plots + a table."""

from __future__ import annotations

import argparse

from ..errors import UserError


def int_list(text: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]`` with a clear message for anything else."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got '{text}'")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", help=".tflite files")
    p.add_argument("--threads", type=int_list, default=[1], help="comma-separated thread counts (default 1)")
    p.add_argument("--runs", type=int, default=50, help="timed invokes per configuration")
    p.add_argument("--warmup", type=int, default=5, help="untimed invokes before timing")
    p.add_argument("--no-xnnpack", action="store_true", help="builtin kernels only (delegate 'cpu')")
    p.add_argument("--out", default="bench_results", help="results folder (host-<hostname>/<timestamp>.*)")
    p.add_argument("--metric", default="bbox_AP50", help="accuracy metric for the Pareto plot")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..bench.host import benchmark_tflite, host_device_facts
    from ..bench.report import accuracy_for, format_table, write_plots
    from ..bench.schema import file_stamp, safe_name, write_results

    for m in args.models:
        if not Path(m).is_file():
            raise UserError(f"{m}: model file not found")
        if not m.endswith(".tflite"):
            raise UserError(f"{m}: mtnet bench runs .tflite files (LiteRT)")
    records = []
    for model in args.models:
        for threads in args.threads:
            rec = benchmark_tflite(model, threads=threads, runs=args.runs, warmup=args.warmup,
                                   use_xnnpack=not args.no_xnnpack)
            acc = accuracy_for(model)
            if acc:
                rec.extra["accuracy"] = acc
            records.append(rec)
    out_dir = Path(args.out) / f"host-{safe_name(host_device_facts()['hostname'])}"
    stem = file_stamp()
    meta = {"tool": "mtnet bench", "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
            "models": args.models, "complete": True}
    paths = [*write_results(records, out_dir, stem, meta), *write_plots(records, out_dir, stem, args.metric)]
    print(format_table(records))
    for p in paths:
        print(f"wrote {p}")
    return 0
