"""Sweeps over (model x threads x delegate) on one phone with the official TFLite benchmark tool.

Per device: read the facts, push the tool and every model once (sha256-checked on the device, skipped when
the same bytes are already there), then run each combination, parse it, and rewrite the results file after
every run. A device that disappears stops the sweep with :class:`DeviceLostError`; the finished runs are on
disk and ``--resume`` picks the same results file up (matched by a hash of the sweep plan) and runs only
what is missing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtnet.bench.host import model_precision
from mtnet.bench.report import accuracy_for, write_plots
from mtnet.bench.schema import BenchRecord, file_stamp, read_results, safe_name, sha256_file, write_results
from mtnet.errors import UserError
from mtnet.fileio import atomic_write

from .adb import Adb, AdbError, DeviceLostError
from .facts import device_facts, read_battery_temp
from .parse import BenchmarkOutput, parse_output

APK_PACKAGE = "org.tensorflow.lite.benchmark"
APK_ACTIVITY = f"{APK_PACKAGE}/.BenchmarkModelActivity"
DELEGATE_FLAGS = {"cpu": ["--use_xnnpack=false"], "xnnpack": ["--use_xnnpack=true"],
                  "gpu": ["--use_gpu=true"], "nnapi": ["--use_nnapi=true"]}


@dataclass
class SweepConfig:
    """Everything that defines a sweep (the CLI fills it)."""

    models: list[Path]
    threads: list[int]
    delegates: list[str]
    binary: Path | None = None
    apk: Path | None = None
    runs: int = 50
    warmup: int = 5
    cooldown_s: float = 5.0
    max_temp_c: float | None = None
    temp_timeout_s: float = 600.0
    taskset: str | None = None
    op_profiling: bool = False
    resume: bool = False
    out: Path = Path("bench_results")
    metric: str = "bbox_AP50"
    remote_dir: str = "/data/local/tmp/mtnet_bench"
    run_timeout_s: float = 900.0
    model_sha: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.binary is None) == (self.apk is None):
            raise UserError("give exactly one of --benchmark-binary (benchmark_model for android_aarch64) or --apk")
        for p in [*self.models, *([self.binary] if self.binary else []), *([self.apk] if self.apk else [])]:
            if not Path(p).is_file():
                raise UserError(f"{p}: file not found")
        bad = [d for d in self.delegates if d not in DELEGATE_FLAGS]
        if bad:
            raise UserError(f"unknown delegate(s) {bad}: choose from {', '.join(DELEGATE_FLAGS)}")
        if self.apk and self.taskset:
            raise UserError("--taskset needs --benchmark-binary (the APK runs inside an app process)")
        if self.runs < 1 or self.warmup < 1:
            raise UserError("--runs and --warmup must be >= 1")
        self.model_sha = {str(m): sha256_file(m) for m in self.models}

    @property
    def backend(self) -> str:
        return "benchmark_apk" if self.apk else "benchmark_model"

    def plan(self) -> list[tuple[Path, int, str]]:
        return [(m, t, d) for m in self.models for t in self.threads for d in self.delegates]

    def plan_id(self) -> str:
        """Identity of the sweep for ``--resume``: same models (bytes), settings and tool mode."""
        key = {"models": [self.model_sha[str(m)] for m in self.models], "threads": self.threads,
               "delegates": self.delegates, "runs": self.runs, "warmup": self.warmup, "taskset": self.taskset,
               "op_profiling": self.op_profiling, "backend": self.backend}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def remote_model(self, model: Path) -> str:
        """Remote name carries the hash: two exports named model_int8.tflite never collide."""
        return f"{self.remote_dir}/{self.model_sha[str(model)][:12]}_{model.name}"

    def tool_args(self, remote_model: str, threads: int, delegate: str) -> list[str]:
        args = [f"--graph={remote_model}", f"--num_threads={threads}", f"--num_runs={self.runs}",
                f"--warmup_runs={self.warmup}", "--min_secs=0", "--warmup_min_secs=0",
                "--report_peak_memory_footprint=true", *DELEGATE_FLAGS[delegate]]
        return args + (["--enable_op_profiling=true"] if self.op_profiling else [])


class DeviceSweep:
    """One device's sweep; ``run()`` returns the results JSON path."""

    def __init__(self, adb: Adb, cfg: SweepConfig, log=print):
        self.adb, self.cfg, self.log = adb, cfg, log
        self.remote_bin = f"{cfg.remote_dir}/benchmark_model"

    # -- preparation ---------------------------------------------------------------------------------
    def remote_sha(self, remote: str) -> str | None:
        r = self.adb.shell(f"sha256sum {shlex.quote(remote)} 2>/dev/null", check=False)
        return r.stdout.split()[0] if r.rc == 0 and r.stdout.strip() else None

    def push_once(self, local: Path, remote: str) -> None:
        """Push unless the device already holds the same bytes; verify the checksum after pushing."""
        sha = self.cfg.model_sha.get(str(local)) or sha256_file(local)
        if self.adb.dry_run:
            self.adb.push(str(local), remote)
            return
        if self.remote_sha(remote) == sha:
            self.log(f"  {local.name}: already on device, skipped")
            return
        self.adb.push(str(local), remote)
        got = self.remote_sha(remote)
        if got != sha:
            raise AdbError(f"{local} -> {self.adb.serial}:{remote}: checksum mismatch after push "
                           f"({got or 'no sha256sum on device'} != {sha})")
        self.log(f"  pushed {local.name} ({local.stat().st_size / 1e6:.2f} MB, sha256 verified)")

    def prepare(self) -> None:
        self.adb.shell(f"mkdir -p {shlex.quote(self.cfg.remote_dir)}")
        if self.cfg.binary:
            self.push_once(self.cfg.binary, self.remote_bin)
            self.adb.shell(f"chmod 755 {shlex.quote(self.remote_bin)}")
        else:
            installed = self.adb.shell(f"pm list packages {APK_PACKAGE}", check=False).stdout
            if f"package:{APK_PACKAGE}" not in installed:
                self.adb.install(str(self.cfg.apk))
        for m in self.cfg.models:
            self.push_once(m, self.cfg.remote_model(m))

    # -- one run -------------------------------------------------------------------------------------
    def run_binary(self, args: list[str]) -> tuple[int, str]:
        prefix = f"taskset {shlex.quote(self.cfg.taskset)} " if self.cfg.taskset else ""
        cmd = prefix + shlex.join([self.remote_bin, *args])
        r = self.adb.shell(cmd, check=False, timeout_s=self.cfg.run_timeout_s)
        return r.rc, r.output

    def run_apk(self, args: list[str]) -> tuple[int, str]:
        """Start BenchmarkModelActivity and read the ``tflite`` log lines until the summary (or an error)."""
        self.adb.shell("logcat -c", check=False)
        self.adb.shell(f"am start -S -W -n {APK_ACTIVITY} --es args {shlex.quote(' '.join(args))}")
        if self.adb.dry_run:
            self.adb.shell("logcat -d -v threadtime -s tflite:V tflite_BenchmarkModelActivity:V", check=False)
            return 0, ""
        deadline, last, stable = time.monotonic() + self.cfg.run_timeout_s, "", 0
        while time.monotonic() < deadline:
            text = self.adb.shell("logcat -d -v threadtime -s tflite:V tflite_BenchmarkModelActivity:V",
                                  check=False).stdout
            done = "Inference timings in us" in text
            stable = stable + 1 if text == last else 0
            if (done and stable >= 1) or (parse_output(text).errors and stable >= 2):
                return 0, text
            last = text
            time.sleep(0.5)
        return 124, last + f"\nERROR: no benchmark summary in logcat after {self.cfg.run_timeout_s:.0f} s"

    def wait_cool(self, first: bool) -> float | None:
        """Cooldown between runs, and wait for the battery to fall below --max-temp; returns the temp."""
        if not first and self.cfg.cooldown_s > 0:
            if self.adb.dry_run:
                print(f"sleep {self.cfg.cooldown_s:g}")
            else:
                time.sleep(self.cfg.cooldown_s)
        if self.adb.dry_run:
            return None
        temp = read_battery_temp(self.adb)
        deadline = time.monotonic() + self.cfg.temp_timeout_s
        while self.cfg.max_temp_c is not None and temp is not None and temp > self.cfg.max_temp_c:
            if time.monotonic() > deadline:
                self.log(f"  battery still {temp:.1f} C > {self.cfg.max_temp_c:g} C after "
                         f"{self.cfg.temp_timeout_s:.0f} s; running anyway")
                break
            self.log(f"  battery {temp:.1f} C > {self.cfg.max_temp_c:g} C, waiting")
            time.sleep(5)
            temp = read_battery_temp(self.adb)
        return temp

    def record(self, model: Path, threads: int, delegate: str, rc: int, text: str, facts: dict[str, Any],
               temp: float | None) -> tuple[BenchRecord, BenchmarkOutput]:
        out = parse_output(text)
        ok = rc == 0 and out.ok
        us = lambda v: None if v is None else v / 1000.0  # noqa: E731
        inf = out.inference
        error = None
        if not ok:
            last = next((ln for ln in reversed(text.strip().splitlines()) if ln.strip()), "no output")
            error = out.error or (f"exit {rc}: {last.strip()[:200]}" if rc else f"no timings in output: {last[:200]}")
        extra: dict[str, Any] = {"battery_temp_c_before": temp, "tool_args": self.cfg.tool_args(
            self.cfg.remote_model(model), threads, delegate), "exit_code": rc, "format": out.format,
            "delegate_notes": out.delegate_notes, "init_mem_mb": out.init_mem_mb, "taskset": self.cfg.taskset}
        acc = accuracy_for(model)
        if acc:
            extra["accuracy"] = acc
        rec = BenchRecord(
            model=model.name, model_path=str(model.resolve()), model_sha256=self.cfg.model_sha[str(model)],
            model_size_mb=model.stat().st_size / 1e6, precision=model_precision(model), backend=self.cfg.backend,
            device=facts, threads=threads, delegate=delegate,
            runs=inf.count if inf else (self.cfg.runs if ok else None),
            warmup_runs=out.warmup.count if out.warmup else (self.cfg.warmup if ok else None),
            init_ms=us(out.init_us), first_ms=us(out.first_us), warmup_avg_ms=us(out.warmup_avg_us),
            avg_ms=us(out.avg_us), median_ms=None, min_ms=us(inf.min) if inf else None,
            max_ms=us(inf.max) if inf else None, std_ms=us(inf.std) if inf else None,
            mem_footprint_mb=out.overall_mem_mb, peak_mem_mb=out.peak_mem_mb,
            status="ok" if ok else "error", error=error, extra=extra)
        return rec, out

    # -- the sweep -----------------------------------------------------------------------------------
    def find_resumable(self, out_dir: Path) -> tuple[str, list[BenchRecord]] | None:
        for path in sorted(out_dir.glob("*.json"), reverse=True):
            try:
                records, meta = read_results(path)
            except UserError:
                continue
            if meta.get("plan_id") == self.cfg.plan_id():
                return path.stem, records
        return None

    def write_ops(self, out_dir: Path, stem: str, rec: BenchRecord, out: BenchmarkOutput) -> None:
        if not out.ops:
            return
        path = out_dir / f"{stem}_ops" / f"{Path(rec.model).stem}_{rec.model_sha256[:8]}_t{rec.threads}_{rec.delegate}.csv"

        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["node_type", "first_ms", "avg_ms", "percent", "cdf_percent", "mem_kb",
                            "times_called", "name"])
                w.writerows([o.node_type, o.first_ms, o.avg_ms, o.percent, o.cdf_percent, o.mem_kb,
                             o.times_called, o.name] for o in out.ops)

        atomic_write(path, write)
        rec.extra["op_profile_csv"] = str(path.relative_to(out_dir))

    def run(self) -> Path | None:
        adb, cfg = self.adb, self.cfg
        serial = adb.serial or "SERIAL"
        facts = {"name": serial, "serial": serial} if adb.dry_run else device_facts(adb)
        if facts.get("probe_problems"):
            print(f"warning: {serial}: device facts incomplete ({'; '.join(facts['probe_problems'])}); "
                  "kept what was read, benchmarking anyway", file=sys.stderr)
        out_dir = cfg.out / safe_name(f"{facts.get('model') or facts['name']}_{serial}")
        stem, records = file_stamp(), []
        if cfg.resume and not adb.dry_run:
            found = self.find_resumable(out_dir)
            if found:
                stem, records = found
                self.log(f"{serial}: resuming {out_dir / stem}.json ({len(records)} runs done)")
            else:
                self.log(f"{serial}: nothing to resume in {out_dir}; starting a new sweep")
        done = {r.key for r in records}
        todo = [(m, t, d) for m, t, d in cfg.plan() if (cfg.model_sha[str(m)], t, d) not in done]
        self.log(f"{serial}: {facts.get('model') or ''} {facts.get('soc') or ''} - {len(todo)} of "
                 f"{len(cfg.plan())} runs to do")
        meta = {"tool": "android_bench", "plan_id": cfg.plan_id(), "serial": serial, "backend": cfg.backend,
                "threads": cfg.threads, "delegates": cfg.delegates, "runs": cfg.runs, "warmup": cfg.warmup,
                "taskset": cfg.taskset, "models": [str(m) for m in cfg.models], "complete": False}
        for i, (model, threads, delegate) in enumerate(todo):
            label = f"run {len(records) + 1}/{len(cfg.plan())} ({model.name}, threads={threads}, delegate={delegate})"
            try:
                if i == 0:
                    self.prepare()
                temp = self.wait_cool(first=i == 0)
                args = cfg.tool_args(cfg.remote_model(model), threads, delegate)
                rc, text = self.run_apk(args) if cfg.apk else self.run_binary(args)
                if not parse_output(text).ok and not adb.alive():  # a cut connection can look like exit 0
                    raise DeviceLostError(f"device {serial} stopped responding (exit {rc}, output "
                                          f"'{text.strip()[-120:]}')")
            except DeviceLostError as e:
                saved = f"{len(records)} finished runs saved to {out_dir / stem}.json" if records else "no run finished"
                raise DeviceLostError(f"{e} during {label}; {saved}; reconnect and rerun with --resume") from None
            if adb.dry_run:
                continue
            rec, out = self.record(model, threads, delegate, rc, text, facts, temp)
            self.write_ops(out_dir, stem, rec, out)
            records.append(rec)
            write_results(records, out_dir, stem, meta)
            self.log(f"  {label}: " + (f"avg {rec.avg_ms:.3f} ms" if rec.status == "ok" else f"error: {rec.error}"))
        if adb.dry_run:
            return None
        meta["complete"] = True
        json_path, _ = write_results(records, out_dir, stem, meta)
        write_plots(records, out_dir, stem, cfg.metric)
        return json_path


def resolve_devices(adb: Adb, serials: list[str], connect: list[str]) -> list[str]:
    """Serials to sweep: the ones given (or connected with --connect), else every device in state 'device'."""
    for address in connect:
        adb.connect(address)
    serials = serials or connect
    if adb.dry_run:
        return serials or ["SERIAL"]
    known = dict(adb.devices())
    if serials:
        missing = [s for s in serials if known.get(s) != "device"]
        if missing:
            states = ", ".join(f"{s} ({known.get(s, 'not attached')})" for s in missing)
            listed = ", ".join(f"{k} {v}" for k, v in known.items()) or "nothing"
            raise AdbError(f"device(s) {states} not ready; 'adb devices' lists: {listed}")
        return serials
    ready = [s for s, state in known.items() if state == "device"]
    if not ready:
        others = ", ".join(f"{s} ({st})" for s, st in known.items())
        raise AdbError("no device ready: plug in a phone with USB debugging on and accept the RSA prompt"
                       + (f"; adb sees {others}" if others else ""))
    return ready
