"""mtnet bench-android MODEL.tflite ... --benchmark-binary ./benchmark_model: profile on phones over adb.

The implementation lives in ``mtnet.android_bench`` (the repository's android_bench/ folder; also ``python -m mtnet.android_bench``);
it is imported only when this command runs.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from mtnet.android_bench.cli import add_arguments as add

    add(p)


def run(args: argparse.Namespace) -> int:
    from mtnet.android_bench.cli import run as run_sweep

    return run_sweep(args)
