"""Large-batch from-scratch recipe: linear LR scaling + warmup across effective batches 16 / 64 / 256,
and the large LR without warmup.

    python benchmarks/large_batch.py [--epochs 8] [--num-train 384] [--imgsz 128] [--width 0.35]
                                     [--optimizer adamw|sgd] [--base-lr LR] [--warmup-epochs 2]
                                     [--out benchmarks/results/large_batch.json]

Claims checked (Goyal et al. 2017, on our three-task model, trained from scratch on the seeded synthetic set):
(a) with LR = base_lr x batch / 256 and a linear warmup, effective batches 16, 64 and 256 reach similar
    validation metrics after the same number of epochs (256 images per step come from 32-image
    micro-batches x 8 accumulation steps on CPU; BN therefore sees 32 images, the accumulation caveat);
(b) the batch-256 LR without warmup (full LR from step 0) does clearly worse or diverges.
Every run has the same data, seed, epochs, optimizer, EMA, gradient clipping (norm 10) and schedule shape
(cosine). ``--optimizer adamw`` (default): the quickstart's AdamW, weight decay 0.05; ``sgd``: the COCO
recipe's SGD (Nesterov momentum 0.9, weight decay 5e-5); neither decays BN weights or biases. A run whose
loss stays non-finite (``TrainingError``) is recorded as diverged. Metrics are the EMA weights' after the
last epoch. Prints a table, writes JSON to ``--out`` and the curves (training loss per epoch, LR per step)
to a PNG beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

from budget import budget_parser

from mtnet.config import load_config
from mtnet.engine.trainer import Trainer, TrainingError


@dataclass(frozen=True)
class Run:
    key: str
    batch: int  # per forward pass
    accumulate: int
    warmup: bool

    @property
    def effective(self) -> int:
        return self.batch * self.accumulate


RUNS = (
    Run("b16", 16, 1, True),
    Run("b64", 32, 2, True),
    Run("b256", 32, 8, True),
    Run("b256_no_warmup", 32, 8, False),
)
WEIGHT_DECAY = {"adamw": 0.05, "sgd": 5e-5}  # quickstart's AdamW / the COCO recipe's SGD
DEFAULT_BASE_LR = {"adamw": 0.016, "sgd": 0.64}


def parse_args() -> argparse.Namespace:
    p = budget_parser(__doc__, epochs=8, num_train=384, num_val=32, imgsz=128, width=0.35)
    p.add_argument("--optimizer", choices=sorted(WEIGHT_DECAY), default="adamw")
    p.add_argument("--base-lr", type=float, default=None,
                   help=f"LR per 256 images (default: {DEFAULT_BASE_LR} for the chosen optimizer)")
    p.add_argument("--warmup-epochs", type=float, default=2.0)
    p.add_argument("--grad-clip", type=float, default=10.0,
                   help="max grad norm (the trainer default); 0 shows what warmup alone does")
    p.add_argument("--data", default="/tmp/mtnet_bench/synthetic", help="synthetic data folder (generated once)")
    p.add_argument("--runs-dir", default="/tmp/mtnet_bench/large_batch")
    p.add_argument("--only", nargs="*", default=None, help=f"subset of {[r.key for r in RUNS]}")
    p.add_argument("--out", default="benchmarks/results/large_batch.json")
    args = p.parse_args()
    if args.base_lr is None:
        args.base_lr = DEFAULT_BASE_LR[args.optimizer]
    return args


def config(args: argparse.Namespace, run: Run):
    s = args.imgsz
    return load_config("quickstart", [
        f"name={run.key}", f"output_dir={args.runs_dir}", f"data.root={args.data}_{s}_{args.num_train}",
        f"data.imgsz={s}", f"data.synthetic.image_size={s}", f"data.synthetic.num_train={args.num_train}",
        f"data.synthetic.num_val={args.num_val}", f"model.width={args.width}", "model.neck_channels=32",
        "model.head_channels=32", "model.seg_channels=32", f"train.epochs={args.epochs}",
        f"train.batch_size={run.batch}", f"train.accumulate={run.accumulate}", f"train.optimizer={args.optimizer}",
        f"train.base_lr={args.base_lr}", f"train.weight_decay={WEIGHT_DECAY[args.optimizer]}",
        f"train.warmup_epochs={args.warmup_epochs if run.warmup else 0}", "train.device=cpu",
        f"train.eval_interval={max(1, args.epochs // 3)}", "train.ema_tau=20", f"train.grad_clip={args.grad_clip}",
    ])


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def train(args: argparse.Namespace, run: Run) -> dict:
    start = time.perf_counter()
    trainer = Trainer(config(args, run), progress=False)
    row = {"run": run.key, "effective_batch": run.effective, "batch": run.batch, "accumulate": run.accumulate,
           "peak_lr": trainer.lr, "warmup_steps": int(round(args.warmup_epochs * trainer.steps_per_epoch))
           if run.warmup else 0, "total_steps": trainer.total_steps, "diverged": False}
    try:
        result = trainer.fit()
        metrics = result.metrics
    except TrainingError as e:  # non-finite loss for several steps: the run diverged
        row["diverged"], metrics = True, {}
        row["error"] = str(e)
    epochs = read_csv(trainer.run_dir / "metrics.csv") if (trainer.run_dir / "metrics.csv").is_file() else []
    steps = read_csv(trainer.run_dir / "steps.csv") if (trainer.run_dir / "steps.csv").is_file() else []
    row.update({k: metrics.get(k) for k in ("bbox_AP50", "kpt_AP50", "mIoU", "fitness")})
    row["final_train_loss"] = float(epochs[-1]["loss"]) if epochs else None
    row["loss_per_epoch"] = [float(r["loss"]) for r in epochs]
    row["lr_per_step"] = [float(r["lr"]) for r in steps]
    row["loss_per_step"] = [float(r["loss"]) for r in steps]
    row["train_s"] = time.perf_counter() - start
    return row


def fmt(v, spec=".3f") -> str:
    return "-" if v is None else format(v, spec)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for r in rows:
        label = f"{r['run']} (lr {r['peak_lr']:.2g})"
        ep = r["loss_per_epoch"]
        axes[0].plot(range(1, len(ep) + 1), ep, marker="o", label=label)
        n = len(r["loss_per_step"])
        if n:
            frac = [(i + 1) / n * len(ep or [0]) for i in range(n)]
            axes[1].plot(frac, r["loss_per_step"], alpha=0.7, label=label)
            axes[2].plot(frac, r["lr_per_step"], label=label)
    axes[0].set(title="training loss (epoch mean)", xlabel="epoch", yscale="log")
    axes[1].set(title="training loss per step", xlabel="epoch", yscale="log")
    axes[2].set(title="learning rate per step", xlabel="epoch")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    runs = [r for r in RUNS if args.only is None or r.key in args.only]
    rows = []
    for run in runs:
        rows.append(train(args, run))
        r = rows[-1]
        print(f"{run.key}: fitness {fmt(r['fitness'])} diverged={r['diverged']} ({r['train_s']:.0f} s)", flush=True)
    warm = [r["fitness"] for r in rows if r["run"] != "b256_no_warmup" and r["fitness"] is not None]
    spread = max(warm) - min(warm) if len(warm) > 1 else None
    header = (f"{'run':<16}{'eff.batch':>10}{'fwd x acc':>10}{'peak LR':>9}{'warmup':>8}{'steps':>7}"
              f"{'loss':>8}{'bbox AP50':>10}{'kpt AP50':>9}{'mIoU':>7}{'fitness':>8}{'time s':>8}")
    print(f"\nLarge-batch recipe, {args.epochs} epochs, {args.num_train} train / {args.num_val} val images, "
          f"{args.imgsz} px, width {args.width}, {args.optimizer} base LR {args.base_lr}/256 images")
    print(header)
    for r in rows:
        print(f"{r['run']:<16}{r['effective_batch']:>10}{str(r['batch']) + 'x' + str(r['accumulate']):>10}"
              f"{r['peak_lr']:>9.4f}{r['warmup_steps']:>8}{r['total_steps']:>7}{fmt(r['final_train_loss']):>8}"
              f"{fmt(r['bbox_AP50']):>10}{fmt(r['kpt_AP50']):>9}{fmt(r['mIoU']):>7}{fmt(r['fitness']):>8}"
              f"{r['train_s']:>8.0f}" + ("  DIVERGED" if r["diverged"] else ""))
    if spread is not None:
        print(f"fitness spread across batches 16/64/256 with warmup: {spread:.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "only")}
    out.write_text(json.dumps({"settings": settings, "fitness_spread_with_warmup": spread, "runs": rows}, indent=2))
    plot(rows, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
