"""Side environments: pinned virtual environments for tools whose pins cannot share mtnet's own.

- ``serve``: Triton's server binary and Python backend (``nvidia-pytriton`` pins numpy < 2, and the backend's
  stub reads tensors through the numpy 1.x C API), used by ``mtnet serve``;
- ``tflite-support``: the reference reader of standard TFLite metadata (pins protobuf < 4, which TensorFlow
  2.21 refuses), used to read an export back as Android tooling sees it.

Nothing is downloaded implicitly: a side environment is built only by ``mtnet envs install NAME`` (or
:meth:`SideEnv.install`), which needs the package index once. Code that needs one calls
:meth:`SideEnv.require`, which fails with that command when it is missing. Location:
``$MTNET_CACHE`` (default ``~/.cache/mtnet``) ``/<name>-<hash of the pins>``; a marker file written last
records a finished install, so an interrupted one is rebuilt rather than used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

_MARKER = "mtnet-side-env.txt"


class SideEnvError(UserError):
    """A side environment is missing or could not be built."""


@dataclass(frozen=True)
class SideEnv:
    name: str
    pins: tuple[str, ...]
    purpose: str

    @property
    def root(self) -> Path:
        cache = Path(os.environ.get("MTNET_CACHE") or Path.home() / ".cache" / "mtnet")
        return cache / f"{self.name}-{hashlib.sha256(' '.join(self.pins).encode()).hexdigest()[:10]}"

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        return self.root / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"

    def installed(self) -> bool:
        marker = self.root / _MARKER
        return marker.is_file() and marker.read_text() == "\n".join(self.pins) and self.python.is_file()

    def require(self) -> SideEnv:
        """This environment, or a clear error naming the command that builds it."""
        if not self.installed():
            raise SideEnvError(f"the '{self.name}' environment ({self.purpose}) is not installed at {self.root}; "
                               f"build it once with `mtnet envs install {self.name}` (downloads {', '.join(self.pins)} "
                               "from the package index)")
        return self

    def install(self, *, quiet: bool = True) -> SideEnv:
        """Build the venv with the interpreter running mtnet (Triton's stub must match its version) and the
        pins; the marker is written only when every step succeeded."""
        if self.installed():
            return self
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.parent.mkdir(parents=True, exist_ok=True)
        steps = [[sys.executable, "-m", "venv", str(self.root)],
                 [str(self.python), "-m", "pip", "install", *(["-q"] if quiet else []), "--disable-pip-version-check",
                  *self.pins]]
        for cmd in steps:
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                shutil.rmtree(self.root, ignore_errors=True)
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise SideEnvError(f"building the '{self.name}' environment failed ({' '.join(cmd[:4])} ...): "
                                   f"{' | '.join(tail)}")
        (self.root / _MARKER).write_text("\n".join(self.pins))
        return self


# Verified together on Python 3.11 (pip check clean). serve: the server binary 2.51 of nvidia-pytriton 0.7.0,
# and the same onnxruntime / pillow as mtnet's environment (identical decoding and inference); OpenCV 4.11 is
# the newest release that installs next to numpy < 2. tflite-support: protobuf 3.20.3 comes with it.
SIDE_ENVS: dict[str, SideEnv] = {env.name: env for env in (
    SideEnv("serve", ("nvidia-pytriton==0.7.0", "numpy==1.26.4", "onnxruntime==1.32.0",
                      "opencv-python-headless==4.11.0.86", "pillow==13.0.0"),
            "Triton server for `mtnet serve`"),
    SideEnv("tflite-support", ("tflite-support==0.4.4", "numpy==2.4.6"),
            "tflite-support's MetadataDisplayer, the reference reader of TFLite metadata"),
)}
