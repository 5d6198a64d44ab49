"""Detector + crop classifier -> a Triton Inference Server model repository (``mtnet export --formats triton``).

The repository is one ensemble, ``cascade``, over five models (each with its ``config.pbtxt``)::

    IMAGES (BYTES [N], encoded images)
      -> preprocess (Python: decode, letterbox, normalise)      -> images, scales
      -> detector   (ONNX, dynamic batch)                       -> boxes, scores (raw, per anchor)
      -> crop       (Python: decode + NMS, crops of sub-typed classes from the original images)
      -> classifier (ONNX, dynamic batch of crops)               -> probs
      -> assemble   (Python: fine labels)  -> BOXES [D, 4], SCORES [D], CATEGORY_IDS [D], IMAGE_INDEX [D]

The Python steps run mtnet's own decode / crop / relabel code (``mtnet.serve.triton_models``), so the
server answers exactly what ``mtnet.cascade.Cascade`` answers on the same ONNX files. ``onnx_backend``:
``python`` runs the two ONNX graphs with ONNX Runtime inside Triton's Python backend (the only backend of
the ``nvidia-pytriton`` wheel ``mtnet serve`` uses); ``onnxruntime`` declares them for Triton's ONNX
Runtime backend (NVIDIA's container). ``cascade.json`` holds the labels, thresholds and request limits.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from mtnet.cascade.backends import classifier_doc, load_classifier_model
from mtnet.checkpoint_io import load_model_from_checkpoint
from mtnet.data.fine import FineLabels
from mtnet.decode import NMS_IOU
from mtnet.errors import UserError
from mtnet.serve import triton_models

from .metadata import build_model_json
from .onnx import INPUT_NAME, export_onnx
from .pipeline import _swap_in
from .tflite import temp_work_dir

ENSEMBLE = "cascade"
ONNX_BACKENDS = ("python", "onnxruntime")
_MODELS_PACKAGE = Path(triton_models.__file__).parent


class TritonExportError(UserError):
    """The detector / classifier pair cannot be served as a cascade."""


@dataclass
class TritonOptions:
    conf: float = 0.25  # score threshold of detections (and of detector x classifier scores)
    iou: float = NMS_IOU
    max_det: int = 100
    multi_label: bool = False  # True: a detection may answer several classes (what mAP wants)
    max_images: int = 16  # images per request
    max_image_bytes: int = 8 << 20  # encoded bytes per image
    max_pixels: int = 4096 * 4096  # decoded pixels per image (decompression bombs)
    onnx_backend: str = "python"  # python | onnxruntime (see the module docstring)
    instances: int = 1  # instances of each model (Triton instance_group count)


def _dims(shape) -> str:
    return "[ " + ", ".join(str(d) for d in shape) + " ]"


def _tensor(name: str, dtype: str, shape) -> str:
    return f'  {{ name: "{name}" data_type: {dtype} dims: {_dims(shape)} }}'


def _config(name: str, inputs: list[str], outputs: list[str], *, backend: str | None = None,
            platform: str | None = None, instances: int = 1, extra: str = "") -> str:
    kind = f'backend: "{backend}"' if backend else f'platform: "{platform}"'
    sep = ",\n"
    text = (f'name: "{name}"\n{kind}\nmax_batch_size: 0\n'
            f"input [\n{sep.join(inputs)}\n]\noutput [\n{sep.join(outputs)}\n]\n")
    if platform != "ensemble":
        text += f"instance_group [ {{ kind: KIND_CPU count: {instances} }} ]\n"
    return text + extra


def _ensemble_step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
    maps = [f'      input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items()]
    maps += [f'      output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items()]
    return f'    {{\n      model_name: "{model}"\n      model_version: -1\n' + "\n".join(maps) + "\n    }"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _check_onnx(path: Path, model: torch.nn.Module, x: torch.Tensor, what: str) -> None:
    """ONNX Runtime against PyTorch on a real batch of 2 (the graphs are exported with a dynamic batch)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {INPUT_NAME: x.numpy()})
    model.deploy = True
    with torch.no_grad():
        ref = model(x)
    ref = ref if isinstance(ref, tuple | list) else (ref,)
    err = max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref, strict=True))
    if err > 1e-3:
        raise TritonExportError(f"{what}: ONNX Runtime differs from PyTorch by {err:.2e} (limit 1e-3)")


def export_triton(detector: str | Path, classifier: str | Path, out: str | Path, *,
                  options: TritonOptions | None = None) -> Path:
    """Write the repository to ``out`` (replaced atomically as a whole); returns ``out``."""
    opts = options or TritonOptions()
    if opts.onnx_backend not in ONNX_BACKENDS:
        raise TritonExportError(f"onnx_backend must be one of {ONNX_BACKENDS}, got {opts.onnx_backend!r}")
    det_model, cfg = load_model_from_checkpoint(detector)
    if list(det_model.tasks) != ["det"]:
        raise TritonExportError(f"{detector}: the cascade's detector must be a detection-only model, "
                                f"it has tasks {list(det_model.tasks)}")
    cls_model, state = load_classifier_model(classifier)
    fine = FineLabels.from_dict(state["fine"])
    missing = sorted(set(fine.split_coarse) - set(det_model.meta.det_category_ids))
    if missing:
        raise TritonExportError(f"{classifier} re-labels categories {missing} that {detector} does not detect")
    imgsz, size = cfg.data.imgsz, int(state["arch"]["input_size"])
    out = Path(out)
    stage = temp_work_dir(out.parent)
    try:
        gen = torch.Generator().manual_seed(0)
        det_doc = build_model_json(det_model, imgsz, source=str(detector))
        det_onnx = export_onnx(det_model, stage / "detector" / "1" / "model.onnx", imgsz, doc=det_doc, dynamic_batch=True)
        _check_onnx(det_onnx, det_model, torch.randn(2, 3, imgsz, imgsz, generator=gen), "detector")
        cls_onnx = export_onnx(cls_model, stage / "classifier" / "1" / "model.onnx", size, doc=classifier_doc(state),
                               dynamic_batch=True)
        _check_onnx(cls_onnx, cls_model, torch.randn(2, 3, size, size, generator=gen), "classifier")
        anchors = int(det_doc["anchors"]["count"])
        num_coarse, num_cls = len(det_model.meta.det_classes), int(state["arch"]["num_classes"])
        doc = {"detector": {"imgsz": imgsz, "category_ids": det_model.meta.det_category_ids,
                            "classes": det_model.meta.det_classes, "anchors": anchors},
               "classifier": {"imgsz": size, "context": state["context"], "classes": fine.classifier_names},
               "fine": fine.to_dict(), "decode": {"conf": opts.conf, "iou": opts.iou, "max_det": opts.max_det,
                                                  "multi_label": opts.multi_label},
               "limits": {"max_images": opts.max_images, "max_image_bytes": opts.max_image_bytes,
                          "max_pixels": opts.max_pixels}, "options": asdict(opts),
               "training_data": state["config"]["data_root"]}
        _write(stage / "cascade.json", json.dumps(doc, indent=2))
        _write_configs(stage, opts, imgsz, size, anchors, num_coarse, num_cls)
        for step in ("preprocess", "crop", "assemble"):
            (stage / step / "1").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_MODELS_PACKAGE / f"{step}.py", stage / step / "1" / "model.py")
        if opts.onnx_backend == "python":
            for model in ("detector", "classifier"):
                shutil.copyfile(_MODELS_PACKAGE / "onnx_runner.py", stage / model / "1" / "model.py")
        (stage / ENSEMBLE / "1").mkdir(parents=True, exist_ok=True)
        _write(stage / "README.md", _readme(opts))
        _swap_in(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out


def _write_configs(root: Path, opts: TritonOptions, imgsz: int, size: int, anchors: int, num_coarse: int,
                   num_cls: int) -> None:
    n = opts.instances
    onnx_kind = {"backend": "python"} if opts.onnx_backend == "python" else {"platform": "onnxruntime_onnx"}
    configs = {
        "preprocess": _config("preprocess", [_tensor("IMAGES", "TYPE_STRING", [-1])],
                              [_tensor("images", "TYPE_FP32", [-1, 3, imgsz, imgsz]), _tensor("scales", "TYPE_FP64", [-1])],
                              backend="python", instances=n),
        "detector": _config("detector", [_tensor(INPUT_NAME, "TYPE_FP32", [-1, 3, imgsz, imgsz])],
                            [_tensor("boxes", "TYPE_FP32", [-1, anchors, 4]),
                             _tensor("scores", "TYPE_FP32", [-1, anchors, num_coarse])], instances=n, **onnx_kind),
        "crop": _config("crop", [_tensor("IMAGES", "TYPE_STRING", [-1]), _tensor("boxes", "TYPE_FP32", [-1, anchors, 4]),
                                 _tensor("scores", "TYPE_FP32", [-1, anchors, num_coarse]), _tensor("scales", "TYPE_FP64", [-1])],
                        [_tensor("det_boxes", "TYPE_FP32", [-1, 4]), _tensor("det_scores", "TYPE_FP32", [-1]),
                         _tensor("det_labels", "TYPE_INT64", [-1]), _tensor("det_image", "TYPE_INT32", [-1]),
                         _tensor("crops", "TYPE_FP32", [-1, 3, size, size])], backend="python", instances=n),
        "classifier": _config("classifier", [_tensor(INPUT_NAME, "TYPE_FP32", [-1, 3, size, size])],
                              [_tensor("probs", "TYPE_FP32", [-1, num_cls])], instances=n, **onnx_kind),
        "assemble": _config("assemble", [_tensor("det_boxes", "TYPE_FP32", [-1, 4]), _tensor("det_scores", "TYPE_FP32", [-1]),
                                         _tensor("det_labels", "TYPE_INT64", [-1]), _tensor("det_image", "TYPE_INT32", [-1]),
                                         _tensor("probs", "TYPE_FP32", [-1, num_cls])],
                            [_tensor(*t) for t in OUTPUTS], backend="python", instances=n),
    }
    steps = [
        _ensemble_step("preprocess", {"IMAGES": "IMAGES"}, {"images": "det_input", "scales": "scales"}),
        _ensemble_step("detector", {INPUT_NAME: "det_input"}, {"boxes": "raw_boxes", "scores": "raw_scores"}),
        _ensemble_step("crop", {"IMAGES": "IMAGES", "boxes": "raw_boxes", "scores": "raw_scores", "scales": "scales"},
                       {k: k for k in ("det_boxes", "det_scores", "det_labels", "det_image", "crops")}),
        _ensemble_step("classifier", {INPUT_NAME: "crops"}, {"probs": "probs"}),
        _ensemble_step("assemble", {k: k for k in ("det_boxes", "det_scores", "det_labels", "det_image", "probs")},
                       {t[0]: t[0] for t in OUTPUTS}),
    ]
    configs[ENSEMBLE] = _config(ENSEMBLE, [_tensor("IMAGES", "TYPE_STRING", [-1])], [_tensor(*t) for t in OUTPUTS],
                                platform="ensemble",
                                extra="ensemble_scheduling {\n  step [\n" + ",\n".join(steps) + "\n  ]\n}\n")
    for name, text in configs.items():
        _write(root / name / "config.pbtxt", text)


OUTPUTS = [("BOXES", "TYPE_FP32", [-1, 4]), ("SCORES", "TYPE_FP32", [-1]), ("CATEGORY_IDS", "TYPE_INT32", [-1]),
           ("IMAGE_INDEX", "TYPE_INT32", [-1])]


def _readme(opts: TritonOptions) -> str:
    onnx_note = ("The detector and classifier run with ONNX Runtime inside Triton's Python backend "
                 "(`backend: \"python\"` + `1/model.py`)." if opts.onnx_backend == "python" else
                 "The detector and classifier run on Triton's ONNX Runtime backend (`platform: \"onnxruntime_onnx\"`).")
    return f"""# mtnet cascade: Triton model repository

Ensemble `{ENSEMBLE}`: encoded images in, fine-grained detections out.

| tensor | type | shape | meaning |
|---|---|---|---|
| IMAGES (in) | BYTES | [N] | encoded JPEG/PNG images, 1 <= N <= {opts.max_images}, each <= {opts.max_image_bytes} bytes |
| BOXES | FP32 | [D, 4] | x0, y0, x1, y1 in the pixels of the image sent |
| SCORES | FP32 | [D] | detector score x classifier probability (sub-typed classes) or detector score |
| CATEGORY_IDS | INT32 | [D] | fine category ids (names in `cascade.json`, `fine`) |
| IMAGE_INDEX | INT32 | [D] | which of the N images the row belongs to |

Steps: `preprocess` -> `detector` -> `crop` -> `classifier` -> `assemble`; labels, thresholds and limits
are in `cascade.json`. {onnx_note}

## Run it here
    mtnet serve {{this folder}}            # HTTP :8000, gRPC :8001; builds the serving environment once

## Run it in NVIDIA's Triton container
The Python steps import mtnet's NumPy code, and the Python backend needs numpy < 2:

    docker run --rm -p8000:8000 -p8001:8001 -v $PWD:/models -v /path/to/mtnet:/mtnet \\
      nvcr.io/nvidia/tritonserver:<yy.mm>-py3 \\
      bash -c "pip install 'numpy<2' onnxruntime opencv-python-headless pillow && \\
               pip install --no-deps /mtnet && tritonserver --model-repository=/models"

(`/path/to/mtnet`: this mtnet release's source folder or wheel; `--no-deps` keeps the container's numpy < 2.)

With `mtnet export --formats triton --triton-onnx-backend onnxruntime` the two ONNX models use the
container's ONNX Runtime backend instead (then `onnxruntime` need not be installed). Either way a client
sends BYTES, e.g. with `tritonclient`: `InferInput("IMAGES", [N], "BYTES")` and
`set_data_from_numpy(np.array([jpeg_bytes, ...], dtype=object))`.
"""
