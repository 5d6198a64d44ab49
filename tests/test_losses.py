"""Criterion behaviour: partial labels contribute nothing, empty images are negatives, assignment sanity."""

import pytest
import torch

from mtnet.config import LossConfig, ModelConfig
from mtnet.data.coco import CocoSource
from mtnet.data.dataset import collate
from mtnet.data.preprocess import normalize
from mtnet.data.sample import IGNORE_INDEX
from mtnet.data.transforms import EvalTransform
from mtnet.losses.assigner import task_aligned_assign
from mtnet.losses.criterion import MultiTaskCriterion
from mtnet.losses.segmentation import segmentation_loss, subsample_labels
from mtnet.models import build_model


def _batch(root, n=4):
    src = CocoSource(root, "train")
    t = EvalTransform(160)
    return src.meta, collate([t(src.load(i)) for i in range(n)])


def _setup(root):
    torch.manual_seed(0)
    meta, batch = _batch(root)
    model = build_model(ModelConfig(width=0.35, neck_channels=16, head_channels=16, seg_channels=16), meta)
    crit = MultiTaskCriterion(meta, model.tasks, LossConfig())
    return model.eval(), crit, batch  # eval-mode BN: per-sample outputs do not depend on the batch


def _grads(model, crit, batch):
    model.zero_grad()
    loss, logs = crit(model(normalize(batch["images"])), batch)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, logs


def test_sample_without_seg_labels_does_not_touch_seg_loss(synthetic_root):
    model, crit, batch = _setup(synthetic_root)
    full, _ = crit(model(normalize(batch["images"])), batch)
    partial = dict(batch, has_seg=torch.tensor([True, False, False, False]))
    only_first = {k: (v[:1] if isinstance(v, torch.Tensor) else v[:1]) for k, v in batch.items()}
    _, logs_partial = crit(model(normalize(batch["images"])), partial)
    _, logs_first = crit(model(normalize(only_first["images"])), only_first)
    # seg loss with samples 2-4 unlabelled equals the seg loss of sample 1 alone (not "background")
    assert abs(logs_partial["seg"] - logs_first["seg"]) < 1e-5
    none = dict(batch, has_seg=torch.zeros(4, dtype=torch.bool))
    grads, logs = _grads(model, crit, none)
    assert logs["seg"] == 0.0
    assert all(g.abs().sum() == 0 for n, g in grads.items() if n.startswith("heads.seg"))
    assert torch.isfinite(full)


def test_source_without_boxes_contributes_no_detection_gradient(synthetic_root):
    model, crit, batch = _setup(synthetic_root)
    no_det = dict(batch, has_det=torch.zeros(4, dtype=torch.bool))
    grads, logs = _grads(model, crit, no_det)
    assert all(g.abs().sum() == 0 for n, g in grads.items() if n.startswith(("heads.det", "heads.pose")))
    assert logs["num_fg"] == 0


def test_labelled_image_without_objects_is_a_negative(synthetic_root):
    model, crit, batch = _setup(synthetic_root)
    empty = dict(batch, labels=torch.full_like(batch["labels"], -1))
    grads, logs = _grads(model, crit, empty)
    assert logs["num_fg"] == 0 and logs["cls"] > 0  # background still pushes scores down
    assert any(g.abs().sum() > 0 for n, g in grads.items() if n.startswith("heads.det.cls"))


def test_pose_loss_only_from_samples_with_keypoints(synthetic_root):
    model, crit, batch = _setup(synthetic_root)
    grads, logs = _grads(model, crit, dict(batch, has_pose=torch.zeros(4, dtype=torch.bool)))
    assert logs["pose"] == 0.0
    assert all(g.abs().sum() == 0 for n, g in grads.items() if n.startswith("heads.pose"))


def test_assigner_picks_anchors_inside_the_box():
    points = torch.tensor([[4.0, 4.0], [12.0, 4.0], [40.0, 40.0]])
    pred = torch.tensor([[[0.0, 0, 10, 10], [8, 0, 16, 10], [30, 30, 50, 50]]])
    scores = torch.full((1, 3, 2), 0.5)
    a = task_aligned_assign(scores, pred, points, torch.tensor([[1]]), torch.tensor([[[0.0, 0, 16, 10]]]), topk=5)
    assert a.fg.tolist() == [[True, True, False]]
    assert a.target_scores[0, :, 1].max() > 0 and a.target_scores[0, :, 0].sum() == 0


def test_segmentation_loss_on_the_logit_grid_reads_the_label_at_each_cell_centre():
    torch.manual_seed(0)
    masks = torch.randint(0, 5, (2, 16, 16))
    masks[0, :4, :4] = IGNORE_INDEX
    logits = torch.randn(2, 5, 4, 4, requires_grad=True)
    centres = masks[:, 2::4, 2::4]  # stride 4: the pixel at offset 2 in every 4x4 cell
    expected = torch.nn.functional.cross_entropy(logits, centres, ignore_index=IGNORE_INDEX)
    got = segmentation_loss(logits, masks, "logits")
    assert torch.allclose(got, expected)
    assert not torch.allclose(got, segmentation_loss(logits, masks, "input"))  # the default upsamples the logits
    assert torch.equal(subsample_labels(masks, (4, 4)), centres)
    with pytest.raises(ValueError, match="integer multiple"):
        subsample_labels(masks[:, :15], (4, 4))
