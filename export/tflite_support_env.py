"""Read a ``.tflite``'s standard metadata back with ``tflite-support``'s own ``MetadataDisplayer``.

``tflite-support`` 0.4.4 pins protobuf < 4, which TensorFlow 2.21 (``mtnet[export]``) refuses, so it runs in the
``tflite-support`` side environment (``mtnet.sideenv``), built once by ``mtnet envs install tflite-support``.
Used by the tests and by anyone who wants the reference reader's view::

    python -m mtnet.export.tflite_support_env exports/quickstart/model_float32.tflite
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mtnet.errors import UserError
from mtnet.sideenv import SIDE_ENVS

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
    """tflite-support's reader refused the file."""


def display(path: str | Path) -> dict[str, Any]:
    """``MetadataDisplayer``'s view of ``path``: ``metadata`` (its JSON), ``files`` (packed associated files),
    ``file_contents`` and ``computed_min_parser_version`` (tflite-support's own computation)."""
    proc = subprocess.run([str(SIDE_ENVS["tflite-support"].require().python), "-c", _DISPLAY, str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise TFLiteSupportError(f"{path}: tflite-support's MetadataDisplayer failed: "
                                 f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(proc.stdout)


if __name__ == "__main__":
    print(json.dumps(display(sys.argv[1]), indent=2))
