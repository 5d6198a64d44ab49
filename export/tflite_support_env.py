"""Read a ``.tflite``'s standard metadata back with ``tflite-support``'s own ``MetadataDisplayer``.

``tflite-support`` 0.4.4 pins protobuf < 4, which TensorFlow 2.21 (``mtnet[export]``) refuses, so it lives in
its own virtual environment, built on first use under a cache folder (``$MTNET_CACHE`` or
``~/.cache/mtnet``) with the versions checked to work here: ``tflite-support==0.4.4``, ``numpy==2.4.6``
(protobuf 3.20.3 comes with it). Used by the tests and by anyone who wants the reference reader's view::

    python -m mtnet.export.tflite_support_env exports/quickstart/model_float32.tflite
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from mtnet.errors import UserError

PINS = ("tflite-support==0.4.4", "numpy==2.4.6")
_DISPLAY = r"""
import json, sys
from tflite_support import metadata
from tensorflow_lite_support.metadata.cc.python import _pywrap_metadata_version
d = metadata.MetadataDisplayer.with_model_file(sys.argv[1])
files = d.get_packed_associated_file_list()
print(json.dumps({
    "metadata": json.loads(d.get_metadata_json()),
    "files": files,
    "file_contents": {f: d.get_associated_file_buffer(f).decode("utf-8", "replace") for f in files},
    "computed_min_parser_version": _pywrap_metadata_version.GetMinimumMetadataParserVersion(
        bytes(d.get_metadata_buffer())),
}))
"""


class TFLiteSupportError(UserError):
    """The tflite-support environment could not be built, or its reader refused the file."""


def env_python(cache: str | Path | None = None) -> Path:
    """The Python of the tflite-support environment, built (atomically: in a temp folder, then renamed) if
    missing."""
    root = Path(cache or os.environ.get("MTNET_CACHE") or Path.home() / ".cache" / "mtnet")
    env = root / ("tflite-support-" + PINS[0].split("==")[1])
    python = env / "bin" / "python"
    if python.is_file():
        return python
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{env.name}.", dir=root))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(tmp)], check=True, capture_output=True)
        proc = subprocess.run([str(tmp / "bin" / "python"), "-m", "pip", "install", "-q", *PINS],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise TFLiteSupportError(f"could not install {' '.join(PINS)}: {proc.stderr.strip()[-300:]}")
        os.replace(tmp, env)  # only `bin/python -m ...` is used: the scripts' absolute shebangs do not matter
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return python


def display(path: str | Path, cache: str | Path | None = None) -> dict[str, Any]:
    """``MetadataDisplayer``'s view of ``path``: ``metadata`` (its JSON), ``files`` (packed associated files),
    ``file_contents`` and ``computed_min_parser_version`` (tflite-support's own computation)."""
    proc = subprocess.run([str(env_python(cache)), "-c", _DISPLAY, str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise TFLiteSupportError(f"{path}: tflite-support's MetadataDisplayer failed: "
                                 f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(proc.stdout)


if __name__ == "__main__":
    print(json.dumps(display(sys.argv[1]), indent=2))
