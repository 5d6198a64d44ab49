"""QAT: fake-quant fine-tuning in TFLite's scheme, its ranges in the int8 .tflite, per-branch int8 sensitivity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mtnet.calibration.qat import ROUTE, activation_qparams, fold_batchnorm, load_qat_section, prepare_qat

from mtnet.checkpoint_io import load_model_from_checkpoint
from mtnet.cli import main


@pytest.fixture(scope="module")
def qat_export(tiny_run, tmp_path_factory) -> tuple[Path, Path]:
    """A 1-epoch QAT of the tiny model, exported with --quant qat, sensitivity and the pose head kept float."""
    out = tmp_path_factory.mktemp("qat")
    ckpt = out / "qat.pt"
    assert main(["qat", str(tiny_run / "best.pt"), "--epochs", "1", "--out", str(ckpt), "--no-progress"]) == 0
    assert main(["export", str(ckpt), "--formats", "tflite", "--precision", "fp32,int8", "--quant", "qat",
                 "--int8-sensitivity", "--int8-float", "pose", "--calib-images", "8", "--bench-runs", "0",
                 "--out", str(out), "--name", "qat", "--no-progress"]) == 0
    return ckpt, out / "qat"


def test_fold_batchnorm_keeps_the_function_and_leaves_bn_as_a_bias(tiny_run):
    model, _ = load_model_from_checkpoint(tiny_run / "best.pt")
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        before = model(x)
        assert fold_batchnorm(model) > 50
        after = model(x)
    for k in before:
        assert torch.allclose(before[k], after[k], atol=1e-4, rtol=1e-4), k
    bn = model.backbone.features[0][1]
    assert torch.all(bn.weight == 1) and torch.all(bn.running_mean == 0)


def test_baked_weights_sit_on_the_per_channel_int8_grid(tiny_run):
    model, _ = load_model_from_checkpoint(tiny_run / "best.pt")
    baked = prepare_qat(model).bake()
    convs = [m for m in baked.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and not any(torch.nn.utils.parametrize.is_parametrized(m) for m in convs)
    for conv in convs:
        w = conv.weight.detach()
        scale = w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127
        q = w / scale
        assert torch.allclose(q, q.round(), atol=1e-3) and q.abs().max() <= 127 + 1e-3


def test_activation_qparams_follow_tflite():
    scale, zp = activation_qparams(torch.tensor(0.5), torch.tensor(6.0))  # widened to hold 0
    assert scale.item() == pytest.approx(6.0 / 255) and zp.item() == -128
    scale, zp = activation_qparams(torch.tensor(-2.0), torch.tensor(3.1))
    assert scale.item() == pytest.approx(5.1 / 255) and zp.item() == round(-128 + 2.0 / (5.1 / 255))


@pytest.mark.slow
def test_qat_ranges_land_in_the_int8_tflite(qat_export):
    """The int8 file's activation scales are the QAT run's ranges, not the calibration set's (no PTQ fallback)."""
    from mtnet.export.sensitivity import expected_scale, int8_scales

    ckpt, folder = qat_export
    report = json.loads((folder / "report.json").read_text())
    cal = report["calibration"]
    assert cal["method"] == "qat" and cal["qat"]["route"] == ROUTE
    ranges = load_qat_section(ckpt)["ranges"]
    tensors = cal["qat"]["tensors"]
    assert len(tensors) == cal["qat"]["ranges_in_artifact"] >= 0.6 * len(ranges)  # pose head kept float here
    scales = int8_scales(folder / "model_int8.tflite")
    calibrated = differs = 0
    for t in tensors:
        want = expected_scale(*ranges[t["point"]])  # from the checkpoint itself, not from the report
        assert scales[t["tensor"]] == pytest.approx(want, rel=1e-4), t["point"]
        if t["calibration_range"]:
            calibrated += 1
            differs += abs(expected_scale(*t["calibration_range"]) - want) > 1e-3 * want
    assert calibrated >= 0.9 * len(tensors) and differs >= 0.5 * calibrated  # PTQ would have given other scales
    arts = {a["file"]: a for a in report["artifacts"]}
    int8 = arts["model_int8.tflite"]
    for key in ("bbox_AP50", "kpt_AP50", "mIoU"):
        assert int8["metrics"][key] is not None
    assert int8["metrics"]["drop_vs_fp32"]["gated"] == ["bbox_AP50", "kpt_AP50", "mIoU"]
    md = (folder / "report.md").read_text()
    assert "Quantisation-aware training" in md and ROUTE in md


@pytest.mark.slow
def test_sensitivity_quantizes_one_branch_at_a_time_and_float_branch_stays_float(qat_export):
    from mtnet.export.sensitivity import int8_convs

    _, folder = qat_export
    report = json.loads((folder / "report.json").read_text())
    sens = report["int8_sensitivity"]
    assert sorted(sens["branches"]) == ["backbone", "det", "neck", "pose", "seg"]
    total = {r["convs"] for r in sens["branches"].values()}
    assert len(total) == 1
    for r in sens["branches"].values():
        assert 0 < r["int8_convs"] < r["convs"]
        assert set(r["drop_vs_fp32"]["points"]) >= {"bbox_AP50", "kpt_AP50", "mIoU"}
    assert sum(r["int8_convs"] for r in sens["branches"].values()) == total.pop()
    int8, convs = int8_convs(folder / "model_int8.tflite")
    assert int8 == convs - sens["branches"]["pose"]["int8_convs"]  # --int8-float pose
    doc = json.loads((folder / "model.json").read_text())
    assert doc["int8_float_layers"]["branches"]["branches"] == ["pose"]
    assert "int8 sensitivity per branch" in (folder / "report.md").read_text()


def test_export_quant_qat_refuses_a_float_checkpoint(tiny_run, tmp_path, capsys):
    code = main(["export", str(tiny_run / "best.pt"), "--formats", "tflite", "--precision", "int8", "--quant", "qat",
                 "--bench-runs", "0", "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    assert "no QAT ranges" in capsys.readouterr().err
    assert not any(tmp_path.iterdir()) or not (tmp_path / "tiny").exists()


def test_qat_rejects_bad_epochs_and_a_qat_checkpoint(tiny_run, tmp_path, capsys):
    assert main(["qat", str(tiny_run / "best.pt"), "--epochs", "0", "--out", str(tmp_path / "q.pt")]) == 2
    assert "at least 1" in capsys.readouterr().err
    np.testing.assert_equal((tmp_path / "q.pt").exists(), False)


def test_qat_ema_bakes_averaged_weights_on_the_grid(tiny_run, tmp_path):
    from mtnet.calibration.qat import qat_finetune

    section = qat_finetune(tiny_run / "best.pt", tmp_path / "ema.pt", epochs=1, ema=True, progress=False)
    assert section["ema"] and load_qat_section(tmp_path / "ema.pt")["ranges"] == section["ranges"]
    model, _ = load_model_from_checkpoint(tmp_path / "ema.pt")
    w = model.backbone.features[0][0].weight.detach()
    q = w / (w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127)
    assert torch.allclose(q, q.round(), atol=1e-3)


def test_teacher_matching_loss_is_zero_for_the_teacher_and_scale_free():
    from mtnet.calibration.qat import teacher_matching_loss

    torch.manual_seed(0)
    teacher = {"cls": torch.randn(2, 50, 3) * 5, "box": torch.randn(2, 50, 4) * 0.1, "points": torch.rand(50, 2)}
    same = {k: v.clone().requires_grad_(k != "points") for k, v in teacher.items()}
    assert float(teacher_matching_loss(same, teacher)) == 0.0
    # the same relative error on outputs of very different scales costs the same
    off_cls = {**same, "cls": (teacher["cls"] * 1.1).requires_grad_()}
    off_box = {**same, "box": (teacher["box"] * 1.1).requires_grad_()}
    a, b = float(teacher_matching_loss(off_cls, teacher)), float(teacher_matching_loss(off_box, teacher))
    assert a > 0 and a == pytest.approx(b, rel=0.2)


def test_qat_teacher_objective_keeps_the_model_closer_to_the_float_outputs(tiny_run, tmp_path):
    """objective=teacher ends nearer the float checkpoint's outputs than the same fine-tune on the labels; the
    objective is recorded in the checkpoint's qat section."""
    from mtnet.calibration.qat import qat_finetune, teacher_matching_loss

    teacher, _ = load_model_from_checkpoint(tiny_run / "best.pt")
    images = torch.rand(4, 3, 96, 96)
    with torch.no_grad():
        target = teacher.eval()(images)
    gaps = {}
    for objective in ("labels", "teacher"):
        section = qat_finetune(tiny_run / "best.pt", tmp_path / f"{objective}.pt", epochs=2, lr=3e-3,
                               objective=objective, progress=False)
        assert section["objective"] == objective
        model, _ = load_model_from_checkpoint(tmp_path / f"{objective}.pt")
        gaps[objective] = float(teacher_matching_loss(model.eval()(images), target))
    assert gaps["teacher"] < gaps["labels"]
    with pytest.raises(Exception, match="objective"):
        qat_finetune(tiny_run / "best.pt", tmp_path / "x.pt", objective="distill", progress=False)
