"""Per-step cost of the parameter update on CPU: optimizer implementations and the EMA update.

    python benchmarks/optimizer_step.py [--config quickstart] [--repeats 60] [--out benchmarks/results/optimizer_step.json]

Why: on a 2-core CPU the quickstart step is ~0.4-0.5 s, and PyTorch's default CPU optimizers loop over
the 239 parameter tensors in Python. This times, on the real model of ``--config`` (random gradients),
AdamW and SGD as a per-tensor loop, ``foreach`` and ``fused`` (what the trainer uses), and the EMA update
as the former per-tensor loop and the trainer's batched ``_foreach_lerp_``. Variants are interleaved
round-robin, so a slow phase of the machine hits all of them alike; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mtnet.config import load_config
from mtnet.data.coco import CocoSource
from mtnet.data.synthetic import generate_dataset
from mtnet.engine.ema import ModelEMA
from mtnet.models import build_model


def loop_ema_update(ema: ModelEMA, model: torch.nn.Module) -> None:
    """The per-tensor EMA update the trainer used before (reference for the batched one)."""
    ema.updates += 1
    d = ema.decay * (1 - math.exp(-ema.updates / ema.tau))
    msd = model.state_dict()
    with torch.no_grad():
        for k, v in ema.module.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k], alpha=1 - d)
            else:
                v.copy_(msd[k])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="quickstart")
    p.add_argument("--repeats", type=int, default=60)
    p.add_argument("--out", default="benchmarks/results/optimizer_step.json")
    args = p.parse_args()

    cfg = load_config(args.config, [])
    with tempfile.TemporaryDirectory() as tmp:  # the synthetic set's classes and keypoints (2 images suffice)
        generate_dataset(tmp, num_train=2, num_val=1, size=64, seed=0, progress=False)
        meta = CocoSource(tmp, "train").meta
    model = build_model(cfg.model, meta).to(memory_format=torch.channels_last)
    params = list(model.parameters())
    for q in params:
        q.grad = torch.randn_like(q) * 1e-3
    variants = {}
    for name, kw in (("loop", {"foreach": False}), ("foreach", {"foreach": True}), ("fused", {"fused": True})):
        variants[f"AdamW {name}"] = torch.optim.AdamW(params, lr=1e-6, **kw).step
        variants[f"SGD {name}"] = torch.optim.SGD(params, lr=1e-6, momentum=0.9, nesterov=True, **kw).step
    ema = ModelEMA(model, decay=0.99, tau=50)
    variants["EMA loop"] = lambda: loop_ema_update(ema, model)
    variants["EMA foreach_lerp (trainer)"] = lambda: ema.update(model)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.repeats + 5):
        for name, fn in variants.items():
            t = time.perf_counter()
            fn()
            if r >= 5:
                times[name].append((time.perf_counter() - t) * 1000)
    rows = [{"variant": k, "median_ms": statistics.median(v)} for k, v in times.items()]
    print(f"{len(params)} parameter tensors, {sum(q.numel() for q in params) / 1e6:.2f} M parameters, "
          f"{torch.get_num_threads()} threads")
    print(f"{'variant':30s} {'median ms':>10s}")
    for row in rows:
        print(f"{row['variant']:30s} {row['median_ms']:10.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": args.config, "threads": torch.get_num_threads(), "torch": torch.__version__,
                               "machine": platform.processor() or platform.machine(), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
