"""Multi-task loss balancing: fixed weights vs uncertainty weighting (Kendall et al. 2018) vs dynamic weight
averaging (DWA, Liu et al. 2019) on the three-task model, same budget.

    python benchmarks/balancing.py [--epochs 8] [--num-train 384] [--imgsz 128] [--width 0.35]
                                   [--out benchmarks/results/balancing.json]

Every run has the same seeded synthetic data, seed, epochs, batch, LR recipe and EMA; only
``loss.balance`` changes. Metrics are the EMA weights' after the last epoch. The table also shows the
task weights in force at the last step (from ``steps.csv``). Prints a table, writes JSON to ``--out`` and
a PNG of the per-step task weights beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from budget import budget_parser

from mtnet.config import load_config
from mtnet.engine.trainer import Trainer

MODES = ("fixed", "uncertainty", "dwa")
TASKS = ("det", "pose", "seg")


def parse_args() -> argparse.Namespace:
    p = budget_parser(__doc__, epochs=8, num_train=384, num_val=32, imgsz=128, width=0.35)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--data", default="/tmp/mtnet_bench/synthetic", help="synthetic data folder (generated once)")
    p.add_argument("--runs-dir", default="/tmp/mtnet_bench/balancing")
    p.add_argument("--out", default="benchmarks/results/balancing.json")
    return p.parse_args()


def train(args: argparse.Namespace, mode: str) -> dict:
    s = args.imgsz
    cfg = load_config("quickstart", [
        f"name={mode}", f"output_dir={args.runs_dir}", f"data.root={args.data}_{s}_{args.num_train}",
        f"data.imgsz={s}", f"data.synthetic.image_size={s}", f"data.synthetic.num_train={args.num_train}",
        f"data.synthetic.num_val={args.num_val}", f"model.width={args.width}", "model.neck_channels=32",
        "model.head_channels=32", "model.seg_channels=32", f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch}", "train.warmup_epochs=2", "train.device=cpu",
        f"train.eval_interval={args.epochs}", "train.ema_tau=20", f"loss.balance={mode}",
    ])
    start = time.perf_counter()
    trainer = Trainer(cfg, progress=False)
    result = trainer.fit()
    with open(trainer.run_dir / "steps.csv", newline="") as f:
        steps = list(csv.DictReader(f))
    row = {"mode": mode, "train_s": time.perf_counter() - start}
    row.update({k: result.metrics.get(k) for k in ("bbox_AP50", "kpt_AP50", "mIoU", "fitness")})
    row["weights_per_step"] = {t: [float(r[f"w_{t}"]) for r in steps] for t in TASKS}
    row["final_weights"] = {t: row["weights_per_step"][t][-1] for t in TASKS}
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(5 * len(rows), 4), sharey=True)
    for ax, r in zip(axes, rows, strict=True):
        for t in TASKS:
            ax.plot(r["weights_per_step"][t], label=t)
        ax.set(title=f"{r['mode']}: task weights", xlabel="step", yscale="log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    rows = []
    for mode in MODES:
        rows.append(train(args, mode))
        print(f"{mode}: fitness {rows[-1]['fitness']:.3f} ({rows[-1]['train_s']:.0f} s)", flush=True)
    print(f"\nLoss balancing, {args.epochs} epochs, {args.num_train} train / {args.num_val} val images, "
          f"{args.imgsz} px, width {args.width}, batch {args.batch}")
    print(f"{'balance':<13}{'bbox AP50':>10}{'kpt AP50':>10}{'mIoU':>8}{'fitness':>9}"
          f"{'final w det/pose/seg':>24}{'time s':>8}")
    for r in rows:
        w = "/".join(f"{r['final_weights'][t]:.2f}" for t in TASKS)
        print(f"{r['mode']:<13}{r['bbox_AP50']:>10.3f}{r['kpt_AP50']:>10.3f}{r['mIoU']:>8.3f}{r['fitness']:>9.3f}"
              f"{w:>24}{r['train_s']:>8.0f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    out.write_text(json.dumps({"settings": settings, "runs": rows}, indent=2))
    plot(rows, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
