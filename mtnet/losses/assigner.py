"""Task-aligned label assignment (TOOD, Feng et al. 2021; as used by YOLOv8).

For every ground-truth box, anchor points inside it are ranked by the alignment metric
``score^alpha * IoU^beta`` (score = predicted probability of the GT class, IoU of the predicted box);
the top-k become positives. An anchor claimed by several boxes keeps the one it overlaps most. Class
targets are the alignment metric normalised so the best anchor of each box gets that box's best IoU,
which trains the class score as a localisation-quality score.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .boxes import box_iou_pairwise


@dataclass
class Assignment:
    fg: torch.Tensor  # [B, A] bool, positive anchors
    gt_index: torch.Tensor  # [B, A] long, index of the assigned GT (valid where fg)
    target_scores: torch.Tensor  # [B, A, C] soft class targets
    target_boxes: torch.Tensor  # [B, A, 4] assigned GT boxes


@torch.no_grad()
def task_aligned_assign(
    scores: torch.Tensor,
    boxes: torch.Tensor,
    points: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_boxes: torch.Tensor,
    topk: int = 10,
    alpha: float = 0.5,
    beta: float = 6.0,
    eps: float = 1e-9,
) -> Assignment:
    """``scores`` [B, A, C] probabilities, ``boxes`` [B, A, 4] predicted xyxy, ``points`` [A, 2],
    ``gt_labels`` [B, M] (-1 = padding), ``gt_boxes`` [B, M, 4] xyxy."""
    b, a, c = scores.shape
    m = gt_boxes.shape[1]
    valid = gt_labels >= 0  # [B, M]
    if m == 0 or not valid.any():
        return Assignment(torch.zeros(b, a, dtype=torch.bool, device=scores.device),
                          torch.zeros(b, a, dtype=torch.long, device=scores.device),
                          torch.zeros_like(scores), torch.zeros_like(boxes))
    px, py = points[:, 0].view(1, 1, a), points[:, 1].view(1, 1, a)
    x0, y0, x1, y1 = (gt_boxes[..., i : i + 1] for i in range(4))
    inside = torch.minimum(torch.minimum(px - x0, py - y0), torch.minimum(x1 - px, y1 - py)) > eps  # [B, M, A]
    inside &= valid[..., None]

    iou = box_iou_pairwise(gt_boxes[:, :, None, :], boxes[:, None, :, :]).clamp(min=0) * inside  # [B, M, A]
    label_idx = gt_labels.clamp(min=0)[..., None].expand(b, m, a)
    cls_score = torch.gather(scores.transpose(1, 2), 1, label_idx)  # [B, M, A]
    metric = cls_score.pow(alpha) * iou.pow(beta) * inside

    k = min(topk, a)
    top_vals, top_idx = metric.topk(k, dim=-1)
    topk_mask = torch.zeros_like(metric, dtype=torch.bool).scatter_(-1, top_idx, top_vals > eps)
    pos = topk_mask & inside  # [B, M, A]

    multi = pos.sum(1) > 1  # anchors claimed by several GTs keep the best-overlapping one
    if multi.any():
        best = iou.argmax(1)  # [B, A]
        best_onehot = torch.nn.functional.one_hot(best, m).transpose(1, 2).bool()
        pos = torch.where(multi[:, None, :], best_onehot & inside, pos)
    fg = pos.any(1)
    gt_index = pos.float().argmax(1)  # [B, A]

    target_labels = gt_labels.gather(1, gt_index).clamp(min=0)
    target_boxes = gt_boxes.gather(1, gt_index[..., None].expand(b, a, 4))

    metric = metric * pos
    iou_pos = iou * pos
    norm = (metric * iou_pos.amax(-1, keepdim=True) / (metric.amax(-1, keepdim=True) + eps)).amax(1)  # [B, A]
    target_scores = torch.nn.functional.one_hot(target_labels, c).float() * (norm * fg)[..., None]
    return Assignment(fg, gt_index, target_scores, target_boxes)
