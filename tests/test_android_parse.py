"""benchmark_model / APK output parsing on verbatim outputs of the real tool (tests/fixtures/benchmark_model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mtnet.android_bench.adb import getprop
from mtnet.android_bench.facts import parse_facts
from mtnet.android_bench.parse import parse_output, parse_stat

FIX = Path(__file__).resolve().parent / "fixtures" / "benchmark_model"


def load(name: str) -> str:
    return (FIX / name).read_text()


def test_current_format_timings_stats_and_memory():
    r = parse_output(load("current_xnnpack_x86.txt"))
    assert r.ok and r.format == "current"
    assert (r.init_us, r.first_us, r.warmup_avg_us, r.avg_us) == (52687, 19105, 14452.5, 14290.9)
    assert (r.warmup.count, r.warmup.avg, r.warmup.first) == (35, 14452.5, 19105)
    inf = r.inference
    assert (inf.count, inf.first, inf.curr, inf.min, inf.max, inf.avg, inf.std) == (70, 14941, 14066, 13728, 16145, 14290.9, 452)
    assert (r.init_mem_mb, r.overall_mem_mb, r.peak_mem_mb, r.model_size_mb) == (21.9492, 34.5234, None, 4.56118)
    assert r.error is None and r.ops == []


def test_gpu_run_with_peak_memory_and_no_running_lines():
    r = parse_output(load("current_gpu_peak_memory.txt"))
    assert r.avg_us == 35134.9 and r.peak_mem_mb == 74.6641
    assert (r.warmup.count, r.inference.count, r.inference.std) == (13, 1694, 1733)
    assert any("completely executed by the delegate" in n for n in r.delegate_notes)


def test_delegate_that_fails_to_apply_is_the_error():
    r = parse_output(load("error_gpu_delegate.txt"))
    assert not r.ok and r.error == "Failed to apply GPU delegate."
    assert "Benchmarking failed." in r.errors


def test_legacy_summary_and_tab_separated_op_table_with_start_column():
    r = parse_output(load("legacy_op_profiling.txt"))
    assert r.format == "legacy" and (r.warmup_avg_us, r.init_us, r.avg_us, r.first_us) == (83235, 38467, 79760.9, None)
    assert r.inference is None  # only the profiler's 'Timings (microseconds)' line, not a run stat line
    assert [o.node_type for o in r.ops] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "RESHAPE", "SOFTMAX"]
    first = r.ops[0]
    assert (first.first_ms, first.avg_ms, first.percent, first.cdf_percent, first.times_called) == (4.269, 4.269, 0.107, 0.107, 0)
    assert first.name == "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]"


def test_current_op_table_regular_runs_only_names_with_spaces():
    r = parse_output(load("current_op_profiling.txt"))
    assert r.avg_us == 15517.6
    assert len(r.ops) == 4  # the initialization table (ModifyGraphWithDelegate...) is skipped
    assert r.ops[1].node_type == "Convolution (NHWC, QC8) IGEMM"
    assert r.ops[1].name == "Delegate/Convolution (NHWC, QC8) IGEMM:0"
    assert r.ops[2].times_called == 13 and r.ops[2].avg_ms == 0.051
    assert r.ops[3].name.endswith("StatefulPartitionedCall:0]:266")


def test_apk_logcat_prefixes_are_stripped():
    cut = parse_output(load("apk_logcat.txt"))
    assert not cut.ok and cut.warmup is None and cut.errors == []  # summary not printed yet
    done = parse_output(load("apk_logcat_readme.txt"))
    assert (done.init_us, done.first_us, done.warmup_avg_us, done.avg_us) == (1007529, 4098, 1686.59, 1687.92)
    logcat_err = parse_output("01-11 23:29:03.662  7651  7651 E tflite  : Failed to apply NNAPI delegate.\n")
    assert logcat_err.error == "Failed to apply NNAPI delegate."


@pytest.mark.parametrize("line, expected", [
    ("count=1 curr=1381510", (1, 1381510, 1381510, 1381510)),
    ("count=5 curr=7(all same)", (5, 7, 7, 7)),
    ("curr=81350 count=50 min=77385 max=88213 avg=79732 std=1929", (50, 79732, 77385, 88213)),  # pre-2020 order
    ("count=3 first=2 curr=1 min=1 max=2 avg=1.38151e+06 std=0", (3, 1381510, 1, 2)),
])
def test_stat_line_variants(line, expected):
    s = parse_stat(line)
    assert (s.count, s.avg, s.min, s.max) == pytest.approx(expected)


def test_device_facts_from_getprop_sysfs_and_battery():
    text = (load("device_getprop.txt") + "@@cpus\ncpu0 1803000\ncpu1 1803000\ncpu6 2850000\ncpu7\n"
            "@@governor\nschedutil\n@@battery\n  level: 87\n  temperature: 395\n")
    f = parse_facts(text, "28011FDH2000AB")
    assert (f["name"], f["soc"], f["board"], f["abi"], f["android"], f["sdk"]) == (
        "Pixel 7", "GS201", "gs201", "arm64-v8a", "14", 34)
    assert f["cpu_cores"] == 4 and f["cpu_max_freq_mhz"] == [1803, 1803, 2850, None]
    assert f["governor"] == "schedutil" and f["battery_temp_c"] == 39.5
    assert getprop("[a.b]: []\n[x]: [y z]\n") == {"a.b": "", "x": "y z"}
