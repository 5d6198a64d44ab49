"""Instance-mask targets and loss for the prototype-mask head.

Targets are built per object at full label resolution, then area-averaged onto the prototype grid:

* **full supervision** (``Sample.objects``): the object's own pixels are 1, other labelled pixels 0, unknown
  pixels (255: crowds, objects without an outline, padding) are ignored;
* **weak supervision** (boxes + a semantic map, no instance outlines): the box-constrained semantic target of
  "Simple Does It" (Khoreva et al., CVPR 2017) with BoxSup-style handling of ambiguity: inside the box, the
  pixels of the box's class are 1 and other labelled pixels 0; pixels of that class that also lie in another
  box of the same class are ambiguous (the semantic map cannot say which instance owns them) and ignored,
  as are the semantic map's own 255 pixels. Outside its box nothing is asked of a mask (it is cropped there).

The loss is binary cross-entropy of the assembled mask logits on the cells of the prototype grid whose
centre lies in the (half-cell enlarged) ground-truth box, averaged per object, then over the foreground
anchors that detection's assignment gave to objects with a target (YOLACT / YOLOv8-seg crop the same way).
"""

from __future__ import annotations

import torch
from torch import nn

IGNORE = 255


def _box_region(boxes: torch.Tensor, h: int, w: int, stride: float, pad: float = 0.0) -> torch.Tensor:
    """[M, h, w] bool: cell centres (in input pixels, ``stride`` apart) inside each xyxy box grown by ``pad``."""
    ys = (torch.arange(h, device=boxes.device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(w, device=boxes.device, dtype=torch.float32) + 0.5) * stride
    x0, y0, x1, y1 = (boxes[:, i, None, None] for i in range(4))
    return ((xs[None, None] >= x0 - pad) & (xs[None, None] <= x1 + pad)
            & (ys[None, :, None] >= y0 - pad) & (ys[None, :, None] <= y1 + pad))


def full_targets(objects: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Object map [H, W] (uint8) -> per-object foreground and labelled masks [count, H, W] (float)."""
    ids = torch.arange(1, count + 1, device=objects.device, dtype=torch.int64)[:, None, None]
    obj = objects.to(torch.int64)[None]
    return (obj == ids).float(), (obj != IGNORE).float().expand(count, -1, -1)


def weak_targets(semantic: torch.Tensor, boxes: torch.Tensor, seg_class: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Semantic map [H, W] + boxes [M, 4] + each box's semantic class [M] (-1: none) -> foreground and labelled
    masks [M, H, W]: the box's class inside the box; same-class pixels shared with another same-class box and the
    map's ignore pixels are unlabelled; a box whose class the map lacks is unlabelled everywhere."""
    h, w = semantic.shape
    sem = semantic.to(torch.int64)
    inside = _box_region(boxes, h, w, 1.0)  # pixel centres
    is_class = sem[None] == seg_class[:, None, None]  # [M, H, W]
    same = (seg_class[:, None] == seg_class[None, :]) & (seg_class[:, None] >= 0)  # [M, M]
    cover = torch.einsum("mn,nhw->mhw", same.float(), inside.float())  # same-class boxes covering each pixel
    ambiguous = is_class & (cover > 1.5)
    labelled = (sem[None] != IGNORE) & ~ambiguous & (seg_class[:, None, None] >= 0)
    return (is_class & inside & labelled).float(), labelled.float()


def to_grid(fg: torch.Tensor, labelled: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Area-average full-resolution targets onto an h x w grid: soft foreground among labelled pixels, and a
    cell counts as labelled when most of its pixels are."""
    size = (h, w)
    lab = nn.functional.adaptive_avg_pool2d(labelled[None], size)[0]
    fgp = nn.functional.adaptive_avg_pool2d((fg * labelled)[None], size)[0]
    return fgp / lab.clamp(min=1e-6), lab > 0.5


def dice_loss(logits: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice per object over ``region`` ([N, h, w] each -> [N]; V-Net, Milletari et al. 2016, as in
    CondInst / SOLO): scored on the overlap, so thin parts (limbs) weigh by their share of the object rather
    than of the box, where per-cell BCE lets a mask drop them for little loss."""
    prob, t = logits.sigmoid() * region, target * region
    return 1 - (2 * (prob * t).sum((1, 2)) + 1) / (prob.sum((1, 2)) + t.sum((1, 2)) + 1)


def mask_loss(coefs: torch.Tensor, protos: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
              boxes: torch.Tensor, stride: float, dice: float = 0.0) -> tuple[torch.Tensor, int]:
    """Sum over rows of the box-cropped mean BCE (+ ``dice`` x the Dice loss on the same cells), and the number
    of rows with any labelled cell in their box: ``coefs`` [N, P], ``protos`` [P, h, w], ``target``/``valid``
    [N, h, w] on the prototype grid, ``boxes`` [N, 4] in input pixels."""
    p, h, w = protos.shape
    logits = (coefs @ protos.reshape(p, h * w)).reshape(-1, h, w)
    region = valid & _box_region(boxes, h, w, stride, pad=stride / 2)
    bce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    per_object = (bce * region).sum((1, 2)) / region.sum((1, 2)).clamp(min=1)
    if dice:
        per_object = per_object + dice * dice_loss(logits, target, region)
    keep = region.any(2).any(1)
    return per_object[keep].sum(), int(keep.sum())
