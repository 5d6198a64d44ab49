"""``report.json`` (read by the Android profiling tools) and ``report.md`` (read by people)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mtnet.fileio import atomic_write
from mtnet.tasks import metric_keys


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _parity_cell(parity: dict | None) -> str:
    if not parity:
        return "–"
    parts = []
    for name, s in parity.items():
        if "max_abs" in s:
            parts.append(f"{name} {s['max_abs']:.2g} ({s['max_rel']:.1e} rel)")
        elif name == "num_detections":
            parts.append(f"{name} {100 * s['label_mismatch']:.0f}% of images differ")
        else:
            parts.append(f"{name} {100 * s['label_mismatch']:.2f}% px differ")
    return "; ".join(parts)


def _float_outputs(parity: dict | None) -> dict[str, dict]:
    return {k: v for k, v in (parity or {}).items() if "max_abs" in v}


def _abs_cells(parity: dict | None) -> str:
    return ", ".join(f"{name} {s['max_abs']:.2g}" for name, s in _float_outputs(parity).items())


def _ulp_cells(gate: dict[str, Any]) -> str:
    """Per output: measured max abs against its bound, and in ulp."""
    return ", ".join(f"{name} {o['max_abs']:.2g} {'≤' if o['passed'] else '>'} {o['bound']:.2g} ({o['ulp']:.0f} ulp)"
                     for name, o in gate["outputs"].items())


def _parity_gates(report: dict[str, Any]) -> list[str]:
    """The acceptance bounds (fp32 in ulp per output, fp16 max rel) per artifact, with fp32's float64 context."""
    arts = [a for a in report["artifacts"] if a.get("parity_gate")]
    if not arts:
        return []
    m = report["model"]
    lines = ["", f"**Parity gates** ({m.get('parity_images', '?')} val images, decoded outputs vs PyTorch fp32, "
             "boxes/keypoints in input pixels; ulp = the float32 spacing at an output's magnitude (its largest |value|, "
             "at least 1), e.g. 1.5e-5 for 128-256 px, 1.2e-7 for scores):"]
    for a in arts:
        g = a["parity_gate"]
        verdict = "met" if g["passed"] else "NOT met"
        if "ulps" in g:
            line = (f"- {a['file']}: every output within {g['ulps']:g} ulp of its magnitude, {g['max_rel']:g} "
                    f"relative or {g['rounding_factor']:g}x PyTorch fp32's own float64 distance, {verdict}: "
                    f"{_ulp_cells(g)}")
            if a.get("parity_fp64"):
                line += f"; vs the model in float64: {_abs_cells(a['parity_fp64'])}"
        else:
            worst = max((s["max_rel"] for s in _float_outputs(a["parity"]).values()), default=0.0)
            line = f"- {a['file']}: max rel ≤ {g['max_rel']:g} {verdict} (worst {worst:.2g})"
        lines.append(line)
    floor = m.get("pytorch_fp32_vs_float64")
    if floor:
        lines.append(f"- PyTorch fp32 itself vs the model in float64: {_abs_cells(floor)}.")
    if any("ulps" in a["parity_gate"] for a in arts):
        lines.append("- Why ulp and not a fixed absolute bound: each float32 implementation rounds differently "
                     "(summation order through the convolutions) and the box / keypoint decode multiplies raw-output "
                     "differences by the stride (up to 32), so two correct fp32 results differ by about the sum of "
                     "their distances to float64 above, a few ulp of the output's magnitude; well beyond that is a "
                     "conversion error.")
    return lines


def _trained_at(model: dict[str, Any]) -> str:
    trained = model.get("train_imgsz")
    return "" if trained in (None, model["imgsz"]) else f" (**trained at {trained}x{trained}**: see Notes)"


def _int8_points_lines(report: dict[str, Any]) -> list[str]:
    """QAT provenance of the int8 file and the per-branch int8 sensitivity table."""
    lines: list[str] = []
    qat = (report.get("calibration") or {}).get("qat")
    if qat:
        lines += ["", f"**Quantisation-aware training** ({qat['epochs']} epochs from `{qat['source']}`; route: "
                  f"{qat['route']}): {qat['ranges_set']} of {qat['points']} activation ranges set from the QAT run, "
                  f"{qat['ranges_in_artifact']} int8 tensors of model_int8.tflite carry them (scale = (max - min) / 255); "
                  "weights are on the QAT run's per-channel int8 grid; unbound tensors (reshapes, resizes, concats) "
                  "are calibrated."]
    sens = report.get("int8_sensitivity")
    if sens:
        keys = sorted({k for r in sens["branches"].values() for k in r["drop_vs_fp32"]["points"]})
        lines += ["", f"**int8 sensitivity per branch** (only that branch int8, the rest float32; points lost vs "
                  f"model_float32.tflite, positive = worse; budget {sens['budget']}):", "",
                  "| int8 branch | int8 convs | " + " | ".join(keys) + " | within budget |",
                  "|---|---|" + "---|" * (len(keys) + 1)]
        for b, r in sens["branches"].items():
            pts = r["drop_vs_fp32"]["points"]
            lines.append(f"| {b} | {r['int8_convs']} of {r['convs']} | " + " | ".join(f"{pts[k]:+.2f}" if k in pts else "–" for k in keys)
                         + f" | {'yes' if r['drop_vs_fp32']['passed'] else 'NO'} |")
        lines += ["", sens["advice"]]
    floats = (report.get("calibration") or {}).get("float_branches")
    if floats:
        lines += ["", f"Kept float32 in model_int8.tflite on request: {', '.join(floats)} (`--int8-float`)."]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    m = report["model"]
    lines = [f"# Export report: `{m['checkpoint']}`", "",
             f"Input {m['imgsz']}x{m['imgsz']}{_trained_at(m)}, tasks {', '.join(m['tasks'])}, width {m['width']}, "
             f"{m['params'] / 1e6:.2f} M parameters, ONNX opset {m['onnx_opset']}, seg output {m['seg_output']}.",
             f"Accuracy: each task's headline metrics (%) on {m['val_split']}, same evaluator "
             "and decoder for every artifact (conf 0.001, multi-label).", ""]
    nms = m.get("nms")
    if nms:
        lines[-1:-1] = [
            f"In-graph NMS (`--nms`): builtin {', '.join(nms.get('tflite_ops') or [nms['expected_tflite_op']])} in the "
            f".tflite files, ONNX NonMaxSuppression in model.onnx; best class per anchor, top-{nms['candidates']} "
            f"candidates, class-aware IoU {nms['iou']}, score > {nms['conf']}, at most {nms['max_det']} detections. "
            f"Accuracy here goes through that NMS (single-label, score > {nms['conf']}), so it is lower than an export "
            "without --nms evaluated at conf 0.001 multi-label. NMS graphs are not GPU-delegate compatible by design "
            "(NON_MAX_SUPPRESSION_V4, TOPK_V2, ARG_MAX run on the CPU); the GPU check is for exports without --nms."]
    keys = metric_keys(m["tasks"])
    header = "| artifact | precision | size MB | " + " | ".join(keys) + " | parity vs PyTorch (max abs) | GPU delegate | median ms 1T | median ms 2T |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    pm = m.get("pytorch_metrics") or {}
    lines.append("| PyTorch (reference) | fp32 | – | " + " | ".join(_pct(pm.get(k)) for k in keys) + " | – | – | – | – |")
    for a in report["artifacts"]:
        metrics = a.get("metrics") or {}
        gpu = "–" if a["gpu_compatible"] is None else ("yes" if a["gpu_compatible"] else "NO: " + "; ".join(a["gpu_issues"]))
        lat = a.get("latency_ms") or {}
        lines.append(f"| {a['file']} | {a['precision']} | {a['size_mb']:.2f} | "
                     + " | ".join(_pct(metrics.get(k)) for k in keys)
                     + f" | {_parity_cell(a.get('parity'))} | {gpu} | {lat.get('1', '–')} | {lat.get('2', '–')} |")
    drops = [(a["file"], a["metrics"]["drop_vs_fp32"]) for a in report["artifacts"]
             if (a.get("metrics") or {}).get("drop_vs_fp32")]
    for file, d in drops:
        pts = ", ".join(f"{k} {v:+.2f}" for k, v in d["points"].items())
        lines += ["", f"**{file} vs model_float32.tflite** (points lost, positive = worse): {pts} — "
                  f"{'within' if d['passed'] else 'OUTSIDE'} the {d['budget']}-point budget on {', '.join(d['gated'])}."]
    lines += _parity_gates(report)
    cal = report.get("calibration")
    if cal:
        lines += ["", f"Calibration: {cal['method']}, {cal['num_images']} images"
                  + (f" from the {cal['split']} split, {cal['quant_type']} weights, int8 I/O: {cal['int8_io']}; "
                     f"covers tasks {sorted(cal['coverage']['tasks'])}; "
                     + "; ".join(f"{task} classes {sorted(names)}" for task, names in cal["coverage"]["classes"].items())
                     if "coverage" in cal else "")]
    lines += _int8_points_lines(report)
    notes = report.get("notes", []) + sorted({f"{a['file']}: {n}" for a in report["artifacts"]
                                              for n in a.get("notes", [])})
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    lines += ["", "Latency: LiteRT on this host (XNNPACK), median of timed `invoke()` calls; int8 is not expected to "
              "be faster than fp32 on x86 without VNNI — phones are where int8 pays off (`mtnet bench-android`)."]
    return "\n".join(lines) + "\n"


def write_reports(report: dict[str, Any], out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    atomic_write(out_dir / "report.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2)))
    atomic_write(out_dir / "report.md", lambda tmp: Path(tmp).write_text(render_markdown(report)))
