"""Several .tflite files timed side by side (A B C A B C ...), for ratios that hold on a noisy shared host.

Timing one model after another lets a load spike on a shared machine land on one model only; splitting the
invokes into interleaved rounds spreads any spike over every model alike, so medians and their ratios from
one run are comparable. Rows are :class:`BenchRecord` (``extra["interleaved_with"]`` names the others), the
same schema as ``mtnet bench`` and ``mtnet bench-android``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .host import BenchError, feed_random_inputs, host_device_facts, open_interpreter
from .schema import BenchRecord, infer_precision, sha256_file


def time_interleaved(paths: dict[str, Path], *, threads: int = 1, runs: int = 200, rounds: int = 20,
                     warmup: int = 5) -> dict[str, BenchRecord]:
    """Median (and spread) of ``runs`` invokes per model, in ``rounds`` interleaved blocks; keyed like ``paths``."""
    if runs < rounds or rounds < 1 or threads < 1 or warmup < 1:
        raise BenchError(f"need runs >= rounds >= 1, threads >= 1 and warmup >= 1 (got {runs}, {rounds}, "
                         f"{threads}, {warmup})")
    interpreters, init_ms = {}, {}
    for name, path in paths.items():
        start = time.perf_counter()
        interp = open_interpreter(path, threads)
        init_ms[name] = (time.perf_counter() - start) * 1e3
        feed_random_inputs(interp)
        interpreters[name] = interp
    warm: dict[str, list[float]] = {name: [] for name in paths}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for name, interp in interpreters.items():
        warm[name] = [_invoke_ms(interp) for _ in range(warmup)]
    per_round = runs // rounds
    for _ in range(rounds):
        for name, interp in interpreters.items():
            times[name] += [_invoke_ms(interp) for _ in range(per_round)]
    records = {}
    for name, path in paths.items():
        t = np.asarray(times[name])
        dtypes = sorted({np.dtype(d["dtype"]).name for d in interpreters[name].get_tensor_details()})
        records[name] = BenchRecord(
            model=Path(path).name, model_path=str(Path(path).resolve()), model_sha256=sha256_file(path),
            model_size_mb=Path(path).stat().st_size / 1e6, precision=infer_precision(path, dtypes),
            backend="litert-host", device=host_device_facts(), threads=threads, delegate="xnnpack",
            runs=len(t), warmup_runs=warmup, init_ms=init_ms[name], first_ms=warm[name][0],
            warmup_avg_ms=float(np.mean(warm[name])), avg_ms=float(t.mean()), median_ms=float(np.median(t)),
            min_ms=float(t.min()), max_ms=float(t.max()), std_ms=float(t.std()),
            extra={"p90_ms": float(np.percentile(t, 90)), "rounds": rounds,
                   "interleaved_with": [n for n in paths if n != name]})
    return records


def _invoke_ms(interp) -> float:
    start = time.perf_counter()
    interp.invoke()
    return (time.perf_counter() - start) * 1e3
