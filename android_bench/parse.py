"""Parse the output of TFLite's ``benchmark_model`` (binary stdout/stderr or the APK's logcat).

Formats handled (from tensorflow/lite/tools/benchmark/benchmark_model.cc, core/util/stats_calculator):
- current summary ``Inference timings in us: Init: I, First inference: F, Warmup (avg): W, Inference (avg): A``
- older summary ``Average inference timings in us: Warmup: W, Init: I, Inference: A``
- stat lines ``count=N first=F curr=C min=m max=M avg=A std=S`` (any key order; ``count=1 curr=C``
  when all values are equal) after each ``Running benchmark for at least ...`` line: warm-up, then timed
- ``Memory footprint delta from the start of the tool (MB): init=X overall=Y`` and
  ``Overall peak memory footprint (MB) via periodic monitoring: P``
- ``ERROR:``/``FATAL:`` lines (stderr) and logcat ``E tflite`` lines; the last one that is not the generic
  ``Benchmarking failed.`` is the reason (e.g. ``Failed to apply GPU delegate.``)
- the op-profiling "Run Order" table of ``Operator-wise Profiling Info for Regular Benchmark Runs``,
  tab- or space-separated, with or without the older ``[start]`` column.
Numbers are printed by C++ streams with 6 significant digits (``1.38151e+06`` is possible).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_LOGCAT = re.compile(r"^(?:\d\d-\d\d\s+[\d:.]+\s+\d+\s+\d+\s+([VDIWEF])\s+|\.\.\.\s+)?"
                     r"(tflite(?:_BenchmarkModelActivity)?)\s*:\s?(.*)$")
_LEVEL = re.compile(r"^(INFO|WARN|WARNING|ERROR|FATAL|VERBOSE):\s?(.*)$")
_CURRENT = re.compile(rf"Inference timings in us: Init: ({NUM}), First inference: ({NUM}), "
                      rf"Warmup \(avg\): ({NUM}), Inference \(avg\): ({NUM})")
_LEGACY = re.compile(rf"Average inference timings in us: Warmup: ({NUM}), Init: ({NUM}), Inference: ({NUM})")
_STAT_KV = re.compile(rf"\b(count|first|curr|min|max|avg|std)=({NUM})")
_MEM = re.compile(rf"Memory footprint delta from the start of the tool \(MB\): init=({NUM}) overall=({NUM})")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({NUM})")
_SIZE = re.compile(rf"The input model file size \(MB\): ({NUM})")
_OP_ROW = re.compile(rf"^\s*(?P<type>\S.*?)\s+(?:(?P<start>{NUM})\s+)?(?P<first>{NUM})\s+(?P<avg>{NUM})\s+"
                     rf"(?P<pct>{NUM})%\s+(?P<cdf>{NUM})%\s+(?P<mem>{NUM})\s+(?P<times>\d+)\s+(?P<name>\S.*?)\s*$")
_DELEGATE_NOTE = re.compile(r"(Explicitly applied .*|Though .* delegate is explicitly applied.*"
                            r"|Replacing \d+ out of \d+ node\(s\) with delegate.*)")


@dataclass
class Stat:
    """One ``count=... avg=...`` line, in microseconds."""

    count: int
    avg: float
    first: float | None = None
    curr: float | None = None
    min: float | None = None
    max: float | None = None
    std: float | None = None


@dataclass
class OpRow:
    node_type: str
    first_ms: float
    avg_ms: float
    percent: float
    cdf_percent: float
    mem_kb: float
    times_called: int
    name: str


@dataclass
class BenchmarkOutput:
    """Everything one benchmark run printed that the results schema needs (times in microseconds)."""

    format: str | None = None  # "current" | "legacy" | None (no summary line found)
    init_us: float | None = None
    first_us: float | None = None
    warmup_avg_us: float | None = None
    avg_us: float | None = None
    warmup: Stat | None = None
    inference: Stat | None = None
    init_mem_mb: float | None = None
    overall_mem_mb: float | None = None
    peak_mem_mb: float | None = None
    model_size_mb: float | None = None
    errors: list[str] = field(default_factory=list)
    delegate_notes: list[str] = field(default_factory=list)
    ops: list[OpRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.avg_us is not None

    @property
    def error(self) -> str | None:
        """The most specific error message, or None."""
        specific = [e for e in self.errors if e.strip() != "Benchmarking failed."]
        return (specific or self.errors or [None])[-1]


def messages(text: str) -> list[tuple[str, str]]:
    """(level, message) per line; logcat prefixes and ``INFO:``-style prefixes removed."""
    out = []
    for raw in text.splitlines():
        line, level = raw.rstrip("\r"), "INFO"
        m = _LOGCAT.match(line)
        if m:
            level = {"E": "ERROR", "F": "FATAL", "W": "WARN"}.get(m.group(1) or "I", "INFO")
            line = m.group(3)
        m = _LEVEL.match(line)
        if m:
            level, line = m.group(1), m.group(2)
        out.append((level, line))
    return out


def parse_stat(line: str) -> Stat | None:
    kv = {k: float(v) for k, v in _STAT_KV.findall(line)}
    if "count" not in kv or ("avg" not in kv and "curr" not in kv):
        return None
    avg = kv.get("avg", kv.get("curr"))
    return Stat(count=int(kv["count"]), avg=avg, first=kv.get("first", kv.get("curr")), curr=kv.get("curr"),
                min=kv.get("min", avg), max=kv.get("max", avg), std=kv.get("std", 0.0))


def parse_output(text: str) -> BenchmarkOutput:
    """Parse one run's combined output (stdout + stderr, or logcat)."""
    res = BenchmarkOutput()
    msgs = messages(text)
    run_stats: list[Stat] = []
    loose_stats: list[Stat] = []
    expect_stat = False
    for level, msg in msgs:
        s = msg.strip()
        if level in ("ERROR", "FATAL") and s:
            res.errors.append(s)
        if s.startswith("Running benchmark for at least"):
            expect_stat = True
            continue
        if not s:
            continue
        if _STAT_KV.match(s) or s.startswith("curr="):
            stat = parse_stat(s)
            if stat is not None:
                (run_stats if expect_stat else loose_stats).append(stat)
            expect_stat = False
            continue
        expect_stat = False
        if m := _CURRENT.search(s):
            res.format = "current"
            res.init_us, res.first_us, res.warmup_avg_us, res.avg_us = (float(g) for g in m.groups())
        elif m := _LEGACY.search(s):
            res.format = "legacy"
            res.warmup_avg_us, res.init_us, res.avg_us = (float(g) for g in m.groups())
        elif m := _MEM.search(s):
            res.init_mem_mb, res.overall_mem_mb = float(m.group(1)), float(m.group(2))
        elif m := _PEAK.search(s):
            res.peak_mem_mb = float(m.group(1))
        elif m := _SIZE.search(s):
            res.model_size_mb = float(m.group(1))
        elif m := _DELEGATE_NOTE.search(s):
            res.delegate_notes.append(m.group(1))
    stats = run_stats if run_stats else loose_stats
    if len(stats) >= 2:
        res.warmup, res.inference = stats[-2], stats[-1]
    elif stats and res.avg_us is not None:
        res.inference = stats[-1] if abs(stats[-1].avg - res.avg_us) <= 1 else None
        res.warmup = stats[-1] if res.inference is None else None
    res.ops = parse_op_profile(text)
    return res


def parse_op_profile(text: str) -> list[OpRow]:
    """Rows of the 'Run Order' table for the regular (timed) runs; [] without op profiling.

    Older tools print only the tables (no section headers); then the first 'Run Order' table is used.
    """
    lines = [m for _, m in messages(text)]
    start = next((i for i, s in enumerate(lines) if "Operator-wise Profiling Info for Regular Benchmark Runs" in s), -1)
    try:
        begin = next(i for i in range(start + 1, len(lines)) if "= Run Order =" in lines[i])
    except StopIteration:
        return []
    rows = []
    for s in lines[begin + 2:]:
        if not s.strip() or s.startswith("="):
            break
        m = _OP_ROW.match(s)
        if m:
            rows.append(OpRow(node_type=m["type"].strip(), first_ms=float(m["first"]), avg_ms=float(m["avg"]),
                              percent=float(m["pct"]), cdf_percent=float(m["cdf"]), mem_kb=float(m["mem"]),
                              times_called=int(m["times"]), name=m["name"]))
    return rows
