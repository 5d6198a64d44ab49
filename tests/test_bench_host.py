"""Host benchmark (``mtnet bench`` / ``benchmark_tflite``) with the real LiteRT interpreter, schema round trip, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mtnet.bench.host import BenchError, benchmark_tflite
from mtnet.bench.report import pareto_front
from mtnet.bench.schema import BenchRecord, ResultsError, infer_precision, read_results, write_results
from mtnet.cli import main as cli_main
from tests.test_android_e2e import tiny_tflite


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("host")
    path = tiny_tflite(d / "model_float32.tflite", 8)
    (d / "report.json").write_text(json.dumps({"artifacts": [
        {"file": "model_float32.tflite", "metrics": {"bbox_AP50": 0.5, "mIoU": 0.7}}]}))
    return path


def test_benchmark_tflite_record(model):
    r = benchmark_tflite(model, threads=2, runs=12, warmup=3)
    assert r.backend == "litert-host" and r.status == "ok" and r.delegate == "xnnpack"
    assert (r.threads, r.runs, r.warmup_runs, r.precision) == (2, 12, 3, "fp32")
    assert 0 < r.min_ms <= r.median_ms <= r.max_ms and r.min_ms <= r.avg_ms <= r.max_ms
    assert r.init_ms > 0 and r.first_ms > 0 and r.std_ms >= 0 and r.peak_mem_mb > 0
    assert r.device["litert"] == "2.3.0" and r.device["cpu_cores"] >= 1
    assert len(r.model_sha256) == 64 and r.timestamp.endswith("Z")
    cpu = benchmark_tflite(model, runs=3, warmup=1, use_xnnpack=False)
    assert cpu.delegate == "cpu"


def test_bad_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(BenchError, match="model file not found"):
        benchmark_tflite(tmp_path / "nope.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer")
    with pytest.raises(BenchError, match="junk.tflite: LiteRT cannot load"):
        benchmark_tflite(junk)


def test_results_round_trip_and_csv(model, tmp_path):
    r = benchmark_tflite(model, runs=3, warmup=1)
    json_path, csv_path = write_results([r], tmp_path, "s", {"k": 1})
    back, meta = read_results(json_path)
    assert back == [r] and meta == {"k": 1}
    [row] = list(csv.DictReader(csv_path.open()))
    assert float(row["avg_ms"]) == r.avg_ms and row["device_hostname"] == r.device["hostname"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema_version": 1, "records": [{**r.to_dict(), "latency": 1}]}))
    with pytest.raises(ResultsError, match="unknown result field"):
        read_results(bad)
    with pytest.raises(ResultsError, match="not found"):
        read_results(tmp_path / "missing.json")
    assert BenchRecord.from_dict(r.to_dict()).latency_ms == r.median_ms


@pytest.mark.parametrize("name, dtypes, expected", [
    ("model_float32.tflite", None, "fp32"), ("model_float16.tflite", None, "fp16"),
    ("model_int8.tflite", None, "int8"), ("model_full_integer_quant.tflite", None, "int8"),
    ("model_dynamic_range_quant.tflite", None, "dynamic"), ("m.tflite", ["float32", "int8"], "dynamic"),
    ("m.tflite", ["float32", "int32", "int8"], "int8"), ("m.tflite", ["float16", "float32"], "fp16"),
    ("m.tflite", None, "unknown"),
])
def test_precision_from_name_or_dtypes(name, dtypes, expected):
    assert infer_precision(name, dtypes) == expected


def test_pareto_front():
    assert pareto_front([(10, 0.5), (5, 0.4), (7, 0.6), (12, 0.55)]) == [(5, 0.4), (7, 0.6)]


def test_mtnet_bench_cli_writes_results_plots_and_table(model, tmp_path, capsys):
    assert cli_main(["bench", str(model), "--threads", "1,2", "--runs", "5", "--warmup", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "model_float32.tflite" in out and "median ms" in out
    [json_path] = tmp_path.glob("host-*/*.json")
    records, meta = read_results(json_path)
    assert [r.threads for r in records] == [1, 2] and meta["complete"]
    assert records[0].extra["accuracy"] == {"bbox_AP50": 0.5, "mIoU": 0.7}
    assert json_path.with_name(json_path.stem + "_latency.png").stat().st_size > 5000
    assert json_path.with_name(json_path.stem + "_pareto.png").stat().st_size > 5000
    assert cli_main(["bench", str(tmp_path / "x.tflite")]) == 2
    assert "x.tflite: model file not found" in capsys.readouterr().err
