"""``mtnet export``: checkpoint -> every requested artifact, each checked, in one atomic folder.

Stages: ONNX -> TFLite (onnx2tf; int8 calibrated on a stratified representative set) -> CoreML ->
checks (parity vs PyTorch on val images, GPU-delegate analyzer, COCO accuracy of the artifact itself
through the same evaluator and decoder, host latency with LiteRT) -> ``model.json``, ``report.json``,
``report.md``. Everything is built in a hidden scratch folder beside the destination and renamed into
place at the end, so an interrupted export leaves nothing under the final name.
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mtnet.calibration import QuantConfig, accuracy_drop, calibration_images, select_representative
from tqdm import tqdm

from mtnet.errors import MtnetWarning, UserError

from .metadata import DEFAULT_AUTHOR, DEFAULT_LICENSE
from .nms import NMSOptions

FORMATS = ("onnx", "tflite", "coreml")
PRECISIONS = ("fp32", "fp16", "int8", "dynamic")  # dynamic: int8 weights, float activations (onnx2tf)
# fp32/fp16 parity gates of the acceptance criteria (decoded outputs, real val images, vs PyTorch fp32). fp32:
# each output within 16 float32 spacings at its largest |value|, or 1e-6 relative (export.parity.ulp_gate):
# PyTorch fp32 is itself ~10 ulp from the model in float64 on a trained model's boxes
FP32_MAX_ULP = 16
FP32_MAX_REL = 1e-6
FP16_MAX_REL = 1e-2


@dataclass
class ExportOptions:
    formats: tuple[str, ...] = ("onnx", "tflite", "coreml")
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    imgsz: int | None = None  # default: the checkpoint's training size
    seg_output: str = "logits"  # or "argmax"
    quant: QuantConfig = field(default_factory=QuantConfig)
    data_root: str | None = None  # a COCO or VOC folder to calibrate and score on; default: the checkpoint's data
    parity_images: int = 8
    evaluate: bool = True
    bench_threads: tuple[int, ...] = (1, 2)
    bench_runs: int = 50  # 0 disables latency
    progress: bool = True
    nms: NMSOptions | None = None  # in-graph NMS (``--nms``) for ONNX / TFLite; None: raw decoded outputs
    # ``--target mediapipe``: also the MediaPipe Tasks files (export.mediapipe), the detector's in-graph NMS with
    # these options (``--nms-*``); None: no MediaPipe files
    mediapipe: NMSOptions | None = None
    author: str = DEFAULT_AUTHOR  # model_info / TFLite metadata author (``--author``)
    license: str = DEFAULT_LICENSE  # model_info / TFLite metadata license (``--license``)

    def validate(self) -> None:
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise UserError(f"unsupported format(s) {bad or '(none)'}: choose from {', '.join(FORMATS)}")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            raise UserError(f"unsupported precision(s) {bad or '(none)'}: choose from {', '.join(PRECISIONS)}")
        if self.imgsz is not None and (self.imgsz < 64 or self.imgsz % 32):
            raise UserError(f"--imgsz must be a multiple of 32 and >= 64, got {self.imgsz}")
        if self.seg_output not in ("logits", "argmax"):
            raise UserError(f"--seg-output must be 'logits' or 'argmax', got {self.seg_output!r}")
        for nms in (self.nms, self.mediapipe):
            if nms is not None:
                nms.validate()


@dataclass
class Artifact:
    file: str
    format: str
    precision: str
    backend: str | None  # "onnx" / "tflite" when it can run here, None for CoreML on Linux
    size_mb: float = 0.0
    metrics: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None
    parity_gate: dict[str, Any] | None = None  # the acceptance bound for this precision and whether it holds
    parity_fp64: dict[str, Any] | None = None  # fp32 artifacts: against the model run in float64
    gpu_compatible: bool | None = None
    gpu_analyzer_compatible: bool | None = None  # TFLite analyzer's own verdict (see export.compat)
    gpu_issues: list[str] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 1e6, 3)


def export_checkpoint(checkpoint: str | Path, out_root: str | Path = "exports", *, name: str | None = None,
                      options: ExportOptions | None = None) -> Path:
    """Export ``checkpoint`` into ``out_root/<name>/`` and return that folder."""
    from mtnet.checkpoint_io import load_model_from_checkpoint
    from mtnet.data.build import open_split

    opts = options or ExportOptions()
    opts.validate()
    model, cfg = load_model_from_checkpoint(checkpoint)
    model.seg_output = opts.seg_output
    if opts.nms is not None and "det" not in model.tasks:
        raise UserError(f"--nms needs the detection task; {checkpoint} has tasks {', '.join(model.tasks)}")
    imgsz = opts.imgsz or cfg.data.imgsz
    notes: list[str] = []  # export-wide, for report.json / report.md
    if imgsz != cfg.data.imgsz:
        notes.append(_size_note(checkpoint, imgsz, cfg.data.imgsz))
        warnings.warn(notes[-1], MtnetWarning, stacklevel=2)
    name = name or Path(checkpoint).resolve().parent.name
    val = open_split(cfg, "val", data_root=opts.data_root, meta=model.meta)
    final = Path(out_root) / name
    final.parent.mkdir(parents=True, exist_ok=True)
    from .tflite import temp_work_dir

    scratch = temp_work_dir(final.parent)
    stage_dir = scratch / name
    stage_dir.mkdir()
    stages = ["onnx"] + (["tflite"] if "tflite" in opts.formats else []) + (
        ["mediapipe"] if opts.mediapipe is not None else []) + (
        ["coreml"] if "coreml" in opts.formats else []) + ["checks", "report"]
    bar = tqdm(total=len(stages), desc="export", unit="stage", disable=not opts.progress)
    try:
        report = _run(model, cfg, imgsz, str(checkpoint), opts, val, stage_dir, scratch, bar)
        report["notes"] = notes
        from .report import write_reports

        bar.set_description("export: report")
        write_reports(report, stage_dir)
        bar.update()
        _swap_in(stage_dir, final)
    finally:
        bar.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def _size_note(checkpoint: str | Path, imgsz: int, trained: int) -> str:
    """The warning for an export at another input size than training: the model still runs, but its accuracy
    usually drops (the quickstart's box AP50 fell from 0.80 at 192 px to 0.52 at 320 px)."""
    return (f"exporting at {imgsz} px, but {checkpoint} was trained at {trained} px: accuracy usually drops at "
            f"another input size (report.md has the accuracy at {imgsz} px); leave out --imgsz to export at "
            f"{trained} px")


def _swap_in(staged: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staged, final)
    shutil.rmtree(old, ignore_errors=True)


def _run(model, cfg, imgsz: int, source: str, opts: ExportOptions, val, out: Path,
         scratch: Path, bar) -> dict[str, Any]:
    from mtnet.data.build import describe_split
    from mtnet.infer.predictor import TorchBackend
    from mtnet.modeljson import MODEL_JSON, write_model_json

    from .metadata import build_model_json
    from .nms import NMSDeploy
    from .onnx import OPSET, export_onnx

    # the graph exported to ONNX / TFLite: the deploy model, or the deploy model + in-graph NMS
    graph = NMSDeploy(model, imgsz, opts.nms) if opts.nms is not None else model
    doc = build_model_json(graph, imgsz, source=source, author=opts.author, license=opts.license)
    artifacts: list[Artifact] = []

    bar.set_description("export: onnx")
    onnx_path = export_onnx(graph, out / "model.onnx" if "onnx" in opts.formats else scratch / "model.onnx",
                            imgsz, doc=doc)
    if "onnx" in opts.formats:
        artifacts.append(Artifact("model.onnx", "onnx", "fp32", "onnx"))
    bar.update()

    probe_images = _val_images(val, imgsz, opts.parity_images)
    calib_info = None
    if "tflite" in opts.formats:
        bar.set_description("export: tflite (onnx2tf)")
        points = _int8_points(model, source, opts, probe_images, scratch)
        tfl, calib_info = _export_tflite(onnx_path, imgsz, opts, cfg, model.meta, out, scratch, doc, probe_images,
                                         points)
        artifacts += tfl
        bar.update()
    if opts.mediapipe is not None:
        bar.set_description("export: mediapipe (onnx2tf)")
        from .mediapipe import export_mediapipe

        for file in export_mediapipe(model, imgsz, opts.mediapipe, out, scratch, doc, probe_images, author=opts.author,
                                     license=opts.license):
            artifacts.append(Artifact(file, "tflite", "fp32", None, notes=[
                "MediaPipe Tasks file (input pixel / 255, normalisation in-graph); checked with MediaPipe's Tasks "
                "API by tests/test_mediapipe.py; `mtnet predict`/`eval` read it too"]))
        bar.update()
    if "coreml" in opts.formats:
        bar.set_description("export: coreml")
        # CoreML gets the raw deploy graph; with --nms, CoreML's own NMS model after it (_export_coreml)
        coreml_doc = (build_model_json(model, imgsz, source=source, author=opts.author, license=opts.license)
                      if opts.nms is not None else doc)
        artifacts += _export_coreml(model, imgsz, opts, out, coreml_doc)
        bar.update()

    bar.set_description("export: checks")
    reference = TorchBackend(graph, imgsz)
    from .parity import Float64Reference, parity

    # the rounding noise of PyTorch fp32 itself; not for NMS graphs, whose kept set is discrete (a score that
    # differs in the 7th digit can swap which of two overlapping boxes survives)
    exact = Float64Reference(graph, imgsz) if opts.nms is None else None
    torch_fp32_vs_fp64 = parity(exact, reference, probe_images) if exact is not None else None
    torch_metrics = _evaluate(reference, val, opts) if opts.evaluate else None
    for art in artifacts:
        _check(art, out / art.file, reference, probe_images, val, opts, exact, torch_fp32_vs_fp64)
    fp32 = next((a for a in artifacts if a.format == "tflite" and a.precision == "fp32"), None)
    for art in artifacts:
        if art.format == "tflite" and art.precision in ("int8", "dynamic") and art.metrics and fp32 and fp32.metrics:
            art.metrics["drop_vs_fp32"] = accuracy_drop(fp32.metrics, art.metrics)
    sensitivity = None
    if calib_info and calib_info.get("sensitivity_files") and opts.evaluate and fp32 and fp32.metrics:
        from .sensitivity import measure_sensitivity

        sensitivity = measure_sensitivity(calib_info.pop("sensitivity_files"), fp32.metrics, onnx_path, doc, val,
                                          probe_images, scratch, lambda b: _evaluate(b, val, opts))
    bar.update()
    write_model_json(out / MODEL_JSON, doc)
    return {
        "model": {"checkpoint": source, "imgsz": imgsz, "train_imgsz": cfg.data.imgsz, "tasks": list(model.tasks),
                  "width": cfg.model.width,
                  "params": int(sum(p.numel() for p in model.parameters())), "onnx_opset": OPSET,
                  "seg_output": opts.seg_output,
                  "val_split": f"{describe_split(cfg, 'val', data_root=opts.data_root)} ({len(val)} images)",
                  "pytorch_metrics": torch_metrics, "nms": doc.get("nms"),
                  "pytorch_fp32_vs_float64": torch_fp32_vs_fp64, "parity_images": len(probe_images)},
        "calibration": calib_info,
        "int8_sensitivity": sensitivity,
        "artifacts": [a.__dict__ for a in artifacts],
    }


def _val_images(val, imgsz: int, num: int) -> np.ndarray:
    from mtnet.data.preprocess import letterbox

    return np.stack([letterbox(val.load(i).image, imgsz)[0] for i in range(min(num, len(val)))])


def _int8_points(model, checkpoint: str, opts: ExportOptions, probe_images: np.ndarray, scratch: Path) -> dict | None:
    """The quantizer's ``points`` arguments (QAT ranges, sensitivity, float branches), or None for plain PTQ."""
    q = opts.quant
    if "int8" not in opts.precisions or q.method == "dynamic-range" or not (
            q.method == "qat" or q.sensitivity or q.float_branches):
        return None
    import torch
    from mtnet.calibration.qat import capture_points, load_qat_section

    from mtnet.data.preprocess import normalize_nhwc

    from .int8_points import save_points

    known = ("backbone", "neck", *model.tasks)
    bad = [b for b in q.float_branches if b not in known]
    if bad:
        raise UserError(f"--int8-float: unknown branch(es) {bad}: choose from {', '.join(known)}")
    section = load_qat_section(checkpoint) if q.method == "qat" else None
    probe = normalize_nhwc(probe_images[:1]).astype(np.float32)
    acts = capture_points(model.eval(), torch.from_numpy(np.ascontiguousarray(probe.transpose(0, 3, 1, 2))))
    path = save_points(scratch / "points.npz", probe, {k: v.numpy() for k, v in acts.items()},
                       section["ranges"] if section else None)
    return {"points_npz": str(path), "qat": section is not None, "sensitivity": q.sensitivity,
            "float_branches": list(q.float_branches), "qat_section": section}


def _export_tflite(onnx_path: Path, imgsz: int, opts: ExportOptions, cfg, meta, out: Path,
                   scratch: Path, doc: dict, probe_images: np.ndarray,
                   points: dict | None = None) -> tuple[list[Artifact], dict | None]:
    from mtnet.data.build import describe_split, open_split
    from mtnet.data.preprocess import normalize_nhwc

    from .nms import nms_ops
    from .tflite import ConversionError, convert_onnx_to_tflite, finalize_tflite

    q = opts.quant
    calib, calib_info = None, None
    if "int8" in opts.precisions and q.method in ("full-int8", "qat"):
        train = open_split(cfg, "train", data_root=opts.data_root, meta=meta)
        cov = select_representative(train, min(q.num_images, len(train)), seed=q.seed, tasks=cfg.model.tasks)
        calib = calibration_images(train, cov.indices, imgsz)
        calib_info = {"method": q.method, "num_images": len(cov.indices),
                      "split": describe_split(cfg, "train", data_root=opts.data_root),
                      "int8_io": q.int8_io, "quant_type": q.quant_type, "coverage": cov.__dict__,
                      **({"float_branches": list(q.float_branches)} if q.float_branches else {})}
    elif "int8" in opts.precisions:
        calib_info = {"method": q.method, "num_images": 0}
    # with --nms the float tail is everything after the last convs up to the NMS outputs (decode + NMS)
    tail = tuple(o["name"] for o in doc["outputs"] if o.get("float_tail"))
    qat_section = (points or {}).pop("qat_section", None)
    conv = convert_onnx_to_tflite(onnx_path, scratch / "onnx2tf", calibration=calib, quant_type=q.quant_type,
                                  float_tail=tail, points=points)
    files = conv.files
    if conv.points is not None:
        from .sensitivity import points_summary

        calib_info.update(points_summary(conv.points, files["int8"], qat_section))
    nms_note = None
    if opts.nms is not None:
        found = nms_ops(files["float32"])
        if not found:
            raise ConversionError("onnx2tf wrote no NON_MAX_SUPPRESSION op for --nms")
        doc["nms"]["tflite_ops"] = found  # read back from the converted file's op codes
        nms_note = (f"in-graph NMS as builtin {', '.join(found)} (with TOPK_V2, ARG_MAX, GATHER): not GPU-delegate "
                    "compatible by design; export without --nms for a fully delegated graph")
    if conv.float_nodes:
        doc["int8_float_layers"] = {
            "outputs": list(tail), "ops": conv.float_nodes, "op_types": conv.float_op_types,
            "why": "box/keypoint decode (softplus, x stride, + grid, clip) after the last conv stays float32: int8 PTQ "
                   "calibrated the distances tensor with the range of its x stride product (3.2-stride steps, boxes "
                   "~50 px off); a few element-wise ops on [1, A, 4|51], builtin and GPU-delegate compatible"
                   + ("; with --nms the NMS tail (top-k, gathers, NMS) is float32 too" if opts.nms is not None else "")}
    if q.float_branches and conv.points is not None:
        doc["int8_float_layers"]["branches"] = {
            "branches": list(q.float_branches), "ops": conv.points["float_branches"]["ops"],
            "why": "kept float32 on request (--int8-float): report.json int8_sensitivity has each branch's int8 drop"}
    probe = np.ascontiguousarray(normalize_nhwc(probe_images[:1]).transpose(0, 3, 1, 2))
    wanted = {"fp32": ("float32", "model_float32.tflite"), "fp16": ("float16", "model_float16.tflite"),
              "dynamic": ("dynamic_range", "model_dynamic_range.tflite")}
    if "int8" in opts.precisions:
        variant = "dynamic_range" if q.method == "dynamic-range" else ("int8_io" if q.int8_io else "int8")
        wanted["int8"] = (variant, "model_int8.tflite")
        if variant == "int8_io":
            from .metadata import tflite_io

            qin = tflite_io(files["int8_io"])["inputs"][0]["quantization"]
            doc["int8_input"] = {
                "file": "model_int8.tflite", "dtype": "int8", **qin,
                "how": "normalise as in input.preprocess, then q = clip(round(x / scale) + zero_point, -128, 127)",
                "outputs": "float32 (boxes/keypoints from the float32 decode tail, in pixels)"}
    artifacts = []
    for precision in opts.precisions:
        variant, filename = wanted[precision]
        io = finalize_tflite(files[variant], out / filename, onnx_path, probe, doc)
        art = Artifact(filename, "tflite", precision, "tflite")
        art.notes.append(f"variant: {variant}; input {io['inputs'][0]['dtype']} NHWC")
        if nms_note:
            art.notes.append(nms_note)
        if variant == "int8" and conv.float_nodes:
            art.notes.append("boxes/keypoints decode after the last conv runs in float32 (model.json int8_float_layers)")
        if precision == "int8" and calib_info and calib_info.get("qat"):
            qi = calib_info["qat"]
            art.notes.append(f"quantisation-aware trained: {qi['ranges_set']} of {qi['points']} activation ranges from "
                             f"the QAT run ({qi['ranges_in_artifact']} int8 tensors carry them), weights on the QAT int8 "
                             f"grid, the rest calibrated; route: {qi['route']}")
        elif variant == "int8_io":
            art.notes.append("int8 input (model.json int8_input), float32 outputs: the boxes/keypoints decode after the "
                             "last conv runs in float32 (model.json int8_float_layers); int8 outputs are not offered "
                             "(keypoints mix pixels and [0, 1] visibilities: one int8 scale cannot hold both)")
        artifacts.append(art)
    return artifacts, calib_info


def _export_coreml(model, imgsz: int, opts: ExportOptions, out: Path, doc: dict) -> list[Artifact]:
    from .coreml import convert_coreml, convert_coreml_nms, quantize_weights_int8, save_mlpackage

    note = "CoreML runs only on Apple platforms: converted and inspected here, not run"
    int8 = "int8" in opts.precisions
    if opts.nms is not None:  # detection through coremltools' NonMaximumSuppression model (Vision observations)
        nms = opts.nms
        doc = {**doc, "coreml_nms": {"model": "coremltools NonMaximumSuppression (pipeline)", "iou": nms.iou,
                                     "conf": nms.conf, "class_aware": True,
                                     "thresholds_at_run_time": ["iouThreshold", "confidenceThreshold"]}}
        note += ("; detection through a pipeline with CoreML's NonMaximumSuppression model (Vision returns "
                 "VNRecognizedObjectObservation; thresholds are optional inputs)")
        mlmodel = convert_coreml_nms(model, imgsz, doc, iou=nms.iou, conf=nms.conf)
        quantized = convert_coreml_nms(model, imgsz, doc, iou=nms.iou, conf=nms.conf, int8_weights=True) if int8 else None
    else:
        mlmodel = convert_coreml(model, imgsz, doc)
        quantized = quantize_weights_int8(mlmodel, doc) if int8 else None
    save_mlpackage(mlmodel, out / "model.mlpackage")
    arts = [Artifact("model.mlpackage", "coreml", "fp16", None, notes=[note])]
    if quantized is not None:
        save_mlpackage(quantized, out / "model_int8w.mlpackage")
        arts.append(Artifact("model_int8w.mlpackage", "coreml", "int8w", None, notes=[note]))
    return arts


def _evaluate(backend, val, opts: ExportOptions) -> dict[str, Any]:
    from mtnet.eval.evaluator import evaluate
    from mtnet.infer.predictor import Predictor
    from mtnet.tasks import metric_keys

    metrics = evaluate(Predictor(backend, conf=0.001, multi_label=True), val, progress=False)
    return {k: metrics.get(k) for k in metric_keys(backend.tasks)} | {"num_images": metrics["num_images"]}


def _check(art: Artifact, path: Path, reference, probe_images: np.ndarray, val, opts: ExportOptions,
           exact=None, torch_rounding: dict | None = None) -> None:
    from mtnet.infer.backends import load_backend

    from .parity import parity, ulp_gate, within

    art.size_mb = _size_mb(path)
    if art.backend is None:
        return
    backend = load_backend(path)
    art.parity = parity(reference, backend, probe_images)
    if art.precision == "fp32":
        art.parity_gate = ulp_gate(art.parity, ulps=FP32_MAX_ULP, max_rel=FP32_MAX_REL, own_rounding=torch_rounding)
        if exact is not None:
            art.parity_fp64 = parity(exact, backend, probe_images)
    elif art.precision == "fp16":
        art.parity_gate = {"max_rel": FP16_MAX_REL, "passed": within(art.parity, max_rel=FP16_MAX_REL)}
    if opts.evaluate:
        art.metrics = _evaluate(backend, val, opts)
    if art.format != "tflite":
        return
    from .compat import check_gpu_compatibility

    compat = check_gpu_compatibility(path)
    art.gpu_compatible, art.gpu_issues = compat.compatible, compat.issues
    art.gpu_analyzer_compatible = compat.analyzer_compatible
    if opts.bench_runs > 0:
        from mtnet.bench.host import benchmark_tflite

        for t in opts.bench_threads:
            rec = benchmark_tflite(path, threads=t, runs=opts.bench_runs, warmup=5)
            art.latency_ms[str(t)] = round(rec.median_ms, 3)
