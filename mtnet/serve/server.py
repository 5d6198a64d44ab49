"""Run a Triton model repository with the real ``tritonserver`` binary of the serving environment.

``TritonServer`` is a context manager: ``start()`` lays out a private backend folder (the wheel's Python
backend plus the Python stub of this interpreter's version), starts the server in its own process group
with the serving environment's Python, in a working directory holding only a link to the installed
``mtnet`` package (the stubs' import path: they ignore PYTHONPATH), and waits
until the server reports ready; ``stop()`` sends SIGTERM to the whole group (server and Python stubs),
waits, escalates to SIGKILL, and removes the folder, so nothing is left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import UserError
from .env import ServeEnv, serve_env


class ServerError(UserError):
    """The Triton server did not start, or stopped."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TritonServer:
    def __init__(self, repository: str | Path, *, http_port: int = 8000, grpc_port: int = 8001, metrics_port: int = 8002,
                 env: ServeEnv | None = None, log_path: str | Path | None = None, startup_timeout_s: float = 120.0,
                 exit_timeout_s: int = 5):
        self.repository = Path(repository).resolve()
        if not (self.repository / "cascade.json").is_file():
            raise ServerError(f"{self.repository}: not a model repository written by `mtnet export --formats triton`")
        self.http_port, self.grpc_port, self.metrics_port = http_port, grpc_port, metrics_port
        self.env = env
        self.log_path = Path(log_path) if log_path else None
        self.startup_timeout_s = startup_timeout_s
        self.exit_timeout_s = exit_timeout_s  # how long a stopping server waits for open requests and connections
        self.proc: subprocess.Popen | None = None
        self._work: Path | None = None
        self._log = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def _layout(self, env: ServeEnv) -> Path:
        """Backends folder (Python backend + matching stub) and a path with only the mtnet package."""
        work = Path(tempfile.mkdtemp(prefix="mtnet-triton-"))
        backend = work / "backends" / "python"
        shutil.copytree(env.triton_dist / "backends" / "python", backend)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = env.triton_dist / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.is_file():
            raise ServerError(f"nvidia-pytriton has no Python backend stub for Python {version}")
        shutil.copy2(stub, backend / "triton_python_backend_stub")
        (work / "pylib").mkdir()
        (work / "pylib" / "mtnet").symlink_to(Path(__file__).resolve().parents[1], target_is_directory=True)
        return work

    def start(self) -> TritonServer:
        env = self.env or serve_env()
        self._work = self._layout(env)
        libdir = sysconfig.get_config_var("LIBDIR") or ""  # this interpreter's libpython, for the stub
        run_env = dict(os.environ,
                       PATH=f"{env.root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
                       LD_LIBRARY_PATH=os.pathsep.join(p for p in (str(env.triton_libs), libdir,
                                                                    os.environ.get("LD_LIBRARY_PATH", "")) if p),
                       OMP_NUM_THREADS="1")
        run_env.pop("PYTHONHOME", None)
        cmd = [str(env.triton_dist / "bin" / "tritonserver"), f"--model-repository={self.repository}",
               f"--backend-directory={self._work / 'backends'}", f"--http-port={self.http_port}",
               f"--grpc-port={self.grpc_port}", f"--metrics-port={self.metrics_port}", "--allow-metrics=false",
               f"--exit-timeout-secs={self.exit_timeout_s}", "--disable-auto-complete-config"]
        log = self.log_path or self._work / "tritonserver.log"
        self._log = open(log, "w")  # noqa: SIM115 (closed in stop())
        # The Python stub's embedded interpreter ignores PYTHONPATH but puts its working directory first on
        # sys.path: run the server in the folder that holds only the `mtnet` link.
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=run_env, cwd=self._work / "pylib",
                                     start_new_session=True)
        self._wait_ready(log)
        return self

    def _wait_ready(self, log: Path) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = log.read_text(errors="replace")[-2000:]
                self.stop()
                raise ServerError(f"tritonserver exited with code {self.proc.returncode}:\n{text}")
            try:
                with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        text = log.read_text(errors="replace")[-2000:]
        self.stop()
        raise ServerError(f"tritonserver was not ready after {self.startup_timeout_s:.0f} s:\n{text}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the server (SIGTERM: it unloads its models and ends their Python stubs), then SIGKILL whatever
        of its process group is left, and wait until the group is empty; idempotent."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    pass
            deadline = time.monotonic() + 15.0
            while _group_alive(self.proc.pid) and time.monotonic() < deadline:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            self.proc.poll()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still running (signal 0 probes without signalling)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
