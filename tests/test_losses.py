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


def _setup(root, box_bins=0, box_iou="giou"):
    torch.manual_seed(0)
    meta, batch = _batch(root)
    model = build_model(ModelConfig(width=0.35, neck_channels=16, head_channels=16, seg_channels=16,
                                    box_bins=box_bins), meta)
    crit = MultiTaskCriterion(meta, model.tasks, LossConfig(box_iou=box_iou))
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


def test_distribution_mean_reads_the_bin_a_peaked_distribution_puts_its_mass_on():
    from mtnet.models.heads.detection import distances_to_pixels, distribution_mean

    logits = torch.full((2, 3, 4, 16), -30.0)
    picks = torch.tensor([[0, 3, 7, 15], [1, 2, 4, 8], [5, 5, 5, 5]])
    for a in range(3):
        for side in range(4):
            logits[:, a, side, picks[a, side]] = 30.0
    raw = logits.flatten(2)  # side-major, as the head lays them out
    torch.testing.assert_close(distribution_mean(raw, 16), picks.float().expand(2, 3, 4))
    torch.testing.assert_close(distances_to_pixels(raw[0], torch.tensor([8.0, 16.0, 32.0])),
                               picks.float() * torch.tensor([[8.0], [16.0], [32.0]]))


def test_distribution_focal_loss_is_smallest_for_the_two_bins_around_the_target():
    from mtnet.losses.detection import distribution_focal_loss

    target = torch.full((1, 4), 3.25)
    def loss_for(probs):
        return float(distribution_focal_loss(probs.log().repeat(1, 4), target, torch.ones(1)))
    split = torch.full((1, 16), 1e-6)
    split[0, 3], split[0, 4] = 0.75, 0.25  # the DFL optimum: mass on the neighbours, weighted by nearness
    peaked = torch.full((1, 16), 1e-6)
    peaked[0, 3] = 1.0
    far = torch.full((1, 16), 1e-6)
    far[0, 9] = 1.0
    assert loss_for(split) < loss_for(peaked) < loss_for(far)
    assert loss_for(split) == pytest.approx(-(0.75 * torch.tensor(0.75).log() + 0.25 * torch.tensor(0.25).log()).item(),
                                            abs=1e-3)


def test_ciou_adds_centre_distance_and_aspect_ratio_to_iou():
    from mtnet.losses.boxes import box_iou_pairwise, complete_iou

    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert complete_iou(a, a).item() == pytest.approx(1.0, abs=1e-6)
    shifted = torch.tensor([[5.0, 0.0, 15.0, 10.0]])  # same shape, centre 5 px away, hull 15 x 10
    expected = box_iou_pairwise(a, shifted).item() - 25.0 / (15.0**2 + 10.0**2)
    assert complete_iou(a, shifted).item() == pytest.approx(expected, abs=1e-5)
    wide = torch.tensor([[-5.0, 2.5, 15.0, 7.5]])  # same centre, other aspect ratio
    assert complete_iou(a, wide).item() < box_iou_pairwise(a, wide).item()


@pytest.mark.parametrize("box_iou", ["giou", "ciou"])
def test_dfl_model_trains_box_bins_with_dfl_and_the_chosen_iou_loss(synthetic_root, box_iou):
    model, crit, batch = _setup(synthetic_root, box_bins=16, box_iou=box_iou)
    grads, logs = _grads(model, crit, batch)
    assert model(normalize(batch["images"]))["box"].shape[-1] == 64 and logs["dfl"] > 0
    box_grads = {n: g for n, g in grads.items() if ".box_pred." in n}
    assert box_grads and sum(float(g.abs().sum()) for g in box_grads.values()) > 0
    crit.cfg.dfl = 0.0  # the DFL term is part of the box branch's gradient
    without_dfl, _ = _grads(model, crit, batch)
    assert any(not torch.allclose(g, without_dfl[n]) for n, g in box_grads.items())
