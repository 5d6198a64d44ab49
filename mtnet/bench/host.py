"""Host latency of a .tflite file with the LiteRT interpreter (the same runtime the phone uses).

Mirrors what TFLite's ``benchmark_model`` measures so host and phone rows mean the same thing: init =
interpreter construction + ``allocate_tensors``; first = the first ``invoke``; warm-up average over the
warm-up runs (first included); then ``runs`` timed invokes on fixed random inputs of the right dtype.
Host rows also carry the median, which the phone tool does not print.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import resource
import socket
import statistics
import time
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .schema import BenchRecord, infer_precision, sha256_file

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


class BenchError(UserError):
    """The model file is missing or LiteRT cannot load it."""


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE_MB


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


@cache
def host_device_facts() -> dict[str, Any]:
    """Hostname, CPU model, core count, Python and LiteRT versions: what a host row depends on."""
    cpu_model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):  # not Linux: keep platform's answer
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    try:
        litert = importlib.metadata.version("ai-edge-litert")
    except importlib.metadata.PackageNotFoundError:
        litert = None
    hostname = socket.gethostname()
    return {"name": hostname, "hostname": hostname, "model": platform.node(), "cpu_model": cpu_model,
            "cpu_cores": os.cpu_count(), "abi": platform.machine(), "os": platform.platform(),
            "python": platform.python_version(), "litert": litert,
            "governor": _read(Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"))}


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def random_inputs(details: list[dict[str, Any]], seed: int = 0) -> list[np.ndarray]:
    """Inputs like benchmark_model's: floats in [-0.5, 0.5], ints over their range, fixed per run."""
    rng = np.random.default_rng(seed)
    out = []
    for d in details:
        dtype, shape = np.dtype(d["dtype"]), tuple(int(s) for s in d["shape"])
        if np.issubdtype(dtype, np.floating):
            out.append(rng.uniform(-0.5, 0.5, shape).astype(dtype))
        elif dtype == np.bool_:
            out.append(rng.integers(0, 2, shape).astype(dtype))
        else:
            info = np.iinfo(dtype)
            lo, hi = (max(info.min, -127), min(info.max, 127)) if info.min < 0 else (0, min(info.max, 254))
            out.append(rng.integers(lo, hi + 1, shape).astype(dtype))
    return out


def open_interpreter(path: str | Path, threads: int = 1, use_xnnpack: bool = True):
    """A LiteRT interpreter with tensors allocated; a one-line :class:`BenchError` if it cannot load."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: model file not found")
    resolver = OpResolverType.AUTO if use_xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interp = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise BenchError(f"{path}: LiteRT cannot load this model ({str(e).splitlines()[0][:200]})") from None
    return interp


def feed_random_inputs(interp) -> list[dict[str, Any]]:
    """Set every input to :func:`random_inputs` (fixed seed); returns the input details."""
    inputs = interp.get_input_details()
    for d, x in zip(inputs, random_inputs(inputs), strict=True):
        interp.set_tensor(d["index"], x)
    return inputs


def benchmark_tflite(path: str | Path, *, threads: int = 1, runs: int = 50, warmup: int = 5,
                     use_xnnpack: bool = True) -> BenchRecord:
    """Time ``invoke()`` of one .tflite file on this machine; returns one :class:`BenchRecord`.

    ``use_xnnpack=False`` uses LiteRT's builtin kernels (benchmark_model's ``--use_xnnpack=false``).
    """
    path = Path(path)
    if runs < 1 or warmup < 1 or threads < 1:
        raise BenchError(f"{path}: runs, warmup and threads must be >= 1 (got {runs}, {warmup}, {threads})")
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    interp = open_interpreter(path, threads, use_xnnpack)
    init_ms = (time.perf_counter() - t0) * 1e3
    init_mem = _rss_mb() - rss0
    inputs = feed_random_inputs(interp)

    def timed() -> float:
        s = time.perf_counter()
        interp.invoke()
        return (time.perf_counter() - s) * 1e3

    warm = [timed() for _ in range(warmup)]
    times = np.array([timed() for _ in range(runs)])
    dtypes = sorted({np.dtype(t["dtype"]).name for t in interp.get_tensor_details()})
    return BenchRecord(
        model=path.name, model_path=str(path.resolve()), model_sha256=sha256_file(path),
        model_size_mb=path.stat().st_size / 1e6, precision=infer_precision(path, dtypes),
        backend="litert-host", device=host_device_facts(), threads=threads,
        delegate="xnnpack" if use_xnnpack else "cpu", runs=runs, warmup_runs=warmup,
        init_ms=init_ms, first_ms=warm[0], warmup_avg_ms=statistics.fmean(warm),
        avg_ms=float(times.mean()), median_ms=float(np.median(times)), min_ms=float(times.min()),
        max_ms=float(times.max()), std_ms=float(times.std()),
        mem_footprint_mb=max(_rss_mb() - rss0, 0.0), peak_mem_mb=_peak_rss_mb(),
        extra={"init_mem_mb": init_mem, "p90_ms": float(np.percentile(times, 90)),
               "input_dtypes": [np.dtype(d["dtype"]).name for d in inputs]},
    )


def model_precision(path: str | Path) -> str:
    """Precision from the file name, else from the tensor dtypes (needs LiteRT; 'unknown' without it)."""
    precision = infer_precision(path)
    if precision != "unknown":
        return precision
    try:
        from ai_edge_litert.interpreter import Interpreter

        details = Interpreter(model_path=str(path)).get_tensor_details()
    except (ImportError, ValueError, RuntimeError):
        return precision
    return infer_precision(path, sorted({np.dtype(t["dtype"]).name for t in details}))
