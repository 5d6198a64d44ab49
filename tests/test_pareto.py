"""Interleaved host timing (mtnet.bench.interleave), the per-task Pareto panels, and benchmarks/pareto.py's join
of ``mtnet bench-android`` rows to grid points (the schema is shared, files matched by SHA-256)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mtnet.bench.host import BenchError
from mtnet.bench.interleave import time_interleaved
from mtnet.bench.report import plot_pareto_panels
from mtnet.bench.schema import BenchRecord, sha256_file, write_results
from tests.test_android_e2e import tiny_tflite

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import pareto  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("interleave")
    return {"small": tiny_tflite(d / "small.tflite", 4), "large": tiny_tflite(d / "large.tflite", 96)}


def test_time_interleaved_records(files):
    recs = time_interleaved(files, threads=1, runs=40, rounds=4, warmup=2)
    assert set(recs) == {"small", "large"}
    for name, r in recs.items():
        assert r.runs == 40 and r.extra["rounds"] == 4 and r.extra["interleaved_with"] == [n for n in files if n != name]
        assert r.backend == "litert-host" and r.model_sha256 == sha256_file(files[name])
        assert 0 < r.min_ms <= r.median_ms <= r.max_ms
    assert recs["large"].median_ms > recs["small"].median_ms  # 96 vs 4 channels: ~500x the MACs
    with pytest.raises(BenchError, match="runs >= rounds"):
        time_interleaved(files, runs=2, rounds=4)


def _row(key: str, width: float, path: Path, ap50: float) -> dict:
    return {"key": key, "width": width, "imgsz": 160, "epochs": 3, "artifacts": {
        "fp32": {"file": str(path), "size_mb": 0.1, "metrics": {"bbox_AP50": ap50, "mIoU": 0.5}}}}


def test_android_rows_join_grid_points_and_plot_on_the_same_axes(files, tmp_path):
    rows = {"w0.5_s160": _row("w0.5_s160", 0.5, files["small"], 0.4), "w1_s160": _row("w1_s160", 1.0, files["large"], 0.6)}
    host = pareto.time_artifacts(rows, runs=8, rounds=2)
    assert {r.model for r in host} == {"w0.5_s160_fp32", "w1_s160_fp32"}
    phone = BenchRecord(model="model_float32.tflite", model_path="/data/local/tmp/m.tflite",
                        model_sha256=sha256_file(files["large"]), model_size_mb=0.1, precision="fp32",
                        backend="benchmark_model", device={"name": "Pixel 8"}, threads=1, delegate="xnnpack",
                        avg_ms=3.0)
    other = BenchRecord(**{**phone.to_dict(), "model_sha256": "0" * 64})  # not a grid-point file: left out
    results, _ = write_results([phone, other], tmp_path, "android")
    joined = pareto.android_records([str(results)], rows)
    assert [(r.model, r.extra["accuracy"]["bbox_AP50"]) for r in joined] == [("w1_s160_fp32", 0.6)]
    png = plot_pareto_panels(host + joined, tmp_path / "pareto.png", pareto.PANELS)
    assert png is not None and png.stat().st_size > 10_000
    assert plot_pareto_panels(host, tmp_path / "none.png", (("kpt_AP50", "kpt"),)) is None  # no such metric
    table = pareto.table(rows, {r.model: r.median_ms for r in host})
    assert "| 1 | 160 | fp32 | 3 | – | 0.600 |" in table  # the slower, more accurate point is on the box front
    assert table.splitlines()[-1].endswith("| box AP50 |")
