"""One result row per (model x threads x delegate) run, shared by ``mtnet bench`` and ``android_bench``.

Host (LiteRT in Python) and phone (``benchmark_model`` binary or APK) results land in the same JSON/CSV
shape, so one plotting/reporting path serves both and results from different machines can be compared
side by side. Times are milliseconds, memory is MB, ``None`` means "the tool did not report it".
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fileio import atomic_write

SCHEMA_VERSION = 1
BACKENDS = ("litert-host", "benchmark_model", "benchmark_apk")
DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi")
PRECISIONS = ("fp32", "fp16", "int8", "dynamic", "unknown")


class ResultsError(UserError, ValueError):
    """A results file is missing, unreadable or not in this schema."""


@dataclass
class BenchRecord:
    """Latency/memory of one model run with one thread count and one delegate on one device."""

    model: str
    model_path: str
    model_sha256: str
    model_size_mb: float
    precision: str
    backend: str
    device: dict[str, Any]
    threads: int
    delegate: str
    runs: int | None = None
    warmup_runs: int | None = None
    init_ms: float | None = None
    first_ms: float | None = None
    warmup_avg_ms: float | None = None
    avg_ms: float | None = None
    median_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    mem_footprint_mb: float | None = None
    peak_mem_mb: float | None = None
    status: str = "ok"
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    timestamp: str = field(default_factory=lambda: utc_now())
    schema_version: int = SCHEMA_VERSION

    @property
    def latency_ms(self) -> float | None:
        """The headline latency: median when the tool gives it, else the mean."""
        return self.median_ms if self.median_ms is not None else self.avg_ms

    @property
    def key(self) -> tuple[str, int, str]:
        """Identity of the run within a sweep (used by ``--resume``)."""
        return (self.model_sha256, self.threads, self.delegate)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ResultsError(f"unknown result field(s) {unknown} (schema version {SCHEMA_VERSION})")
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in d and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ResultsError(f"result row lacks field(s) {missing}")
        return cls(**d)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def file_stamp() -> str:
    """A file-name-safe UTC timestamp, sortable: ``20261123T063000Z``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def safe_name(text: str) -> str:
    """Folder-name-safe version of a device or host name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "unknown"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_NAME_PRECISION = (
    (re.compile(r"dynamic_range|dynamic"), "dynamic"),
    (re.compile(r"full_integer|integer_quant|int8|uint8|quant"), "int8"),
    (re.compile(r"float16|fp16|f16"), "fp16"),
    (re.compile(r"float32|fp32|f32"), "fp32"),
)


def infer_precision(path: str | Path, tensor_dtypes: list[str] | None = None) -> str:
    """fp32/fp16/int8/dynamic from onnx2tf's file names, else from the model's tensor dtypes.

    ``tensor_dtypes`` are numpy dtype names of all tensors (weights included). Full-integer models carry
    int32 biases next to int8 tensors; dynamic-range models have int8 weights but float biases and
    activations; fp16 models store float16 weights.
    """
    name = Path(path).name.lower()
    for pattern, precision in _NAME_PRECISION:
        if pattern.search(name):
            return precision
    if tensor_dtypes:
        kinds = set(tensor_dtypes)
        has_int8 = bool(kinds & {"int8", "uint8"})
        if has_int8 and "float32" in kinds:
            return "int8" if "int32" in kinds else "dynamic"
        if has_int8:
            return "int8"
        if "float16" in kinds:
            return "fp16"
        if "float32" in kinds:
            return "fp32"
    return "unknown"


CSV_DEVICE_KEYS = ("name", "model", "soc", "abi", "android", "sdk", "cpu_cores", "hostname", "cpu_model")


def _csv_row(r: BenchRecord) -> dict[str, Any]:
    row = {k: v for k, v in r.to_dict().items() if k not in ("device", "extra")}
    for k in CSV_DEVICE_KEYS:
        row[f"device_{k}"] = r.device.get(k)
    row["extra"] = json.dumps(r.extra, sort_keys=True)
    return row


def write_results(records: list[BenchRecord], out_dir: str | Path, stem: str,
                  metadata: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.json`` (rows + metadata) and ``<stem>.csv`` atomically; return both paths."""
    out_dir = Path(out_dir)
    json_path, csv_path = out_dir / f"{stem}.json", out_dir / f"{stem}.csv"
    doc = {"schema_version": SCHEMA_VERSION, "written": utc_now(), "metadata": metadata or {},
           "records": [r.to_dict() for r in records]}

    def write_json(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")

    def write_csv(tmp: str) -> None:
        rows = [_csv_row(r) for r in records]
        fields = list(rows[0]) if rows else [f.name for f in dataclasses.fields(BenchRecord)]
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)

    atomic_write(json_path, write_json)
    atomic_write(csv_path, write_csv)
    return json_path, csv_path


def read_results(json_path: str | Path) -> tuple[list[BenchRecord], dict[str, Any]]:
    """Load a results JSON written by :func:`write_results`: (records, metadata)."""
    json_path = Path(json_path)
    try:
        doc = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{json_path}: results file not found") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ResultsError(f"{json_path}: not readable JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION or "records" not in doc:
        raise ResultsError(f"{json_path}: not an mtnet results file (schema version {SCHEMA_VERSION})")
    try:
        records = [BenchRecord.from_dict(d) for d in doc["records"]]
    except ResultsError as e:
        raise ResultsError(f"{json_path}: {e}") from None
    return records, doc.get("metadata", {})
