"""GPU-delegate compatibility of a .tflite: TFLite's model analyzer plus an explicit op/rank check.

The analyzer (the engine of ``tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)``,
called through LiteRT) is run and its verdict recorded, but in the builds pinned here (LiteRT 2.3.0,
TF 2.21) it passes every graph we tried, including NON_MAX_SUPPRESSION_V4, TOPK_V2 and ARG_MAX, which
the GPU delegate does not run. So the verdict also requires every op to be in the GPU delegate's
supported set (``tensorflow/lite/tools/versioning/gpu_compatibility.cc``) and every tensor to be at
most 4-D (the delegate's limit).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

_ANALYZER_OK = "looks compatible with GPU delegate"

GPU_OPS = frozenset("""
ABS ADD ADD_N AVERAGE_POOL_2D BATCH_MATMUL CAST CEIL CONCATENATION CONV_2D COS CUMSUM DENSIFY DEPTH_TO_SPACE
DEPTHWISE_CONV_2D DEQUANTIZE DIV ELU EQUAL EXP FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GELU GREATER
GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGISTIC LSTM MAX_POOL_2D MAXIMUM MEAN
MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL ONE_HOT PACK PAD PADV2 POW PRELU QUANTIZE REDUCE_MAX REDUCE_MIN
REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT SELECT SELECT_V2
SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM
TANH TILE TRANSPOSE TRANSPOSE_CONV
""".split())


@dataclass
class GpuCompat:
    compatible: bool
    analyzer_compatible: bool  # the analyzer's own verdict
    issues: list[str] = field(default_factory=list)  # "op: reason" for each incompatible op

    def to_dict(self) -> dict:
        return asdict(self)


def check_gpu_compatibility(path: str | Path) -> GpuCompat:
    """Analyzer verdict plus op-set and rank checks; ``compatible`` only if all pass."""
    from ai_edge_litert import _pywrap_analyzer_wrapper as analyzer
    from ai_edge_litert.interpreter import Interpreter

    text = analyzer.ModelAnalyzer(str(path), True, True)
    issues = [ln.strip() for ln in text.splitlines() if "GPU COMPATIBILITY WARNING" in ln]
    interp = Interpreter(model_path=str(path))
    ranks = {t["index"]: len(t["shape"]) for t in interp.get_tensor_details()}
    for op in interp._get_ops_details():
        name = op["op_name"]
        if name not in GPU_OPS:
            issues.append(f"{name} (op {op['index']}): not supported by the GPU delegate")
            continue
        rank = max((ranks.get(int(i), 0) for i in [*op["inputs"], *op["outputs"]] if i >= 0), default=0)
        if rank > 4:
            issues.append(f"{name} (op {op['index']}): {rank}-D tensor (GPU delegate handles at most 4-D)")
    analyzer_ok = _ANALYZER_OK in text
    return GpuCompat(compatible=analyzer_ok and not issues, analyzer_compatible=analyzer_ok, issues=sorted(set(issues)))
