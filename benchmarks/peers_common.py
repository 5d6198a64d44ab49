"""Make ultralytics train and predict offline next to the CPU torch wheel (used by peers_budget.py).

Why each step is needed (ultralytics 8.4.190, torch 2.13.0+cpu, the registry's torchvision 0.28.0):

- The registry's torchvision wheel is a CUDA build: its C++ library ``torchvision/_C.so`` does not load next
  to the CPU torch wheel, so the ``torchvision::nms`` / ``torchvision::qnms`` operators are never defined and
  ``import torchvision`` itself fails (its ``_meta_registrations`` registers fake kernels for those two ops).
  ultralytics imports torchvision unconditionally in its predictor and validator and then calls
  ``torchvision.ops.nms``. ``register_torchvision_nms()`` defines both operators with ``torch.library`` and
  gives ``nms`` a pure-PyTorch CPU kernel (greedy NMS with torchvision's CPU IoU formula; equal scores keep
  their input order, torchvision promises no order for ties) *before* torchvision is imported, then lifts torchvision's "C++ ops not loaded" guard for
  ``torchvision.ops.boxes`` only (roi_align etc. stay unavailable). ``check_nms()`` compares it with a plain
  Python loop on random boxes. Where torchvision's library does load (a torchvision built for the installed
  torch, as on CUDA machines), its own operators are used and nothing is registered.
- ``offline_ultralytics()``: ``YOLO_OFFLINE=1`` (no connectivity probes, no pip auto-install of missing
  requirements), a private ``YOLO_CONFIG_DIR`` with ``sync=False`` (no telemetry, the user's settings file is
  left alone), and ``check_font`` skipped: ``check_det_dataset`` asks for Arial.ttf on every training run and
  would try to download it. Runs also pass ``plots=False`` (plots download the font too). AMP is off by
  itself on the CPU (``check_amp`` returns False without downloading a model).
- A relative ``project=`` lands under ``SETTINGS["runs_dir"]/<task>/`` (here ``~/.pyenv/runs/detect/...``):
  peers_budget.py passes an absolute path.
- ``select_device`` calls ``torch.set_num_threads(min(8, os.cpu_count() - 1))`` and so overrides
  ``OMP_NUM_THREADS``; ``offline_ultralytics(threads)`` pins that number instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import torch

_LIB: list[torch.library.Library] = []  # keep the library objects alive: dropping them unregisters the ops


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS as a plain loop over sorted boxes (the definition), for checking ``_nms_cpu``."""
    order = torch.sort(scores, stable=True, descending=True).indices.tolist()
    b = boxes.tolist()
    removed = [False] * len(b)
    keep = []
    for n, i in enumerate(order):
        if removed[i]:
            continue
        keep.append(i)
        x1, y1, x2, y2 = b[i]
        area_i = (x2 - x1) * (y2 - y1)
        for j in order[n + 1:]:
            if removed[j]:
                continue
            u1, v1, u2, v2 = b[j]
            inter = max(0.0, min(x2, u2) - max(x1, u1)) * max(0.0, min(y2, v2) - max(y1, v1))
            if inter / (area_i + (u2 - u1) * (v2 - v1) - inter) > iou_threshold:
                removed[j] = True
    return torch.tensor(keep, dtype=torch.int64)


def _nms_cpu(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Vectorised greedy NMS: one IoU row per kept box against the boxes still in play."""
    if dets.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=dets.device)
    order = torch.sort(scores, stable=True, descending=True).indices
    boxes = dets[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    remaining = torch.arange(len(order), device=dets.device)
    keep = []
    while remaining.numel():
        i = remaining[0]
        keep.append(i)
        rest = remaining[1:]
        lt = torch.maximum(boxes[i, :2], boxes[rest, :2])
        rb = torch.minimum(boxes[i, 2:], boxes[rest, 2:])
        wh = (rb - lt).clamp(min=0)
        inter = wh[:, 0] * wh[:, 1]
        iou = inter / (areas[i] + areas[rest] - inter)
        remaining = rest[iou <= iou_threshold]
    return order[torch.stack(keep)]


def _load_torchvision_ops() -> bool:
    """Load torchvision's C++ operator library without importing torchvision; False where it cannot load."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    libs = sorted(Path(next(iter(spec.submodule_search_locations))).glob("_C*.so"))
    try:
        torch.ops.load_library(str(libs[0]))
    except (IndexError, OSError, RuntimeError):
        return False
    return hasattr(torch.ops.torchvision, "nms")


def register_torchvision_nms() -> None:
    """Define ``torchvision::nms`` (pure-PyTorch CPU kernel) and ``torchvision::qnms`` so torchvision imports."""
    if "torchvision" in sys.modules:
        raise RuntimeError("register_torchvision_nms() must run before torchvision is imported")
    if _load_torchvision_ops():
        return  # a torchvision build that matches torch: its own operators
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", _nms_cpu, "CPU")
    _LIB.append(lib)
    import torchvision.ops.boxes  # noqa: F401  (now imports: its fake-kernel registrations find the ops)

    sys.modules["torchvision.ops.boxes"]._assert_has_ops = lambda: None  # only nms/batched_nms use it here


def check_nms(trials: int = 20, n: int = 300, seed: int = 0) -> int:
    """Compare ``torchvision.ops.nms`` with ``nms_reference`` on random boxes; returns the number of trials."""
    import torchvision

    g = torch.Generator().manual_seed(seed)
    for t in range(trials):
        xy = torch.rand(n, 2, generator=g) * 200
        boxes = torch.cat([xy, xy + 4 + torch.rand(n, 2, generator=g) * 60], 1)
        scores = torch.rand(n, generator=g)
        if t % 2:  # ties: both sides order equal scores by a stable sort
            scores = (scores * 8).round() / 8
        thr = [0.3, 0.5, 0.7][t % 3]
        got, want = torchvision.ops.nms(boxes, scores, thr), nms_reference(boxes, scores, thr)
        if not torch.equal(got, want):
            raise AssertionError(f"nms differs from the reference in trial {t}: {got.tolist()} vs {want.tolist()}")
    return trials


def offline_ultralytics(config_dir: str | Path, threads: int = 1) -> None:
    """Import ultralytics offline, with its settings in ``config_dir``, training on ``threads`` CPU threads."""
    if "ultralytics" in sys.modules:
        raise RuntimeError("offline_ultralytics() must run before ultralytics is imported")
    register_torchvision_nms()
    Path(config_dir).mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_CONFIG_DIR"] = str(Path(config_dir).resolve())
    import ultralytics.data.utils
    import ultralytics.utils.torch_utils
    from ultralytics.utils import SETTINGS

    SETTINGS.update(sync=False)
    ultralytics.data.utils.check_font = lambda *a, **k: None
    ultralytics.utils.torch_utils.NUM_THREADS = threads
    torch.set_num_threads(threads)
