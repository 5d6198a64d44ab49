"""A phone for tests: speaks the device side of the adb wire protocol on 127.0.0.1.

``python tests/adb_standin.py serve --port P --sandbox DIR`` listens like ``adbd`` in TCP mode, so the
real adb client/server adopt it with ``adb connect 127.0.0.1:P``. It answers CNXN (no auth), ``shell:``
and ``shell,v2:`` (exit code, separate stderr) by running the command with ``/bin/sh`` inside the
sandbox (device paths ``/data/local/tmp`` and ``/sys/devices/system/cpu`` are mapped into it), and the
sync service (STAT/SEND/RECV/LIST). ``getprop``/``dumpsys``/``am``/``pm``/``logcat`` come from small
scripts; ``getprop`` reads ``tests/fixtures/benchmark_model/device_getprop.txt``.

``python tests/adb_standin.py benchmark_model --graph=...`` is the device's TFLite benchmark tool: it
runs the model with LiteRT on the host and prints the real tool's output format (stats lines, timings,
memory, op-profiling table, ``ERROR:`` lines for a delegate that cannot be applied). Every run appends
what it reported to ``<sandbox>/reported.jsonl`` so tests can compare the parsed results with it.

``--stop-at-run N`` makes the stand-in vanish (sockets closed, process exits) when the N-th
``benchmark_model`` command arrives: the unplugged phone of the fault test. ``--drop-tool NAME``
(repeatable) leaves that tool script out, so the device's shell answers ``NAME: not found`` (exit 127)
like a phone with a restricted or stripped-down shell.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GETPROP_FIXTURE = HERE / "fixtures" / "benchmark_model" / "device_getprop.txt"
CPU_MAX_FREQS_KHZ = [1803000] * 4 + [2348000] * 2 + [2850000] * 2  # Tensor G2 clusters, like the fixture
A_CNXN, A_OPEN, A_OKAY, A_CLSE, A_WRTE = 0x4E584E43, 0x4E45504F, 0x59414B4F, 0x45534C43, 0x45545257
A_VERSION, MAX_PAYLOAD, CHUNK = 0x01000001, 256 * 1024, 64 * 1024
DEVICE_PATHS = ("/data/local/tmp", "/sys/devices/system/cpu")
IO_TIMEOUT_S, COMMAND_TIMEOUT_S = 30.0, 300.0


# ----------------------------------------------------------------------------------------- the server
class Stream:
    def __init__(self, conn: Conn, local: int, remote: int):
        self.conn, self.local, self.remote = conn, local, remote
        self.acked = threading.Event()
        self.inbox: list[bytes] = []
        self.cond = threading.Condition()
        self.closed = False

    def write(self, data: bytes) -> None:
        for i in range(0, len(data), CHUNK):
            self.acked.clear()
            self.conn.send(A_WRTE, self.local, self.remote, data[i:i + CHUNK])
            if not self.acked.wait(IO_TIMEOUT_S) or self.conn.server.stopping.is_set():
                raise ConnectionError("no OKAY from the adb server")

    def read_exact(self, n: int) -> bytes:
        buf = b""
        deadline = time.monotonic() + IO_TIMEOUT_S
        with self.cond:
            while len(b"".join(self.inbox)) < n:
                if self.closed or time.monotonic() > deadline or self.conn.server.stopping.is_set():
                    raise ConnectionError("sync stream closed")
                self.cond.wait(0.2)
            buf = b"".join(self.inbox)
            self.inbox = [buf[n:]] if len(buf) > n else []
        return buf[:n]

    def close(self) -> None:
        self.conn.send(A_CLSE, self.local, self.remote, b"")


class Conn:
    def __init__(self, server: Server, sock: socket.socket):
        self.server, self.sock = server, sock
        self.lock = threading.Lock()
        self.streams: dict[int, Stream] = {}
        self.next_id = 1

    def send(self, cmd: int, a0: int, a1: int, data: bytes) -> None:
        header = struct.pack("<6I", cmd, a0, a1, len(data), sum(data) & 0xFFFFFFFF, cmd ^ 0xFFFFFFFF)
        with self.lock:
            self.sock.sendall(header + data)

    def recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            if self.server.stopping.is_set():
                raise ConnectionError("stopping")
            try:
                part = self.sock.recv(n - len(buf))
            except TimeoutError:
                continue
            if not part:
                raise ConnectionError("peer closed")
            buf += part
        return buf

    def serve(self) -> None:
        try:
            with contextlib.suppress(ConnectionError, OSError):  # the client hung up: end this connection
                while not self.server.stopping.is_set():
                    cmd, a0, a1, length, _, _ = struct.unpack("<6I", self.recv_exact(24))
                    data = self.recv_exact(length) if length else b""
                    self.dispatch(cmd, a0, a1, data)
        finally:
            self.sock.close()

    def dispatch(self, cmd: int, a0: int, a1: int, data: bytes) -> None:
        if cmd == A_CNXN:
            props = "ro.product.name=panther;ro.product.model=Pixel 7;ro.product.device=panther;"
            self.send(A_CNXN, A_VERSION, MAX_PAYLOAD, f"device::{props}features=shell_v2".encode())
        elif cmd == A_OPEN:
            service = data.rstrip(b"\0").decode()
            local, self.next_id = self.next_id, self.next_id + 1
            stream = self.streams[local] = Stream(self, local, a0)
            if service.startswith("shell"):
                options, _, command = service.partition(":")
                target, args = self.server.run_shell, (stream, command, "v2" in options.split(","))
            elif service == "sync:":
                target, args = self.server.run_sync, (stream,)
            else:
                self.send(A_CLSE, 0, a0, b"")
                return
            self.send(A_OKAY, local, a0, b"")
            threading.Thread(target=self.server.guard, args=(target, *args), daemon=True).start()
        elif cmd == A_OKAY and a1 in self.streams:
            self.streams[a1].acked.set()
        elif cmd == A_WRTE and a1 in self.streams:
            stream = self.streams[a1]
            with stream.cond:
                stream.inbox.append(data)
                stream.cond.notify_all()
            self.send(A_OKAY, a1, a0, b"")
        elif cmd == A_CLSE and a1 in self.streams:
            stream = self.streams.pop(a1)
            with stream.cond:
                stream.closed = True
                stream.cond.notify_all()


class Server:
    def __init__(self, port: int, sandbox: Path, stop_at_run: int | None = None, drop_tools: tuple[str, ...] = ()):
        self.sandbox, self.stop_at_run, self.bench_runs = sandbox.resolve(), stop_at_run, 0
        self.stopping = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.2)
        self.conns: list[Conn] = []
        make_device_tree(self.sandbox, drop_tools)

    def to_host(self, text: str) -> str:
        for p in DEVICE_PATHS:
            text = text.replace(p, f"{self.sandbox}{p}")
        return text

    def to_device(self, text: str) -> str:
        return text.replace(str(self.sandbox), "")

    def guard(self, target, *args) -> None:
        with contextlib.suppress(ConnectionError, OSError):  # the client hung up: nothing to answer
            target(*args)

    def run_shell(self, stream: Stream, command: str, v2: bool) -> None:
        if "--graph=" in command:  # a benchmark run (binary or APK), not a push/chmod of the tool
            self.bench_runs += 1
            if self.stop_at_run is not None and self.bench_runs >= self.stop_at_run:
                self.stop()
                return
        env = {"PATH": f"{self.sandbox}/bin:/usr/bin:/bin", "STANDIN_SANDBOX": str(self.sandbox),
               "HOME": str(self.sandbox), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
        try:
            p = subprocess.run(["/bin/sh", "-c", self.to_host(command)], cwd=self.sandbox, env=env,
                               capture_output=True, timeout=COMMAND_TIMEOUT_S)
            out, err, rc = p.stdout, p.stderr, p.returncode
        except subprocess.TimeoutExpired:
            out, err, rc = b"", b"standin: command timed out\n", 124
        out, err = (self.to_device(x.decode(errors="replace")).encode() for x in (out, err))
        if v2:
            packets = b"".join(struct.pack("<BI", kind, len(x)) + x for kind, x in ((1, out), (2, err)) if x)
            stream.write(packets + struct.pack("<BIB", 3, 1, rc & 0xFF))
        elif out + err:
            stream.write(out + err)
        stream.close()

    def run_sync(self, stream: Stream) -> None:
        while True:
            rid, n = struct.unpack("<4sI", stream.read_exact(8))
            if rid == b"QUIT":
                stream.close()
                return
            path = Path(self.to_host(stream.read_exact(n).decode()))
            if rid == b"STAT":
                st = path.stat() if path.exists() else None
                stream.write(b"STAT" + struct.pack("<3I", st.st_mode, st.st_size, int(st.st_mtime)) if st
                             else b"STAT" + bytes(12))
            elif rid == b"LIST":
                for child in sorted(path.iterdir()) if path.is_dir() else []:
                    st, name = child.stat(), child.name.encode()
                    stream.write(b"DENT" + struct.pack("<4I", st.st_mode, st.st_size, int(st.st_mtime), len(name)) + name)
                stream.write(b"DONE" + bytes(16))
            elif rid == b"SEND":
                target, _, mode = str(path).rpartition(",")
                chunks = []
                while True:
                    kind, size = struct.unpack("<4sI", stream.read_exact(8))
                    if kind == b"DONE":
                        break
                    chunks.append(stream.read_exact(size))
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                Path(target).write_bytes(b"".join(chunks))
                os.chmod(target, int(mode) & 0o777)
                stream.write(b"OKAY" + bytes(4))
            elif rid == b"RECV":
                if not path.is_file():
                    msg = b"No such file or directory"
                    stream.write(b"FAIL" + struct.pack("<I", len(msg)) + msg)
                    continue
                data = path.read_bytes()
                for i in range(0, len(data), CHUNK):
                    stream.write(b"DATA" + struct.pack("<I", len(data[i:i + CHUNK])) + data[i:i + CHUNK])
                stream.write(b"DONE" + bytes(4))
            else:
                msg = f"unknown sync request {rid!r}".encode()
                stream.write(b"FAIL" + struct.pack("<I", len(msg)) + msg)

    def serve_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            sock.settimeout(0.2)
            conn = Conn(self, sock)
            self.conns.append(conn)
            threading.Thread(target=conn.serve, daemon=True).start()
        self.listener.close()

    def stop(self) -> None:
        """Vanish like an unplugged phone: stop accepting and drop every connection."""
        self.stopping.set()
        for c in self.conns:
            with contextlib.suppress(OSError):  # already closed by the client
                c.sock.shutdown(socket.SHUT_RDWR)


def make_device_tree(sandbox: Path, drop_tools: tuple[str, ...] = ()) -> None:
    """The device's folders, sysfs CPU facts, battery and the tool scripts (minus ``drop_tools``)."""
    (sandbox / "data/local/tmp").mkdir(parents=True, exist_ok=True)
    cpu = sandbox / "sys/devices/system/cpu"
    for i, khz in enumerate(CPU_MAX_FREQS_KHZ):
        (cpu / f"cpu{i}/cpufreq").mkdir(parents=True, exist_ok=True)
        (cpu / f"cpu{i}/cpufreq/cpuinfo_max_freq").write_text(f"{khz}\n")
        (cpu / f"cpu{i}/cpufreq/scaling_governor").write_text("schedutil\n")
    (cpu / "possible").write_text(f"0-{len(CPU_MAX_FREQS_KHZ) - 1}\n")
    if not (sandbox / "battery_temp").exists():
        (sandbox / "battery_temp").write_text("312\n")
    bin_dir = sandbox / "bin"
    bin_dir.mkdir(exist_ok=True)
    me = f"{shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).resolve()))}"
    scripts = {
        "getprop": f'if [ $# -eq 0 ]; then cat {shlex.quote(str(GETPROP_FIXTURE))}; '
                   f'else sed -n "s/^\\[$1\\]: \\[\\(.*\\)\\]$/\\1/p" {shlex.quote(str(GETPROP_FIXTURE))}; fi',
        "dumpsys": f'[ "$1" = battery ] && printf "Current Battery Service state:\\n  AC powered: false\\n'
                   f'  USB powered: true\\n  level: 87\\n  temperature: %s\\n" "$(cat {sandbox}/battery_temp)"',
        "am": f'exec {me} am "$@"',
        "pm": f'exec {me} pm "$@"',
        "logcat": f'[ "$1" = -c ] && : > {sandbox}/logcat.txt || cat {sandbox}/logcat.txt 2>/dev/null',
    }
    for name, body in scripts.items():
        if name in drop_tools:
            (bin_dir / name).unlink(missing_ok=True)
            continue
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)


# ------------------------------------------------------------------------------ the benchmark tool
class Log:
    """TFLITE_LOG: ``INFO:``/``WARN:`` to stdout, ``ERROR:`` to stderr; or logcat lines for the APK."""

    def __init__(self, logcat: Path | None):
        self.logcat = logcat

    def __call__(self, level: str, msg: str) -> None:
        if self.logcat is None:
            print(f"{level}: {msg}", file=sys.stderr if level in ("ERROR", "FATAL") else sys.stdout, flush=True)
            return
        stamp = time.strftime("%m-%d %H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
        with open(self.logcat, "a") as f:
            for line in msg.split("\n"):
                f.write(f"{stamp}  {os.getpid():5d}  {os.getpid():5d} {level[0]} tflite  : {line}\n")


def stat_line(v: list[int]) -> str:
    """tensorflow::Stat<int64_t>::OutputToStream."""
    if not v:
        return "count=0"
    if min(v) == max(v):
        return f"count={len(v)} curr={v[-1]}" + ("(all same)" if len(v) > 1 else "")
    avg = sum(v) / len(v)
    std = int(math.sqrt(max(sum(x * x for x in v) / len(v) - avg * avg, 0.0)))
    return f"count={len(v)} first={v[0]} curr={v[-1]} min={min(v)} max={max(v)} avg={avg:g} std={std}"


def op_table(ops: list[dict], avg_us: float) -> str:
    """The 'Run Order' part of the op profile (StatsCalculator format), time split evenly over ops."""
    def field(w: int, v) -> str:
        return "\t" + (f"{v:.3f}" if isinstance(v, float) else str(v)).rjust(w)

    lines = ["============================== Run Order ==============================",
             field(24, "[node type]") + field(9, "[first]") + field(9, "[avg ms]") + field(8, "[%]")
             + field(8, "[cdf%]") + field(10, "[mem KB]") + field(9, "[times called]") + "\t[Name]"]
    share, cdf = 100.0 / max(len(ops), 1), 0.0
    for op in ops:
        cdf += share
        ms = avg_us / 1000.0 / max(len(ops), 1)
        lines.append(field(24, op["op_name"]) + field(9, ms) + field(9, ms) + field(7, share) + "%"
                     + field(7, cdf) + "%" + field(10, 0.0) + field(9, 1) + f"\t[{op['op_name'].lower()}]:{op['index']}")
    return "\n".join(lines) + "\n"


def benchmark_model(argv: list[str], logcat: Path | None = None) -> int:
    flags = dict(a[2:].partition("=")[::2] for a in argv if a.startswith("--"))
    log = Log(logcat)
    on = lambda k: flags.get(k, "false").lower() in ("1", "true")  # noqa: E731
    graph, threads = flags.get("graph", ""), int(flags.get("num_threads", "-1"))
    runs, warmups = int(flags.get("num_runs", "50")), int(flags.get("warmup_runs", "1"))
    if logcat is None:
        log("INFO", "STARTING!")
    log("INFO", "Log parameter values verbosely: [0]")
    log("INFO", f"Min num runs: [{runs}]")
    log("INFO", f"Num threads: [{threads}]")
    log("INFO", f"Min warmup runs: [{warmups}]")
    log("INFO", f"Graph: [{graph}]")
    for key, label in (("use_gpu", "Use gpu"), ("use_nnapi", "Use NNAPI"), ("use_xnnpack", "Use xnnpack")):
        if key in flags:
            log("INFO", f"{label}: [{int(on(key))}]")
    if not Path(graph).is_file():
        log("ERROR", f"Could not open '{graph}'.")
        log("ERROR", f"Failed to mmap model {graph}")
        return fail(log, logcat)
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    log("INFO", f"Loaded model {graph}")
    log("INFO", "Initialized TensorFlow Lite runtime.")
    for key, name in (("use_gpu", "GPU"), ("use_nnapi", "NNAPI")):
        if on(key):  # the host has neither: behave like a phone whose driver rejects the graph
            log("INFO", f"Created TensorFlow Lite delegate for {name}.")
            log("INFO", "Going to apply 1 delegates one after another.")
            log("ERROR", f"Failed to apply {name} delegate.")
            return fail(log, logcat)
    xnn = flags.get("use_xnnpack", "true").lower() in ("1", "true")
    t0 = time.monotonic_ns()
    interp = Interpreter(model_path=graph, num_threads=max(threads, 1),
                         experimental_op_resolver_type=OpResolverType.AUTO if xnn
                         else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    if xnn:
        log("INFO", "Created TensorFlow Lite XNNPACK delegate for CPU.")
        log("INFO", "Going to apply 1 delegates one after another.")
        log("INFO", "Explicitly applied XNNPACK delegate, and the model graph will be completely executed by the delegate.")
    interp.allocate_tensors()
    init_us = (time.monotonic_ns() - t0) // 1000
    log("INFO", f"The input model file size (MB): {Path(graph).stat().st_size / 1e6:g}")
    log("INFO", f"Initialized session in {init_us / 1e3:g}ms.")

    def timed(n: int, min_secs: float) -> list[int]:
        log("INFO", f"Running benchmark for at least {n} iterations and at least {min_secs:g} seconds but "
                    "terminate if exceeding 150 seconds.")
        out = []
        for _ in range(n):
            s = time.monotonic_ns()
            interp.invoke()
            out.append((time.monotonic_ns() - s) // 1000)
        log("INFO", stat_line(out) + "\n")
        return out

    warm = timed(warmups, float(flags.get("warmup_min_secs", "0.5")))
    regular = timed(runs, float(flags.get("min_secs", "1")))
    avg, wavg = sum(regular) / len(regular), sum(warm) / len(warm)
    log("INFO", f"Inference timings in us: Init: {init_us}, First inference: {warm[0]}, "
                f"Warmup (avg): {wavg:g}, Inference (avg): {avg:g}")
    log("INFO", "Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE "
                "to the actual memory footprint of the model at runtime. Take the information at your discretion.")
    init_mb, overall_mb, peak_mb = 1.23047, 2.5, 31.25
    log("INFO", f"Memory footprint delta from the start of the tool (MB): init={init_mb:g} overall={overall_mb:g}")
    if on("report_peak_memory_footprint"):
        log("INFO", f"Overall peak memory footprint (MB) via periodic monitoring: {peak_mb:g}")
    if on("enable_op_profiling"):
        log("INFO", "Operator-wise Profiling Info for Regular Benchmark Runs:\n"
                    + op_table(interp._get_ops_details(), avg) + f"Timings (microseconds): {stat_line(regular)}\n"
                    "Memory (bytes): count=0\n")
    report = {"graph": Path(graph).name, "threads": threads, "xnnpack": xnn, "init_us": init_us,
              "first_us": warm[0], "warmup_avg_us": wavg, "avg_us": avg, "min_us": min(regular),
              "max_us": max(regular), "count": len(regular), "apk": logcat is not None}
    with open(Path(os.environ.get("STANDIN_SANDBOX", ".")) / "reported.jsonl", "a") as f:
        f.write(json.dumps(report) + "\n")
    return 0


def fail(log: Log, logcat: Path | None) -> int:
    if logcat is None:
        log("ERROR", "Benchmarking failed.")
    return 1


def am(argv: list[str]) -> int:
    """``am start [-S] [-W] -n org.tensorflow.lite.benchmark/.BenchmarkModelActivity --es args '...'``."""
    sandbox = Path(os.environ["STANDIN_SANDBOX"])
    if argv[:1] != ["start"] or "-n" not in argv or "--es" not in argv:
        print("Error: standin am supports only 'am start -n COMPONENT --es args ...'", file=sys.stderr)
        return 1
    component = argv[argv.index("-n") + 1]
    if not (sandbox / "installed" / component.split("/")[0]).exists():
        print(f"Error: Activity class {{{component}}} does not exist.", file=sys.stderr)
        return 1
    args = argv[argv.index("--es") + 2].strip('"')
    print(f"Starting: Intent {{ cmp={component} (has extras) }}")
    logcat = sandbox / "logcat.txt"
    stamp = time.strftime("%m-%d %H:%M:%S") + ".000"
    with open(logcat, "a") as f:
        f.write(f"{stamp}  {os.getpid():5d}  {os.getpid():5d} I tflite_BenchmarkModelActivity: "
                f"Running TensorFlow Lite benchmark with args: {args}\n")
    benchmark_model(shlex.split(args), logcat=logcat)
    return 0


def pm(argv: list[str]) -> int:
    installed = Path(os.environ["STANDIN_SANDBOX"]) / "installed"
    if argv[:2] == ["list", "packages"]:
        for p in sorted(installed.glob("*")) if installed.exists() else []:
            if len(argv) < 3 or argv[2] in p.name:
                print(f"package:{p.name}")
        return 0
    if argv[:1] == ["install"]:
        installed.mkdir(exist_ok=True)
        (installed / "org.tensorflow.lite.benchmark").touch()
        print("Success")
        return 0
    print(f"standin pm: unsupported {argv}", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    if argv[:1] == ["benchmark_model"]:
        return benchmark_model(argv[1:])
    if argv[:1] == ["am"]:
        return am(argv[1:])
    if argv[:1] == ["pm"]:
        return pm(argv[1:])
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["serve"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sandbox", type=Path, required=True)
    p.add_argument("--stop-at-run", type=int)
    p.add_argument("--drop-tool", action="append", default=[], help="leave this tool out (getprop, dumpsys, ...)")
    a = p.parse_args(argv)
    server = Server(a.port, a.sandbox, a.stop_at_run, tuple(a.drop_tool))
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    print(f"standin listening on 127.0.0.1:{a.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
