"""android_bench end to end through the real adb client/server against the device stand-in.

A fresh adb server on its own port per test session (killed at teardown); the stand-in listens on
127.0.0.1 and is started/stopped per test. Needs the ``adb`` binary (Debian package ``adb``).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mtnet.bench.schema import read_results
from mtnet.cli import main as cli_main

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.skipif(shutil.which("adb") is None, reason="needs the adb binary (apt-get install adb)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_tflite(path: Path, channels: int, fp16: bool = False) -> Path:
    """A 2-layer conv model converted with TensorFlow (no dependency on the export code)."""
    import tensorflow as tf

    w1 = tf.random.stateless_normal([3, 3, 3, channels], seed=[1, channels])
    w2 = tf.random.stateless_normal([3, 3, channels, channels], seed=[2, channels])

    @tf.function(input_signature=[tf.TensorSpec([1, 64, 64, 3], tf.float32)])
    def f(x):
        return tf.nn.conv2d(tf.nn.relu6(tf.nn.conv2d(x, w1, 2, "SAME")), w2, 1, "SAME")

    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    if fp16:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    path.write_bytes(conv.convert())
    return path


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("models")
    (root / "a").mkdir()
    (root / "b").mkdir()
    a = tiny_tflite(root / "a" / "model_float32.tflite", 8)
    b = tiny_tflite(root / "b" / "model_float16.tflite", 16, fp16=True)
    (root / "a" / "report.json").write_text(json.dumps({"artifacts": [
        {"file": "model_float32.tflite", "format": "tflite", "precision": "fp32", "metrics": {"bbox_AP50": 0.61}}]}))
    return [a, b]


@pytest.fixture(scope="session")
def benchmark_binary(tmp_path_factory) -> Path:
    """The file the user would pass as --benchmark-binary; on the stand-in it runs the LiteRT tool."""
    path = tmp_path_factory.mktemp("tool") / "benchmark_model"
    path.write_text(f"#!/bin/sh\nexec {sys.executable} {HERE / 'adb_standin.py'} benchmark_model \"$@\"\n")
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def adb_port():
    """A private adb server for this session, killed at teardown."""
    port = free_port()
    subprocess.run(["adb", "-P", str(port), "start-server"], check=True, capture_output=True, timeout=60)
    yield port
    subprocess.run(["adb", "-P", str(port), "kill-server"], capture_output=True, timeout=60)


class Standin:
    def __init__(self, sandbox: Path, port: int, stop_at_run: int | None = None, drop_tools: tuple[str, ...] = ()):
        self.sandbox, self.port = sandbox, port
        cmd = [sys.executable, str(HERE / "adb_standin.py"), "serve", "--port", str(port), "--sandbox", str(sandbox)]
        cmd += ["--stop-at-run", str(stop_at_run)] if stop_at_run else []
        self.proc = subprocess.Popen(cmd + [f"--drop-tool={t}" for t in drop_tools], stdout=subprocess.PIPE, text=True)
        assert "listening" in self.proc.stdout.readline()

    def reported(self) -> list[dict]:
        path = self.sandbox / "reported.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


@pytest.fixture
def standin(tmp_path):
    started: list[Standin] = []

    def start(port: int | None = None, stop_at_run: int | None = None, sandbox: Path | None = None,
              drop_tools: tuple[str, ...] = ()) -> Standin:
        s = Standin(sandbox or tmp_path / "device", port or free_port(), stop_at_run, drop_tools)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def bench_android(capsys):
    """``mtnet bench-android ...`` in-process (the CLI's own entry point; saves a Python start per call)."""
    def call(adb_port: int, *args: str) -> Result:
        capsys.readouterr()
        rc = cli_main(["bench-android", "--adb-port", str(adb_port), "--cooldown", "0", "--runs", "8",
                       "--warmup", "2", *args])
        out, err = capsys.readouterr()
        return Result(rc, out, err)
    return call


def test_sweep_through_real_adb_matches_what_the_device_reported(models, benchmark_binary, adb_port, standin, tmp_path, bench_android):
    dev = standin()
    out = tmp_path / "results"
    p = bench_android(adb_port, *map(str, models), "--benchmark-binary", str(benchmark_binary),
                      "--threads", "1,2", "--delegates", "cpu,xnnpack", "--connect", f"127.0.0.1:{dev.port}",
                      "--out", str(out), "--op-profiling")
    assert p.returncode == 0, p.stderr
    [json_path] = out.glob("*/*.json")
    assert json_path.parent.name == f"Pixel_7_127.0.0.1_{dev.port}"
    records, meta = read_results(json_path)
    assert meta["complete"] and len(records) == 8
    assert {(r.model, r.threads, r.delegate) for r in records} == {
        (m.name, t, d) for m in models for t in (1, 2) for d in ("cpu", "xnnpack")}
    reported = dev.reported()
    assert len(reported) == 8  # every combination ran exactly once on the device
    for r, rep in zip(records, reported, strict=True):  # runs happen in plan order
        assert rep["graph"].endswith(r.model) and rep["threads"] == r.threads
        assert rep["xnnpack"] == (r.delegate == "xnnpack")
        assert r.status == "ok" and r.backend == "benchmark_model" and r.runs == rep["count"] == 8
        assert r.avg_ms == pytest.approx(rep["avg_us"] / 1000, rel=1e-5)  # 6 significant digits printed
        assert r.init_ms == pytest.approx(rep["init_us"] / 1000)
        assert r.first_ms == pytest.approx(rep["first_us"] / 1000)
        assert (r.min_ms, r.max_ms) == (rep["min_us"] / 1000, rep["max_us"] / 1000)
        assert r.peak_mem_mb == pytest.approx(31.25) and r.mem_footprint_mb == pytest.approx(2.5)
        assert (json_path.parent / r.extra["op_profile_csv"]).read_text().startswith("node_type,")
    dev_facts = records[0].device
    assert dev_facts["model"] == "Pixel 7" and dev_facts["soc"] == "GS201" and dev_facts["abi"] == "arm64-v8a"
    assert dev_facts["sdk"] == 34 and dev_facts["cpu_cores"] == 8 and dev_facts["governor"] == "schedutil"
    assert dev_facts["cpu_max_freq_mhz"] == [1803] * 4 + [2348] * 2 + [2850] * 2
    assert dev_facts["battery_temp_c"] == pytest.approx(31.2)
    assert {r.precision for r in records} == {"fp32", "fp16"}
    assert records[0].extra["accuracy"] == {"bbox_AP50": 0.61}
    csv_text = json_path.with_suffix(".csv").read_text()
    assert csv_text.count("\n") == 9 and f"{records[3].avg_ms}" in csv_text
    stem = json_path.stem
    assert (json_path.parent / f"{stem}_latency.png").stat().st_size > 5000
    assert (json_path.parent / f"{stem}_pareto.png").stat().st_size > 5000  # model a has accuracy

    # second sweep: tool and models are already on the device -> not pushed again
    p2 = bench_android(adb_port, str(models[0]), "--benchmark-binary", str(benchmark_binary),
                       "--serial", f"127.0.0.1:{dev.port}", "--delegates", "gpu", "--out", str(out))
    assert p2.returncode == 1  # the device could not apply the GPU delegate: an error row, not a crash
    assert "already on device, skipped" in p2.stdout and "pushed" not in p2.stdout
    gpu_json = max(out.glob("*/*.json"))
    [gpu] = read_results(gpu_json)[0]
    assert gpu.status == "error" and gpu.error == "Failed to apply GPU delegate." and gpu.avg_ms is None


def test_device_lost_mid_sweep_saves_runs_and_resume_finishes(models, benchmark_binary, adb_port, standin, tmp_path, bench_android):
    port = free_port()
    dev = standin(port=port, stop_at_run=4)  # vanishes when the 4th benchmark starts
    out = tmp_path / "results"
    args = [*map(str, models), "--benchmark-binary", str(benchmark_binary), "--threads", "1,2",
            "--delegates", "cpu,xnnpack", "--out", str(out)]
    p = bench_android(adb_port, *args, "--connect", f"127.0.0.1:{port}")
    assert p.returncode == 2
    err_lines = p.stderr.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("mtnet: error: device 127.0.0.1:")
    assert "run 4/8" in err_lines[0] and "3 finished runs saved" in err_lines[0] and "--resume" in err_lines[0]
    [json_path] = out.glob("*/*.json")
    done, meta = read_results(json_path)
    assert len(done) == 3 and not meta["complete"]
    dev.stop()

    dev2 = standin(port=port, sandbox=dev.sandbox)  # phone plugged back in
    p = bench_android(adb_port, *args, "--connect", f"127.0.0.1:{port}", "--resume")
    assert p.returncode == 0, p.stderr
    assert "resuming" in p.stdout
    records, meta = read_results(json_path)  # same results file, completed
    assert meta["complete"] and len(records) == 8
    assert [r.to_dict() for r in records[:3]] == [r.to_dict() for r in done]
    assert len({r.key for r in records}) == 8
    assert len(dev2.reported()) == 3 + 5  # resumed runs only; nothing ran twice


@pytest.mark.parametrize("dropped", [("getprop",), ("getprop", "dumpsys")])
def test_device_without_getprop_is_still_benchmarked(models, benchmark_binary, adb_port, standin, tmp_path,
                                                     bench_android, dropped):
    dev = standin(drop_tools=dropped)  # with dumpsys gone too, the probe itself exits non-zero
    out = tmp_path / "results"
    p = bench_android(adb_port, str(models[0]), "--benchmark-binary", str(benchmark_binary), "--delegates", "xnnpack",
                      "--connect", f"127.0.0.1:{dev.port}", "--out", str(out))
    assert p.returncode == 0, p.stderr
    warning = next(line for line in p.stderr.splitlines() if "device facts incomplete" in line)
    assert "no system properties (getprop)" in warning and "benchmarking anyway" in warning
    assert ("dumpsys" in warning) == ("dumpsys" in dropped)
    [r] = read_results(next(out.glob("*/*.json")))[0]
    [rep] = dev.reported()
    assert r.status == "ok" and r.avg_ms == pytest.approx(rep["avg_us"] / 1000, rel=1e-5)
    facts = r.device
    assert facts["name"] == f"127.0.0.1:{dev.port}" and facts["model"] is None and facts["soc"] is None
    assert facts["cpu_max_freq_mhz"] == [1803] * 4 + [2348] * 2 + [2850] * 2 and facts["governor"] == "schedutil"
    assert facts["battery_temp_c"] == (None if "dumpsys" in dropped else pytest.approx(31.2))
    assert facts["probe_problems"] and "getprop" in facts["probe_problems"][0]


def test_apk_mode_reads_results_from_logcat(models, adb_port, standin, tmp_path, bench_android):
    dev = standin()
    apk = tmp_path / "benchmark_model.apk"
    apk.write_bytes(b"PK\x03\x04 stand-in apk")
    out = tmp_path / "results"
    p = bench_android(adb_port, str(models[0]), "--apk", str(apk), "--delegates", "xnnpack",
                      "--connect", f"127.0.0.1:{dev.port}", "--out", str(out))
    assert p.returncode == 0, p.stderr
    [r] = read_results(next(out.glob("*/*.json")))[0]
    [rep] = dev.reported()
    assert rep["apk"] and r.backend == "benchmark_apk" and r.avg_ms == pytest.approx(rep["avg_us"] / 1000, rel=1e-5)


def test_dry_run_prints_commands_and_touches_nothing(models, benchmark_binary, tmp_path):
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "mtnet.android_bench", str(models[0]), "--benchmark-binary",
                        str(benchmark_binary), "--serial", "R58M123", "--threads", "4", "--delegates", "gpu",
                        "--taskset", "f0", "--dry-run", "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=120, cwd=HERE.parent)
    assert p.returncode == 0, p.stderr
    assert "-s R58M123 push" in p.stdout
    assert "shell 'taskset f0 /data/local/tmp/mtnet_bench/benchmark_model --graph=" in p.stdout
    assert "--num_threads=4" in p.stdout and "--use_gpu=true" in p.stdout
    assert not (tmp_path / "r").exists() and time.monotonic() - start < 60
