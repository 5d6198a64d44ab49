"""Is loading the bottleneck? Loader images/s (decode + masks + augmentation at 320 px) vs training images/s.

Builds a COCO-format set with the synthetic generator (JPEGs, instances + keypoints + stuff maps) at
``--image-size``, then times, on this machine:

* the DataLoader over ``MultiTaskDataset`` for several augmentation recipes and worker counts;
* one training step (forward + criterion + backward + SGD) of the model at the same input size.

Prints a table and writes JSON (``--out``). Loading keeps up when loader images/s >= step images/s.

    python benchmarks/dataloader.py --images 64 --out runs/bench/dataloader.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from mtnet.config import load_config
from mtnet.data.build import build_sources, build_train_dataset
from mtnet.data.dataset import collate
from mtnet.data.preprocess import normalize
from mtnet.losses.criterion import MultiTaskCriterion
from mtnet.models import build_model

RECIPES = {
    "flip+scale+crop+color": [],
    "+cutout": ["data.augment.cutout=0.5"],
    "+mosaic+mixup": ["data.augment.cutout=0.5", "data.augment.mosaic=0.5", "data.augment.mixup=0.1"],
}


def loader_rate(cfg, workers: int, batch: int, batches: int) -> float:
    train, _ = build_sources(cfg, progress=False)
    ds = build_train_dataset(cfg, train, train.meta)
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=collate,
                        persistent_workers=False)
    it = iter(loader)
    next(it)  # worker start-up and first decode are not the steady state
    start, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            n += len(next(it)["images"])
        except StopIteration:
            it = iter(loader)
    return n / (time.perf_counter() - start)


def step_rate(cfg, batch: int, steps: int) -> float:
    train, _ = build_sources(cfg, progress=False)
    model = build_model(cfg.model, train.meta)
    criterion = MultiTaskCriterion(train.meta, model.tasks, cfg.loss)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    ds = build_train_dataset(cfg, train, train.meta)
    data = collate([ds[i % len(ds)] for i in range(batch)])
    model.train()
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        loss, _ = criterion(model(normalize(data["images"])), data)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return batch / (sum(times[1:]) / steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=64, help="images in the generated train split")
    ap.add_argument("--image-size", type=int, default=480, help="side of the generated (COCO-like) images")
    ap.add_argument("--imgsz", type=int, default=320, help="network input size")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=6, help="timed loader batches per setting")
    ap.add_argument("--steps", type=int, default=3, help="timed training steps")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--width", type=float, default=1.0, help="model width multiplier for the step timing")
    ap.add_argument("--out", default="runs/bench/dataloader.json")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        base = [f"data.root={tmp}/coco", f"data.imgsz={args.imgsz}", f"data.synthetic.num_train={args.images}",
                "data.synthetic.num_val=2", f"data.synthetic.image_size={args.image_size}",
                f"model.width={args.width}", "model.neck_channels=64", "model.head_channels=64",
                "model.seg_channels=64"]
        rows = []
        for name, extra in RECIPES.items():
            cfg = load_config("quickstart", base + extra)
            for w in args.workers:
                rows.append({"what": f"loader {name}", "workers": w,
                             "images_per_s": loader_rate(cfg, w, args.batch, args.batches)})
        cfg = load_config("quickstart", base)
        rows.append({"what": f"train step (width {args.width}, fp32 CPU)", "workers": "-",
                     "images_per_s": step_rate(cfg, args.batch, args.steps)})
    step = rows[-1]["images_per_s"]
    print(f"{'what':52s} {'workers':>7s} {'img/s':>8s} {'x step':>7s}")
    for r in rows:
        print(f"{r['what']:52s} {r['workers']!s:>7s} {r['images_per_s']:8.1f} {r['images_per_s'] / step:7.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"host": platform.node(), "cpus": os.cpu_count(), "torch": torch.__version__,
                               "args": vars(args), "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
