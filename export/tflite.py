"""ONNX -> TFLite with onnx2tf 1.28.8 (NHWC input, builtin ops only).

One onnx2tf run writes the float variants (float32, float16 weights, dynamic-range) and the TF saved
model; the full-integer PTQ variants (calibrated on ``calibration/``'s representative set) are quantized
from that saved model by TF's converter with a float decode tail (below). onnx2tf and the quantizer run in
child processes: onnx2tf needs its own working directory (it looks for, and otherwise downloads, a
calibration sample there — we place a local one so nothing is downloaded), and TensorFlow's memory goes
away with them.

The shipped int8 model keeps the in-graph decode tails (the outputs a task marks ``float_tail``: every op
between the last convolution and e.g. the ``boxes`` / ``keypoints`` outputs) in float32: TF 2.21's PTQ calibrator
records the softplus distances tensor (real range [0, ~17] stride units) with the range of the
``* stride`` product that follows it ([-510, 296] px), so int8 stepped distances by 3.2 strides (boxes
up to ~50 px off, bbox AP50 -1.8 points). These are a few element-wise ops on [1, A, 4|51] tensors.

``int8_io`` (``--int8-io``) is that same model with an int8 *input* (the QUANTIZE op after the float input
is removed, exactly what TFLiteConverter's ``inference_input_type=tf.int8`` does, via the converter's own
``modify_model_io_type``) and float32 *outputs*: boxes and keypoints leave the float decode tail in pixels.
Int8 outputs cannot be right here: one per-tensor scale for ``keypoints`` (pixel coordinates up to the
input size interleaved with [0, 1] visibility probabilities) would step visibility by ~imgsz/255, and
onnx2tf's fully int8 file (int8 outputs, int8 decode) carries the mis-calibrated decode above.
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

from mtnet.data.preprocess import MEAN, STD, normalize_unit
from mtnet.errors import UserError
from mtnet.infer.quant import dequantize, dequantize_output, quantize_input

from .onnx import INPUT_NAME

# onnx2tf output suffix -> our variant name
VARIANTS = {
    "float32": "float32",
    "float16": "float16",
    "dynamic_range_quant": "dynamic_range",
    "integer_quant": "int8",  # int8 weights and activations, float32 input/output (only without a float tail)
    "full_integer_quant": "int8_io",  # int8 everywhere including input/output (only without a float tail)
}
_ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
# ONNX outputs whose decode (after the last conv) stays float32 in the int8 model; see the module docstring
_STOP_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"})


class ConversionError(UserError):
    """onnx2tf failed; the message names the stage and the last error line."""


@dataclass
class TFLiteFiles:
    """Paths of the variants one conversion produced (keys of ``VARIANTS``' values)."""

    files: dict[str, Path]
    work_dir: Path
    float_nodes: list[str] = field(default_factory=list)  # op outputs kept float32 in the "int8" variant
    float_op_types: list[str] = field(default_factory=list)  # op types found only in the tail, kept float32
    points: dict | None = None  # export.int8_points' record (binding, QAT ranges set, branches, sensitivity files)


# onnx2tf 1.28.8 reads TopK's K (a 1-element 1-D constant, as ONNX requires) with ``int(ndarray)``, which
# numpy 2 rejects for ndim > 0 ("only 0-dimensional arrays can be converted"); the in-graph NMS's top-k
# pre-selection hits it. Shim that one module's ``int`` to take the single element.
_ONNX2TF_SHIMS = (
    "import builtins\n"
    "import numpy as np\n"
    "import onnx2tf.ops.TopK as _topk\n"
    "class _Int(builtins.int):\n"
    "    def __new__(cls, v=0, *a):\n"
    "        return super().__new__(cls, v.reshape(-1)[0] if isinstance(v, np.ndarray) else v, *a)\n"
    "_topk.int = _Int\n"
)


def _script(kwargs: dict) -> str:
    return (
        "import json, sys\n"
        "import onnx2tf\n"
        + _ONNX2TF_SHIMS
        + f"onnx2tf.convert(**json.loads({json.dumps(json.dumps(kwargs))}))\n"
    )


def convert_onnx_to_tflite(onnx_path: str | Path, work_dir: str | Path, *, calibration: np.ndarray | None = None,
                           quant_type: str = "per-channel", float_tail: tuple[str, ...] = (),
                           points: dict | None = None, timeout_s: float = 1800) -> TFLiteFiles:
    """Run onnx2tf on ``onnx_path`` inside ``work_dir``; returns the variant files written there.

    ``calibration``: float32 NHWC images in [0, 1] (the representative set). Without it only float32,
    float16 and dynamic-range files are produced. ``quant_type``: ``per-channel`` (default, best accuracy
    for depthwise convs) or ``per-tensor``. ``float_tail``: ONNX outputs whose decode ops stay float32 in
    the ``int8`` (float I/O) and ``int8_io`` (int8 input, float outputs) variants, both quantized from
    onnx2tf's saved model (``quantize_with_float_tail``); empty: onnx2tf's own fully int8 PTQ files instead.
    ``points``: ``quantize_with_float_tail``'s ``points_npz``, ``qat``, ``sensitivity``, ``float_branches``
    (needs ``float_tail``); its ``<int8 file>.points.json`` lands in ``TFLiteFiles.points``.
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
    if calibration is not None and not float_tail:  # onnx2tf's own PTQ; with a float tail we quantize below
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
    if not float_tail:
        if points:  # QAT ranges / sensitivity go through the float-tail quantizer only: never a silent PTQ
            raise ConversionError("QAT ranges and int8 sensitivity need a model with a float decode tail (det or pose)")
        if "int8" not in files:
            raise ConversionError(f"onnx2tf wrote no integer-quantized model (log: {log})")
        return TFLiteFiles(files, work)
    probe = np.ascontiguousarray(normalize_unit(calibration[:1]).transpose(0, 3, 1, 2))
    binding = bind_outputs(files["float32"], onnx_path, probe.astype(np.float32))
    tail_outputs = [t for t, (o, _) in binding.items() if o in float_tail]
    nodes = decode_tail_nodes(files["float32"], tail_outputs)
    op_types = tail_only_op_types(files["float32"], tail_outputs)
    files["int8"] = out / f"{stem}_int8_float_tail.tflite"
    files["int8_io"] = out / f"{stem}_int8_input_float_tail.tflite"
    _run_float_tail_quant(out, npy, nodes, op_types, per_tensor=quant_type == "per-tensor", dst=files["int8"],
                          int8_input_dst=files["int8_io"], env=env, timeout_s=timeout_s, points=points)
    sidecar = Path(f"{files['int8']}.points.json")
    return TFLiteFiles(files, work, nodes, op_types, json.loads(sidecar.read_text()) if points else None)


def decode_tail_nodes(float_tflite: str | Path, outputs: list[str]) -> list[str]:
    """Output tensor names of every op between ``outputs`` (TFLite output names) and the nearest convs.

    These are the ops that turn conv activations into pixels (decode); names are those the TF converter
    gives the saved model's ops, which is what ``QuantizationDebugOptions.denylisted_nodes`` matches.
    """
    tail, _, names = _tail_ops(float_tflite, outputs)
    return sorted({names[o] for op in tail for o in op["outputs"]})


def _tail_ops(float_tflite: str | Path, outputs: list[str]) -> tuple[list[dict], list[dict], dict[int, str]]:
    """(ops between ``outputs`` and the nearest convs, all ops, tensor index -> name) of a float .tflite."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(float_tflite))
    names = {t["index"]: t["name"] for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()
    producer = {o: op for op in ops for o in op["outputs"]}
    index = {d["name"]: d["index"] for d in interp.get_output_details()}
    seen: dict[int, dict] = {}
    stack = [index[name] for name in outputs]
    while stack:
        op = producer.get(stack.pop())
        if op is None or op["index"] in seen or op["op_name"] in _STOP_OPS:
            continue
        seen[op["index"]] = op
        stack += [i for i in op["inputs"] if i >= 0]
    return list(seen.values()), ops, names


def tail_only_op_types(float_tflite: str | Path, outputs: list[str]) -> list[str]:
    """Op types (``LOG``, ``TOPK_V2`` ...) used in the decode tail of ``outputs`` and nowhere else.

    The quantizer matches ``denylisted_nodes`` by exact (fused) location name, and the names of a few tail ops
    (``LOG`` of the softplus, the NMS tail's ``TOPK_V2``) come out fused differently in its calibrated model,
    so they were still quantized (``TOPK_V2`` on the range of the pixel coordinates it is concatenated with:
    every score became 0 or 1.25). Denylisting these op types (``denylisted_ops``) keeps them float without
    touching the network, which does not use them.
    """
    tail, ops, _ = _tail_ops(float_tflite, outputs)
    inside = {op["index"] for op in tail}
    elsewhere = {op["op_name"] for op in ops if op["index"] not in inside}
    return sorted({op["op_name"] for op in tail} - elsewhere - {"QUANTIZE", "DEQUANTIZE"})


def _run_float_tail_quant(saved_model: Path, calibration_npy: Path, nodes: list[str], op_types: list[str], *,
                          per_tensor: bool,
                          dst: Path, int8_input_dst: Path, env: dict, timeout_s: float, points: dict | None = None) -> Path:
    """``quantize_with_float_tail`` in a child process (TensorFlow's memory goes away with it)."""
    kwargs = {"saved_model": str(saved_model), "calibration_npy": str(calibration_npy), "nodes": nodes,
              "op_types": op_types, "per_tensor": per_tensor, "dst": str(dst), "int8_input_dst": str(int8_input_dst),
              **(points or {})}
    code = "import json, sys\nfrom mtnet.export.tflite import quantize_with_float_tail\nquantize_with_float_tail(**json.loads(sys.argv[1]))"
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], env=env, capture_output=True, text=True,
                          timeout=timeout_s)
    if proc.returncode != 0 or not dst.is_file() or not int8_input_dst.is_file():
        tail = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()][-1:] or ["no output"]
        raise ConversionError(f"int8 quantization with a float decode tail failed: {tail[0][:300]}")
    return dst


def quantize_with_float_tail(saved_model: str, calibration_npy: str, nodes: list[str], *, per_tensor: bool,
                             dst: str, int8_input_dst: str | None = None, op_types: list[str] | None = None,
                             points_npz: str | None = None, qat: bool = False, sensitivity: bool = False,
                             float_branches: list[str] | None = None) -> None:
    """int8 PTQ (float32 I/O) of onnx2tf's saved model, same calibration images and MEAN/STD, ``nodes`` and
    every op of ``op_types`` float32, outputs without a final int8 round trip (``remove_float_requantization``).

    ``int8_input_dst``: also write the same model with an int8 input (its QUANTIZE op folded into the
    input tensor's quantization) and float32 outputs.

    ``points_npz`` (``export.int8_points.save_points``): PyTorch activation points on a probe image, bound to
    the calibrated model's tensors; with ``qat`` their QAT ranges replace the calibrated ones, with
    ``sensitivity`` one model per branch (only it int8) is written next to ``dst``, and ``float_branches``
    stay float32. What was done goes to ``<dst>.points.json``.
    """
    import tensorflow as tf
    from tensorflow.lite.python.util import modify_model_io_type

    images = normalize_unit(np.load(calibration_npy))

    def representative():
        for i in range(len(images)):
            yield [images[i : i + 1].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter._experimental_disable_per_channel = per_tensor
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes, denylisted_ops=op_types or None)
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=representative,
                                                         debug_options=options)
    if points_npz:  # QAT ranges, per-branch sensitivity, float branches: see export.int8_points
        from .int8_points import apply_points

        debugger.calibrated_model, extra = apply_points(debugger.calibrated_model, points_npz, dst, qat=qat,
                                                        nodes=nodes, op_types=op_types or [], per_tensor=per_tensor,
                                                        float_branches=float_branches or [], sensitivity=sensitivity)
        if extra:
            debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes + extra,
                                                                             denylisted_ops=op_types or None)
    model, _ = remove_float_requantization(debugger.get_nondebug_quantized_model())
    Path(dst).write_bytes(model)
    if int8_input_dst:
        Path(int8_input_dst).write_bytes(modify_model_io_type(model, inference_input_type=tf.int8,
                                                              inference_output_type=tf.float32))


_LAYOUT_OPS = ("RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS")
_ELEMENTWISE = ("ADD", "SUB", "MUL")


def remove_float_requantization(model_bytes: bytes) -> tuple[bytes, list[str]]:
    """Remove the int8 round trips the quantizer leaves between float32 ops; returns (model, what changed).

    With the decode tail kept float32, TF's quantizer still rounds some float tensors through int8 and back:

    * each output ends ``QUANTIZE -> RESHAPE (int8) -> DEQUANTIZE`` (the final reshape carries the output's
      name, which the denylist does not match): 0.6-0.75 px steps for boxes, and for tensors that mix units
      (``keypoints``: pixels and [0, 1] visibilities; ``detections``: pixels, scores, class ids) the
      small-valued columns are destroyed. The layout ops (reshape / transpose / squeeze / expand-dims) are
      made float32 on the float tensor;
    * ``QUANTIZE -> DEQUANTIZE`` pairs after float ops (sigmoid scores stepped by 1/256);
    * ``QUANTIZE -> ADD|SUB|MUL with a constant -> DEQUANTIZE`` (the softplus's ``1 + exp(-|x|)``): the op runs
      in float32 with its constant dequantized.

    Only rounding is removed: no int8 op of the network changes. Outputs that are int8 for a reason (e.g.
    ``seg`` logits after an int8 resize) are kept.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(model_bytes), 0))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = [names[max(c.builtinCode, c.deprecatedBuiltinCode)] for c in model.operatorCodes]
    graph = model.subgraphs[0]
    changed: list[str] = []

    def code(op) -> str:
        return codes[op.opcodeIndex]

    def float_const(index: int) -> int:
        """A new float32 tensor holding the dequantized values of int8 constant tensor ``index``."""
        t = graph.tensors[index]
        raw = np.frombuffer(bytes(bytearray(model.buffers[t.buffer].data)), np.int8)
        values = dequantize(raw, t.quantization.scale[0], t.quantization.zeroPoint[0])
        buf = schema.BufferT()
        buf.data = np.frombuffer(values.astype("<f4").tobytes(), np.uint8)
        model.buffers.append(buf)
        new = schema.TensorT()
        new.shape, new.type, new.buffer = t.shape, schema.TensorType.FLOAT32, len(model.buffers) - 1
        new.name = t.name + b"_float"
        graph.tensors.append(new)
        return len(graph.tensors) - 1

    def is_const(index: int) -> bool:
        t = graph.tensors[index]
        return t.buffer > 0 and model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data) > 0

    while True:
        producer = {int(o): op for op in graph.operators for o in op.outputs}
        consumers: dict[int, list] = {}
        for op in graph.operators:
            for i in op.inputs:
                consumers.setdefault(int(i), []).append(op)
        outputs = {int(i) for i in graph.outputs}
        drop: list = []
        for dq in [op for op in graph.operators if code(op) == "DEQUANTIZE"]:
            src = producer.get(int(dq.inputs[0]))
            if src is None:
                continue
            dq_out = int(dq.outputs[0])
            if code(src) == "QUANTIZE" and graph.tensors[int(src.inputs[0])].type == schema.TensorType.FLOAT32 \
                    and len(consumers.get(int(src.outputs[0]), [])) == 1 and dq_out not in outputs:
                f = int(src.inputs[0])  # Q -> DQ: consumers read the float tensor directly
                for op in consumers.get(dq_out, []):
                    op.inputs = [f if int(i) == dq_out else int(i) for i in op.inputs]
                drop += [src, dq]
                changed.append(f"requantize {graph.tensors[f].name.decode()}")
                break
            chain, t = [], int(dq.inputs[0])
            while t in producer and code(producer[t]) in _LAYOUT_OPS and len(consumers.get(t, [])) == 1:
                chain.append(producer[t])
                t = int(producer[t].inputs[0])
            q = producer.get(t)
            if chain and dq_out in outputs and q is not None and code(q) == "QUANTIZE" \
                    and len(consumers.get(t, [])) == 1:
                chain.reverse()  # output layout ops on the float tensor
                chain[0].inputs[0] = q.inputs[0]
                for op in chain[:-1]:
                    tensor = graph.tensors[int(op.outputs[0])]
                    tensor.type, tensor.quantization = schema.TensorType.FLOAT32, None
                chain[-1].outputs[0] = dq_out
                drop += [q, dq]
                changed.append(f"output {graph.tensors[dq_out].name.decode()}")
                break
            if code(src) in _ELEMENTWISE and len(consumers.get(int(src.outputs[0]), [])) == 1:
                ins = [int(i) for i in src.inputs]
                qs = [producer.get(i) for i in ins]
                live = [k for k, op in enumerate(qs) if op is not None and code(op) == "QUANTIZE"
                        and len(consumers.get(ins[k], [])) == 1]
                consts = [k for k in range(len(ins)) if k not in live and is_const(ins[k])
                          and graph.tensors[ins[k]].type == schema.TensorType.INT8]
                if len(live) == 1 and len(live) + len(consts) == len(ins):
                    (k,) = live
                    src.inputs = [int(qs[k].inputs[0]) if n == k else float_const(ins[n]) for n in range(len(ins))]
                    src.outputs = [dq_out]
                    drop += [qs[k], dq]
                    changed.append(f"{code(src)} -> {graph.tensors[dq_out].name.decode()}")
                    break
        if not drop:
            break
        graph.operators = [op for op in graph.operators if all(op is not d for d in drop)]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), changed


def temp_work_dir(parent: str | Path) -> Path:
    """A fresh scratch folder next to the final artifacts (same file system, so renames are atomic)."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".export-", dir=parent))


_PERMS = {3: ([0, 1, 2], [0, 2, 1]), 4: ([0, 1, 2, 3], [0, 3, 1, 2]), 2: ([0, 1],), 1: ([0],)}


def _run_tflite(path: Path, x_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    """Raw outputs of a .tflite by tensor name (input quantized / outputs dequantized where int8)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    d = interp.get_input_details()[0]
    interp.set_tensor(d["index"], quantize_input(x_nhwc, d))
    interp.invoke()
    return {o["name"]: dequantize_output(interp.get_tensor(o["index"]), o) for o in interp.get_output_details()}


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
