"""The serving environment: the ``serve`` side environment (``mtnet.sideenv``) and where Triton lies in it.

Why separate: ``nvidia-pytriton`` ships the ``tritonserver`` binary and its Python backend, and pins
numpy < 2; Triton's Python stub also converts tensors with the numpy C API it was built against (with
numpy 2 it reads empty tensors). mtnet's own environment is numpy 2. So the server and its Python models
run from that venv (numpy 1.26, ONNX Runtime, OpenCV, Pillow), importing mtnet's NumPy modules from the
installed mtnet package (``server.TritonServer`` puts only that package on their path). It is built by
``mtnet envs install serve``, never implicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..sideenv import SIDE_ENVS, SideEnvError


@dataclass(frozen=True)
class ServeEnv:
    root: Path
    site_packages: Path

    @property
    def triton_dist(self) -> Path:
        """pytriton's ``tritonserver`` folder: ``bin/tritonserver``, ``backends/python``, ``python_backend_stubs``."""
        return self.site_packages / "pytriton" / "tritonserver"

    @property
    def triton_libs(self) -> Path:
        """The shared libraries bundled with the wheel (auditwheel's ``nvidia_pytriton.libs``)."""
        return self.site_packages / "nvidia_pytriton.libs"


def serve_env() -> ServeEnv:
    """The installed serving environment, or a ``SideEnvError`` naming the command that builds it."""
    side = SIDE_ENVS["serve"].require()
    env = ServeEnv(side.root, side.site_packages)
    if not (env.triton_dist / "bin" / "tritonserver").is_file():
        raise SideEnvError(f"{env.root}: nvidia-pytriton is installed without its tritonserver binary")
    return env
