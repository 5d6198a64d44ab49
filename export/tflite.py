"""ONNX -> TFLite with onnx2tf 1.28.8 (NHWC input, builtin ops only).

One onnx2tf run writes every TFLite variant we ship: float32, float16 (weights), dynamic-range and
full-integer PTQ (calibrated on ``calibration/``'s representative set). onnx2tf runs in a child process
because it needs its own working directory (it looks for, and otherwise downloads, a calibration sample
there — we place a local one so nothing is downloaded) and so TensorFlow's memory goes away after it.

The shipped int8 model keeps the in-graph decode tails (``FLOAT_TAIL_OUTPUTS``: every op between the
last convolution and the ``boxes`` / ``keypoints`` outputs) in float32: TF 2.21's PTQ calibrator
records the softplus distances tensor (real range [0, ~17] stride units) with the range of the
``* stride`` product that follows it ([-510, 296] px), so int8 stepped distances by 3.2 strides (boxes
up to ~50 px off, bbox AP50 -1.8 points). These are a few element-wise ops on [1, A, 4|51] tensors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtnet.data.transforms import MEAN, STD
from mtnet.errors import UserError

from .onnx import INPUT_NAME

# onnx2tf output suffix -> our variant name
VARIANTS = {
    "float32": "float32",
    "float16": "float16",
    "dynamic_range_quant": "dynamic_range",
    "integer_quant": "int8",  # int8 weights and activations, float32 input/output
    "full_integer_quant": "int8_io",  # int8 everywhere including input/output
}
_ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
# ONNX outputs whose decode (after the last conv) stays float32 in the int8 model; see the module docstring
FLOAT_TAIL_OUTPUTS = ("boxes", "keypoints")
_STOP_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"})


class ConversionError(UserError):
    """onnx2tf failed; the message names the stage and the last error line."""


@dataclass
class TFLiteFiles:
    """Paths of the variants one conversion produced (keys of ``VARIANTS``' values)."""

    files: dict[str, Path]
    work_dir: Path
    float_nodes: list[str] = field(default_factory=list)  # op outputs kept float32 in the "int8" variant


def _script(kwargs: dict) -> str:
    return (
        "import json, sys\n"
        "import onnx2tf\n"
        f"onnx2tf.convert(**json.loads({json.dumps(json.dumps(kwargs))}))\n"
    )


def convert_onnx_to_tflite(onnx_path: str | Path, work_dir: str | Path, *, calibration: np.ndarray | None = None,
                           quant_type: str = "per-channel", float_tail: tuple[str, ...] = FLOAT_TAIL_OUTPUTS,
                           timeout_s: float = 1800) -> TFLiteFiles:
    """Run onnx2tf on ``onnx_path`` inside ``work_dir``; returns the variant files written there.

    ``calibration``: float32 NHWC images in [0, 1] (the representative set). Without it only float32,
    float16 and dynamic-range files are produced. ``quant_type``: ``per-channel`` (default, best accuracy
    for depthwise convs) or ``per-tensor``. ``float_tail``: ONNX outputs whose decode ops stay float32 in
    the float-I/O ``int8`` variant (re-quantized from onnx2tf's saved model, see
    ``quantize_with_float_tail``); empty keeps onnx2tf's fully int8 file. ``int8_io`` is always onnx2tf's
    fully int8 file (the debugger's quantizer keeps float I/O).
    """
    if quant_type not in ("per-channel", "per-tensor"):
        raise ConversionError(f"quant_type must be 'per-channel' or 'per-tensor', got {quant_type!r}")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    out = work / "tflite"
    # onnx2tf downloads this sample for any 3-channel input unless a file of that name is present.
    np.save(work / _ONNX2TF_SAMPLE, np.random.default_rng(0).random((20, 128, 128, 3), np.float32))
    kwargs: dict = {
        "input_onnx_file_path": str(Path(onnx_path).resolve()),
        "output_folder_path": str(out.resolve()),
        "copy_onnx_input_output_names_to_tflite": True,
        "output_signaturedefs": True,
        "output_dynamic_range_quantized_tflite": True,
        "verbosity": "error",
    }
    if calibration is not None:
        if calibration.ndim != 4 or calibration.shape[-1] != 3 or calibration.dtype != np.float32:
            raise ConversionError(f"calibration set must be float32 NHWC [N, H, W, 3], got {calibration.dtype} "
                                  f"{list(calibration.shape)}")
        npy = work / "calibration.npy"
        np.save(npy, calibration)
        kwargs.update(
            output_integer_quantized_tflite=True,
            quant_type=quant_type,
            custom_input_op_name_np_data_path=[[INPUT_NAME, str(npy.resolve()), [[[list(MEAN)]]], [[[list(STD)]]]]],
        )
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               TF_CPP_MIN_LOG_LEVEL="2")
    log = work / "onnx2tf.log"
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-c", _script(kwargs)], cwd=work, env=env, stdout=f,
                              stderr=subprocess.STDOUT, timeout=timeout_s)
    stem = Path(onnx_path).stem
    files = {name: out / f"{stem}_{suffix}.tflite" for suffix, name in VARIANTS.items()}
    files = {k: v for k, v in files.items() if v.is_file()}
    if proc.returncode != 0 or "float32" not in files:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if "Error" in ln] or lines[-1:] or ["no output"]
        kept = Path(tempfile.mkstemp(prefix="mtnet-onnx2tf-", suffix=".log")[1])  # the work dir is removed
        shutil.copyfile(log, kept)
        raise ConversionError(f"onnx2tf failed (exit {proc.returncode}): {errors[-1][:300]} (log: {kept})")
    if calibration is None:
        return TFLiteFiles(files, work)
    if "int8" not in files:
        raise ConversionError(f"onnx2tf wrote no integer-quantized model (log: {log})")
    nodes: list[str] = []
    if float_tail:
        probe = np.ascontiguousarray(((calibration[:1] - np.float32(MEAN)) / np.float32(STD)).transpose(0, 3, 1, 2))
        binding = bind_outputs(files["float32"], onnx_path, probe.astype(np.float32))
        nodes = decode_tail_nodes(files["float32"], [t for t, (o, _) in binding.items() if o in float_tail])
        files["int8"] = _run_float_tail_quant(out, npy, nodes, per_tensor=quant_type == "per-tensor",
                                              dst=out / f"{stem}_int8_float_tail.tflite", env=env, timeout_s=timeout_s)
    return TFLiteFiles(files, work, nodes)


def decode_tail_nodes(float_tflite: str | Path, outputs: list[str]) -> list[str]:
    """Output tensor names of every op between ``outputs`` (TFLite output names) and the nearest convs.

    These are the ops that turn conv activations into pixels (decode); names are those the TF converter
    gives the saved model's ops, which is what ``QuantizationDebugOptions.denylisted_nodes`` matches.
    """
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(float_tflite))
    names = {t["index"]: t["name"] for t in interp.get_tensor_details()}
    producer = {o: op for op in interp._get_ops_details() for o in op["outputs"]}
    index = {d["name"]: d["index"] for d in interp.get_output_details()}
    seen: set[int] = set()
    nodes: list[str] = []
    stack = [index[name] for name in outputs]
    while stack:
        op = producer.get(stack.pop())
        if op is None or op["index"] in seen or op["op_name"] in _STOP_OPS:
            continue
        seen.add(op["index"])
        nodes += [names[o] for o in op["outputs"]]
        stack += [i for i in op["inputs"] if i >= 0]
    return sorted(set(nodes))


def _run_float_tail_quant(saved_model: Path, calibration_npy: Path, nodes: list[str], *, per_tensor: bool,
                          dst: Path, env: dict, timeout_s: float) -> Path:
    """``quantize_with_float_tail`` in a child process (TensorFlow's memory goes away with it)."""
    kwargs = {"saved_model": str(saved_model), "calibration_npy": str(calibration_npy), "nodes": nodes,
              "per_tensor": per_tensor, "dst": str(dst)}
    code = "import json, sys\nfrom export.tflite import quantize_with_float_tail\nquantize_with_float_tail(**json.loads(sys.argv[1]))"
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], env=env, capture_output=True, text=True,
                          timeout=timeout_s)
    if proc.returncode != 0 or not dst.is_file():
        tail = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()][-1:] or ["no output"]
        raise ConversionError(f"int8 quantization with a float decode tail failed: {tail[0][:300]}")
    return dst


def quantize_with_float_tail(saved_model: str, calibration_npy: str, nodes: list[str], *, per_tensor: bool,
                             dst: str) -> None:
    """int8 PTQ (float32 I/O) of onnx2tf's saved model, same calibration images and MEAN/STD, ``nodes`` float32."""
    import tensorflow as tf

    images = (np.load(calibration_npy) - np.float32(MEAN)) / np.float32(STD)

    def representative():
        for i in range(len(images)):
            yield [images[i : i + 1].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter._experimental_disable_per_channel = per_tensor
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=representative,
                                                         debug_options=options)
    Path(dst).write_bytes(debugger.get_nondebug_quantized_model())


def temp_work_dir(parent: str | Path) -> Path:
    """A fresh scratch folder next to the final artifacts (same file system, so renames are atomic)."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".export-", dir=parent))


_PERMS = {3: ([0, 1, 2], [0, 2, 1]), 4: ([0, 1, 2, 3], [0, 3, 1, 2]), 2: ([0, 1],)}


def _run_tflite(path: Path, x_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    """Raw outputs of a .tflite by tensor name (input quantized / outputs dequantized where int8)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    d = interp.get_input_details()[0]
    x = x_nhwc
    if d["dtype"] != np.float32:
        scale, zero = d["quantization"]
        x = np.clip(np.round(x / scale) + zero, -128, 127).astype(d["dtype"])
    interp.set_tensor(d["index"], x)
    interp.invoke()
    outs = {}
    for o in interp.get_output_details():
        y = interp.get_tensor(o["index"])
        scale, zero = o["quantization"]
        outs[o["name"]] = (y.astype(np.float32) - zero) * scale if scale else y
    return outs


def bind_outputs(tflite_path: str | Path, onnx_path: str | Path, probe_nchw: np.ndarray) -> dict[str, tuple[str, list[int]]]:
    """Map each TFLite output tensor to the ONNX output it computes and the axis permutation to torch layout.

    onnx2tf renames outputs, shuffles their order and changes some layouts (NHWC, [B, 4, A]); shapes alone
    are ambiguous (4 classes vs 4 box sides), so outputs are matched by value on a real probe input.
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    ref = dict(zip(names, sess.run(None, {INPUT_NAME: probe_nchw}), strict=True))
    got = _run_tflite(Path(tflite_path), np.ascontiguousarray(probe_nchw.transpose(0, 2, 3, 1)))
    binding: dict[str, tuple[str, list[int]]] = {}
    for tname, y in got.items():
        best: tuple[float, str, list[int]] | None = None
        for oname, r in ref.items():
            for perm in _PERMS.get(y.ndim, ()):
                z = np.transpose(y, perm)
                if z.shape != r.shape:
                    continue
                err = float(np.abs(z.astype(np.float64) - r).mean() / (np.abs(r).mean() + 1e-6))
                if best is None or err < best[0]:
                    best = (err, oname, perm)
        if best is None:
            raise ConversionError(f"{Path(tflite_path).name}: output {tname} {list(y.shape)} matches no ONNX output")
        binding[tname] = (best[1], best[2])
    if sorted(v[0] for v in binding.values()) != sorted(names):
        raise ConversionError(f"{Path(tflite_path).name}: outputs {sorted(binding)} do not map one-to-one onto {names}")
    return binding


def finalize_tflite(src: str | Path, dst: str | Path, onnx_path: str | Path, probe_nchw: np.ndarray,
                    doc: dict) -> dict:
    """Write ``dst``: ``src`` with outputs named as in ONNX and ``doc`` + this file's I/O embedded.

    Returns the file's ``io`` section (what LiteRT reports after renaming, plus ``to_torch`` permutations).
    """
    from .metadata import rewrite_tflite, tflite_io

    binding = bind_outputs(src, onnx_path, probe_nchw)
    io = tflite_io(src)
    for o in io["outputs"]:
        o["name"], o["to_torch"] = binding[o["name"]]
    order = [s["name"] for s in doc["outputs"]]
    io["outputs"].sort(key=lambda o: order.index(o["name"]))
    io["inputs"][0]["name"] = INPUT_NAME
    io["inputs"][0]["layout"] = "NHWC"
    rewrite_tflite(src, dst, output_names={k: v[0] for k, v in binding.items()}, input_name=INPUT_NAME,
                   doc={**doc, "io": io})
    return io
