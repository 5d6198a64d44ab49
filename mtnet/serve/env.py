"""The serving environment: a virtual environment of its own, built by code on first use.

Why separate: ``nvidia-pytriton`` ships the ``tritonserver`` binary and its Python backend, and pins
numpy < 2; Triton's Python stub also converts tensors with the numpy C API it was built against (with
numpy 2 it reads empty tensors). mtnet's own environment is numpy 2. So the server and its Python models
run from this venv (numpy 1.26, ONNX Runtime, OpenCV, Pillow), importing mtnet's NumPy modules from the
installed mtnet package (``server.TritonServer`` puts only that package on their path).

Location: ``$MTNET_SERVE_ENV`` if set, else ``~/.cache/mtnet/serve-<hash of SERVE_PINS>``; a marker file
records a finished install, so a broken one is rebuilt. Python: the interpreter running mtnet (the
server's Python stub must match its version; the wheel ships stubs for 3.8-3.13).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

# Verified together on Python 3.11 (pip check clean): the server binary 2.51 of nvidia-pytriton 0.7.0, and
# the same onnxruntime / pillow as mtnet's environment (identical decoding and inference); OpenCV 4.11 is
# the newest release that installs next to numpy < 2.
SERVE_PINS = ("nvidia-pytriton==0.7.0", "numpy==1.26.4", "onnxruntime==1.32.0", "opencv-python-headless==4.11.0.86",
              "pillow==13.0.0")
_MARKER = "mtnet-serve-env.txt"


class ServeEnvError(UserError):
    """The serving environment could not be built or lacks the Triton server."""


@dataclass(frozen=True)
class ServeEnv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        return self.root / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"

    @property
    def triton_dist(self) -> Path:
        """pytriton's ``tritonserver`` folder: ``bin/tritonserver``, ``backends/python``, ``python_backend_stubs``."""
        return self.site_packages / "pytriton" / "tritonserver"

    @property
    def triton_libs(self) -> Path:
        """The shared libraries bundled with the wheel (auditwheel's ``nvidia_pytriton.libs``)."""
        return self.site_packages / "nvidia_pytriton.libs"


def default_env_dir() -> Path:
    if os.environ.get("MTNET_SERVE_ENV"):
        return Path(os.environ["MTNET_SERVE_ENV"])
    digest = hashlib.sha256(" ".join(SERVE_PINS).encode()).hexdigest()[:10]
    return Path.home() / ".cache" / "mtnet" / f"serve-{digest}"


def ensure_serve_env(root: str | Path | None = None, *, quiet: bool = True) -> ServeEnv:
    """The serving environment at ``root`` (default :func:`default_env_dir`), installed if missing (a few
    minutes, needs the package index once)."""
    env = ServeEnv(Path(root) if root else default_env_dir())
    marker = env.root / _MARKER
    if marker.is_file() and marker.read_text() == "\n".join(SERVE_PINS) and (env.triton_dist / "bin" / "tritonserver").is_file():
        return env
    shutil.rmtree(env.root, ignore_errors=True)
    env.root.parent.mkdir(parents=True, exist_ok=True)
    steps = [[sys.executable, "-m", "venv", str(env.root)],
             [str(env.python), "-m", "pip", "install", *(["-q"] if quiet else []), "--disable-pip-version-check", *SERVE_PINS]]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            shutil.rmtree(env.root, ignore_errors=True)
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise ServeEnvError(f"building the serving environment failed ({' '.join(cmd[:4])} ...): {' | '.join(tail)}")
    if not (env.triton_dist / "bin" / "tritonserver").is_file():
        raise ServeEnvError(f"{env.root}: nvidia-pytriton installed without its tritonserver binary")
    marker.write_text("\n".join(SERVE_PINS))
    return env
