"""Reading and writing ``model.json``, the deploy contract every exported artifact carries.

The same document (built by ``mtnet.export.metadata.build_model_json``) is stored:

* beside the artifacts as ``model.json`` (:func:`write_model_json`, atomic; :func:`read_model_json`);
* in ONNX as the metadata prop ``METADATA_KEY`` (:func:`onnx_metadata_props`; :func:`read_onnx` falls
  back to a ``model.json`` beside the file);
* in TFLite as a ``Model.metadata`` entry named ``METADATA_KEY`` whose buffer holds UTF-8 JSON
  (:func:`embed_tflite`; :func:`read_tflite`);
* in CoreML as the user-defined metadata key ``METADATA_KEY`` (:func:`read_coreml`).

Embedded copies are compact JSON (:func:`dumps`). Format libraries load inside the functions that need
them, so inference backends import this module without the exporters' dependencies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import UserError
from .fileio import atomic_write

METADATA_KEY = "mtnet.model_json"
MODEL_JSON = "model.json"


class ModelJsonError(UserError):
    """A file lacks mtnet's ``model.json`` document, or holds an unreadable one."""


def dumps(doc: dict[str, Any]) -> str:
    """The compact JSON text embedded in exported files."""
    return json.dumps(doc, separators=(",", ":"))


def _loads(text: str | bytes, where: str | Path) -> dict[str, Any]:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelJsonError(f"{where}: '{METADATA_KEY}' is not valid JSON ({e})") from None


def _missing(path: str | Path) -> ModelJsonError:
    return ModelJsonError(f"{path}: no '{METADATA_KEY}' metadata (export it with `mtnet export`)")


def write_model_json(path: str | Path, doc: dict[str, Any]) -> Path:
    """Write ``doc`` as indented JSON to ``path`` (a ``model.json``) atomically; returns ``path``."""
    path = Path(path)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=2)))
    return path


def read_model_json(path: str | Path) -> dict[str, Any]:
    """A ``model.json`` file."""
    path = Path(path)
    if not path.is_file():
        raise ModelJsonError(f"{path}: not found")
    return _loads(path.read_bytes(), path)


def onnx_metadata_props(doc: dict[str, Any]) -> dict[str, str]:
    """The ONNX ``metadata_props`` entries that carry ``doc``."""
    return {METADATA_KEY: dumps(doc)}


def read_onnx(path: str | Path, props: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The document of an ``.onnx`` file: its metadata prop, else a ``model.json`` beside it.

    ``props``: the model's metadata props when already loaded (e.g. an onnxruntime session's
    ``get_modelmeta().custom_metadata_map``); otherwise they are read with ``onnx``.
    """
    path = Path(path)
    if props is None:
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if METADATA_KEY in props:
        return _loads(props[METADATA_KEY], path)
    beside = path.with_name(MODEL_JSON)
    if beside.is_file():
        return read_model_json(beside)
    raise _missing(path)


def embed_tflite(model: Any, doc: dict[str, Any]) -> None:
    """Store ``doc`` in a TFLite flatbuffer object tree (``schema_py_generated.ModelT``), replacing any
    earlier copy: a new buffer holding the JSON and a ``METADATA_KEY`` metadata entry pointing at it."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    buf = schema.BufferT()
    buf.data = np.frombuffer(dumps(doc).encode(), np.uint8)
    model.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name = METADATA_KEY.encode()
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_KEY.encode()] + [entry]


def read_tflite(path: str | Path) -> dict[str, Any]:
    """The document embedded in a ``.tflite`` by :func:`embed_tflite` (reads the flatbuffer, no interpreter)."""
    from ai_edge_litert import schema_py_generated as schema

    data = Path(path).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() == METADATA_KEY:
            return _loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes(), path)
    raise _missing(path)


def read_coreml(path: str | Path) -> dict[str, Any]:
    """The document in an ``.mlpackage``'s user-defined metadata (reads the spec; works on Linux)."""
    import coremltools as ct

    user = ct.utils.load_spec(str(path)).description.metadata.userDefined
    if METADATA_KEY not in user:
        raise _missing(path)
    return _loads(user[METADATA_KEY], path)
