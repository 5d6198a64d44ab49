"""Every model configuration: shapes, mobile-friendly ops only, tracing and ONNX export of deploy mode."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from mtnet.config import ModelConfig
from mtnet.data.meta import DatasetMeta, flip_index_from_names
from mtnet.data.synthetic import KEYPOINT_NAMES
from mtnet.decode import decode_segmentation, upsample_logits
from mtnet.models import build_model

META = DatasetMeta(
    det_classes=["person", "ball", "box"], det_category_ids=[1, 5, 9], seg_classes=list("abcde"),
    seg_category_ids=[1, 2, 3, 4, 5], keypoint_names=KEYPOINT_NAMES, flip_index=flip_index_from_names(KEYPOINT_NAMES),
    keypoint_class=0, keypoint_sigmas=[0.05] * 17,
)
TASK_SETS = [["det"], ["seg"], ["det", "pose"], ["det", "seg"], ["det", "seg", "pose"]]
CONFIGS = [
    ModelConfig(width=w, tasks=t, pan=pan, neck_channels=32, head_channels=32, seg_channels=32)
    for w, t, pan in itertools.product([0.35, 1.4], TASK_SETS, [False, True])
]
FORBIDDEN = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"w{c.width}-{'+'.join(c.tasks)}-pan{int(c.pan)}")
def test_no_transposed_or_deformable_convs_and_shapes(cfg):
    model = build_model(cfg, META)
    for name, module in model.named_modules():
        assert not isinstance(module, FORBIDDEN), f"{name} is a transposed conv"
        assert "deform" not in type(module).__name__.lower(), f"{name} is a deformable conv"
    with torch.no_grad():
        out = model(torch.randn(2, 3, 160, 160))
    a = (20 * 20 + 10 * 10 + 5 * 5)
    if "det" in cfg.tasks:
        assert out["cls"].shape == (2, a, 3) and out["box"].shape == (2, a, 4 * cfg.box_bins)
    if "pose" in cfg.tasks:
        assert out["kpt"].shape == (2, a, 17, 3)
    if "seg" in cfg.tasks:
        assert out["seg"].shape == (2, 5, 40, 40)


@pytest.mark.parametrize("head_strides", [(8,), (8, 16)])
def test_head_strides_choose_the_anchor_levels(head_strides):
    cfg = ModelConfig(width=0.35, neck_channels=16, head_channels=16, seg_channels=16, head_strides=list(head_strides))
    model = build_model(cfg, META).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 160, 160))
    counts = [(160 // s) ** 2 for s in head_strides]
    assert out["kpt"].shape[1] == out["cls"].shape[1] == sum(counts)
    assert out["strides"].tolist() == [float(s) for s in head_strides for _ in range((160 // s) ** 2)]
    model.deploy = True
    boxes, *_ = model(torch.randn(1, 3, 160, 160))
    assert boxes.shape == (1, sum(counts), 4)


def test_width_multiplier_changes_backbone_channels():
    small = build_model(ModelConfig(width=0.35, tasks=["det"]), META)
    large = build_model(ModelConfig(width=1.4, tasks=["det"]), META)
    assert small.backbone.out_channels[-1] < large.backbone.out_channels[-1]
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in large.parameters())


def test_deploy_outputs_are_decoded_to_pixels():
    model = build_model(ModelConfig(width=0.35, neck_channels=16, head_channels=16, seg_channels=16), META).eval()
    model.deploy = True
    boxes, scores, kpts, seg = model(torch.randn(1, 3, 160, 160))
    assert model.output_names() == ["boxes", "scores", "keypoints", "seg"]
    assert boxes.shape == (1, 525, 4) and scores.shape == (1, 525, 3) and kpts.shape == (1, 525, 51)
    assert seg.shape == (1, 5, 40, 40)  # logits at stride 4; decoders upsample them
    assert (boxes[..., 2] >= boxes[..., 0]).all() and (boxes[..., 3] >= boxes[..., 1]).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    # anchor points lie inside their boxes: distances are non-negative around the grid centres
    centres = (boxes[..., :2] + boxes[..., 2:]) / 2
    assert centres.min() > -160 and centres.max() < 320
    model.seg_output = "argmax"
    labels = model(torch.randn(1, 3, 160, 160))[-1]
    assert labels.dtype == torch.int32 and labels.shape == (1, 160, 160)


def test_decoder_upsamples_stride4_logits_like_torch():
    """The NumPy decoder's bilinear upsampling of deploy logits equals torch's (what training evaluates)."""
    logits = torch.randn(1, 5, 40, 40)
    full = torch.nn.functional.interpolate(logits, size=(160, 160), mode="bilinear", align_corners=False)[0]
    np.testing.assert_allclose(upsample_logits(logits[0].numpy(), 160), full.numpy(), atol=1e-5, rtol=0)
    labels = decode_segmentation(logits[0].numpy(), 160)
    assert labels.shape == (160, 160)
    assert (labels == full.argmax(0).numpy()).mean() > 0.999  # ties at float rounding may flip a pixel


def test_pose_without_det_is_rejected():
    with pytest.raises(ValueError, match="enable 'det'"):
        build_model(ModelConfig(tasks=["pose"]), META)


@pytest.mark.parametrize("box_bins", [0, 16])
def test_trace_and_onnx_export_of_deploy_mode(tmp_path, box_bins):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = build_model(ModelConfig(width=0.35, neck_channels=16, head_channels=16, seg_channels=16,
                                    box_bins=box_bins), META).eval()
    model.deploy = True
    x = torch.randn(1, 3, 160, 160)
    traced = torch.jit.trace(model, x)
    for a, b in zip(traced(x), model(x), strict=True):
        torch.testing.assert_close(a, b)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["images"], output_names=model.output_names(),
                      opset_version=17, dynamo=False)
    onnx.checker.check_model(onnx.load(str(path)))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"images": x.numpy()})
    for a, b in zip(outs, model(x), strict=True):
        assert abs(a - b.detach().numpy()).max() < 1e-3


@pytest.mark.parametrize("box_bins", [0, 16])
def test_deploy_decode_matches_training_decode(box_bins):
    """The in-graph decode (what exports ship) equals the decode the losses train, for softplus distances and
    for bin distributions (DFL)."""
    from mtnet.models.heads.detection import distances_to_boxes, distances_to_pixels
    from mtnet.models.heads.pose import keypoints_to_pixels

    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.35, neck_channels=16, head_channels=16, seg_channels=16,
                                    box_bins=box_bins), META).eval()
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        raw = model(x)
        model.deploy = True
        boxes, scores, kpts, _ = model(x)
    assert raw["box"].shape[-1] == 4 * max(box_bins, 1)
    unclipped = distances_to_boxes(distances_to_pixels(raw["box"], raw["strides"]), raw["points"])
    torch.testing.assert_close(boxes, unclipped.clamp(0, 160), atol=1e-4, rtol=0)
    torch.testing.assert_close(scores, raw["cls"].sigmoid())
    expected = keypoints_to_pixels(raw["kpt"], raw["points"], raw["strides"])
    torch.testing.assert_close(kpts.reshape(1, -1, 17, 3)[..., :2], expected[..., :2], atol=1e-4, rtol=0)
    torch.testing.assert_close(kpts.reshape(1, -1, 17, 3)[..., 2], expected[..., 2].sigmoid())


def test_unshared_heads_give_each_level_its_own_weights_and_batchnorm():
    """share_head_levels=false: a level's rows change only with that level's weights, and each level keeps
    its own BN running statistics (the shared head's single statistics mix every level)."""
    cfg = ModelConfig(width=0.35, neck_channels=16, head_channels=16, seg_channels=16, share_head_levels=False)
    model = build_model(cfg, META).eval()
    shared = build_model(ModelConfig(width=0.35, neck_channels=16, head_channels=16, seg_channels=16,
                                     share_head_levels=True), META)
    det, pose = model.heads["det"], model.heads["pose"]
    assert len(det.cls_tower) == len(det.cls_pred) == len(pose.tower) == 3
    assert sum(p.numel() for p in det.parameters()) == 3 * sum(p.numel() for p in shared.heads["det"].parameters())
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        before = model(x)
        det.cls_pred[2].bias.add_(1.0)
        pose.pred[1].bias.add_(1.0)
        after = model(x)
    p3, p4 = 20 * 20, 10 * 10
    changed_cls = (after["cls"] != before["cls"]).any(-1)[0]
    changed_kpt = (after["kpt"] != before["kpt"]).flatten(2).any(-1)[0]
    assert not changed_cls[: p3 + p4].any() and changed_cls[p3 + p4 :].all()
    assert not changed_kpt[:p3].any() and changed_kpt[p3 : p3 + p4].all() and not changed_kpt[p3 + p4 :].any()
    model.train()
    model(torch.randn(2, 3, 160, 160))  # one training-mode pass updates each level's own BN statistics
    means = [det.cls_tower[i][0][0][1].running_mean for i in range(3)]
    assert not torch.allclose(means[0], means[2])


def test_pose_from_the_finest_level_reads_the_cell_under_each_coarse_anchor():
    """pose_level=finest: every anchor's keypoints come from the stride-8 map (the cell under the anchor's
    centre), in that cell's frame; training decode and the deploy graph agree."""
    from mtnet.models.heads.pose import keypoints_to_pixels

    cfg = ModelConfig(width=0.35, neck_channels=16, head_channels=16, seg_channels=16, pose_level="finest")
    model = build_model(cfg, META).eval()
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        raw = model(x)
        model.deploy = True
        kpts = model(x)[2].reshape(1, -1, 17, 3)
    p3 = raw["kpt"][0, : 20 * 20].reshape(20, 20, 17, 3)
    p4 = raw["kpt"][0, 20 * 20 : 20 * 20 + 100].reshape(10, 10, 17, 3)
    p5 = raw["kpt"][0, 20 * 20 + 100 :].reshape(5, 5, 17, 3)
    torch.testing.assert_close(p4, p3[1::2, 1::2])
    torch.testing.assert_close(p5, p3[2::4, 2::4])
    # a stride-32 anchor at cell (0, 0) (centre 16, 16) uses the stride-8 cell (2, 2): centre (20, 20), units of 16 px
    assert raw["kpt_points"][-25].tolist() == [20.0, 20.0] and raw["kpt_strides"].unique().tolist() == [8.0]
    expected = keypoints_to_pixels(raw["kpt"], raw["kpt_points"], raw["kpt_strides"])
    torch.testing.assert_close(kpts[..., :2], expected[..., :2], atol=1e-4, rtol=0)


def test_pose_channels_widen_the_pose_towers_only():
    """model.pose_channels sets the pose towers' width (0 = head_channels) and leaves detection alike."""
    base = ModelConfig(width=0.35, neck_channels=16, head_channels=16, seg_channels=16, tasks=["det", "pose"])
    narrow = build_model(base, META)
    wide = build_model(ModelConfig(**{**base.__dict__, "pose_channels": 40}), META)
    assert [p.shape for p in wide.heads["det"].parameters()] == [p.shape for p in narrow.heads["det"].parameters()]
    assert narrow.heads["pose"].pred[0].weight.shape[1] == 16 and wide.heads["pose"].pred[0].weight.shape[1] == 40
    out = wide.eval()(torch.randn(1, 3, 160, 160))
    assert out["kpt"].shape == (1, 20 * 20 + 10 * 10 + 5 * 5, 17, 3)


def test_pose_blocks_deepen_the_pose_towers_only():
    """model.pose_blocks sets how many depthwise-separable blocks each pose tower stacks (default 2)."""
    base = ModelConfig(width=0.35, neck_channels=16, head_channels=16, seg_channels=16, tasks=["det", "pose"])
    shallow = build_model(base, META)
    deep = build_model(ModelConfig(**{**base.__dict__, "pose_blocks": 3}), META)
    assert [len(tower) for tower in shallow.heads["pose"].tower] == [2, 2, 2]
    assert [len(tower) for tower in deep.heads["pose"].tower] == [3, 3, 3]
    assert [p.shape for p in deep.heads["det"].parameters()] == [p.shape for p in shallow.heads["det"].parameters()]
    out = deep.eval()(torch.randn(1, 3, 160, 160))
    assert out["kpt"].shape == (1, 20 * 20 + 10 * 10 + 5 * 5, 17, 3)
