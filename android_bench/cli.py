"""``mtnet bench-android`` / ``python -m mtnet.android_bench``: parse arguments, sweep each device, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mtnet.errors import UserError


def _list(kind):
    def parse(text: str) -> list:
        try:
            values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got '{text}'") from None
        if not values:
            raise argparse.ArgumentTypeError("empty list")
        return values
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", type=Path, help=".tflite files to profile")
    tool = p.add_mutually_exclusive_group(required=True)
    tool.add_argument("--benchmark-binary", type=Path, help="TFLite benchmark_model for android_aarch64")
    tool.add_argument("--apk", type=Path, help="TFLite benchmark APK (BenchmarkModelActivity, results from logcat)")
    p.add_argument("--threads", type=_list(int), default=[1], help="comma-separated thread counts (default 1)")
    p.add_argument("--delegates", type=_list(str), default=["xnnpack"], help="cpu,xnnpack,gpu,nnapi (default xnnpack)")
    p.add_argument("--serial", action="append", default=[], help="device serial (repeat for several; default: all)")
    p.add_argument("--connect", action="append", default=[], metavar="HOST:PORT",
                   help="adb connect this address first (Wi-Fi debugging); repeatable")
    p.add_argument("--runs", type=int, default=50, help="timed runs per combination (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up runs per combination (default 5)")
    p.add_argument("--cooldown", type=float, default=5.0, help="seconds to rest between runs (default 5)")
    p.add_argument("--max-temp", type=float, help="wait until the battery is below this many degrees C")
    p.add_argument("--temp-timeout", type=float, default=600.0, help="longest wait for --max-temp (s)")
    p.add_argument("--taskset", metavar="MASK", help="pin to cores with taskset, e.g. f0 (big cores)")
    p.add_argument("--op-profiling", action="store_true", help="per-op tables, saved as CSV")
    p.add_argument("--resume", action="store_true", help="finish the last interrupted sweep with the same plan")
    p.add_argument("--dry-run", action="store_true", help="print the adb commands, touch nothing")
    p.add_argument("--out", type=Path, default=Path("bench_results"), help="results folder (<device>/<timestamp>.*)")
    p.add_argument("--metric", default="bbox_AP50", help="accuracy metric for the Pareto plot")
    p.add_argument("--adb", help="adb binary (default: $ADB or adb on PATH)")
    p.add_argument("--adb-port", type=int, help="adb server port (default: adb's, 5037)")
    p.add_argument("--remote-dir", default="/data/local/tmp/mtnet_bench", help="folder on the device")


def run(args: argparse.Namespace) -> int:
    from mtnet.bench.report import format_table
    from mtnet.bench.schema import read_results

    from .adb import Adb, DeviceLostError
    from .runner import DeviceSweep, SweepConfig, resolve_devices

    cfg = SweepConfig(models=list(args.models), threads=args.threads, delegates=args.delegates,
                      binary=args.benchmark_binary, apk=args.apk, runs=args.runs, warmup=args.warmup,
                      cooldown_s=args.cooldown, max_temp_c=args.max_temp, temp_timeout_s=args.temp_timeout,
                      taskset=args.taskset, op_profiling=args.op_profiling, resume=args.resume, out=args.out,
                      metric=args.metric, remote_dir=args.remote_dir.rstrip("/"))
    adb = Adb(adb_path=args.adb, port=args.adb_port, dry_run=args.dry_run)
    serials = resolve_devices(adb, args.serial, args.connect)
    lost, failed_runs = [], 0
    for serial in serials:
        try:
            path = DeviceSweep(adb.for_device(serial), cfg).run()
        except DeviceLostError as e:
            lost.append(str(e))
            continue
        if path is not None:
            records, _ = read_results(path)
            failed_runs += sum(r.status != "ok" for r in records)
            print(format_table(records))
            print(f"results: {path} (+ .csv, plots)")
    if lost:
        raise DeviceLostError(" | ".join(lost))
    if failed_runs:
        print(f"{failed_runs} run(s) failed on the device; see the 'error' column", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtnet.android_bench",
                                description="Profile .tflite files on Android phones over adb.")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except UserError as e:
        print(f"android_bench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("android_bench: error: interrupted (finished runs are saved; rerun with --resume)", file=sys.stderr)
        return 2
