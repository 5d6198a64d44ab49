"""Large-batch from-scratch recipe: linear LR scaling + warmup across effective batches 16 / 64 / 256,
and the large LR without warmup.

    python benchmarks/large_batch.py [--epochs 8] [--num-train 384] [--imgsz 128] [--width 0.35]
                                     [--optimizer adamw|sgd] [--base-lr LR] [--warmup-epochs 2]
                                     [--lr-sweep M [M ...]] [--out benchmarks/results/large_batch.json]

Claims checked (Goyal et al. 2017, on our three-task model, trained from scratch on the seeded synthetic set):
(a) with LR = base_lr x batch / 256 and a linear warmup, effective batches 16, 64 and 256 reach similar
    validation metrics after the same number of epochs (256 images per step come from 32-image
    micro-batches x 8 accumulation steps on CPU; BN therefore sees 32 images, the accumulation caveat);
(b) the batch-256 LR without warmup (full LR from step 0) does clearly worse or diverges. ``--lr-sweep 1 4 16``
    runs (b) alone as a sweep: the batch-256 pair (warmup / none) at base LR x 1, x 4 and x 16 (Goyal et al.:
    the gap is largest at the largest LR that still trains with warmup).
Every run has the same data, seed, epochs, optimizer, EMA, gradient clipping (norm 10) and schedule shape
(cosine). ``--optimizer adamw`` (default): the quickstart's AdamW, weight decay 0.05; ``sgd``: the COCO
recipe's SGD (Nesterov momentum 0.9, weight decay 5e-5); neither decays BN weights or biases. A run whose
loss stays non-finite (``TrainingError``) is recorded as diverged, and every batch the trainer's non-finite-loss
guard skipped is counted. The detection head can also fail without a non-finite loss: the foreground anchors
of the last step (``fg_anchors_last``, 0 = the task-aligned assigner matched nothing, so the detection loss is
0 and no longer trains anything) are recorded too. Metrics are the EMA weights' after the last epoch. Prints a
table, writes JSON to ``--out`` and the curves (training loss per epoch and per step, LR per step) to a PNG
beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from budget import budget_parser

from mtnet.config import load_config
from mtnet.engine.schedules import warmup_length
from mtnet.engine.trainer import Trainer, TrainingError


@dataclass(frozen=True)
class Run:
    key: str
    batch: int  # per forward pass
    accumulate: int
    warmup: bool
    lr_mult: float = 1.0  # x --base-lr (the LR sweep)

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
    p.add_argument("--warmup-steps", type=int, default=0, help="warmup in optimizer steps (> 0 overrides epochs)")
    p.add_argument("--lr-sweep", type=float, nargs="+", default=None, metavar="M",
                   help="run only part (b): batch 256 with and without warmup at base LR x M for each M")
    p.add_argument("--seed", type=int, default=0, help="train.seed (weights init and data order)")
    p.add_argument("--grad-clip", type=float, default=10.0,
                   help="max grad norm (the trainer default); 0 shows what warmup alone does")
    p.add_argument("--data", default="/tmp/mtnet_bench/synthetic", help="synthetic data folder (generated once)")
    p.add_argument("--runs-dir", default="/tmp/mtnet_bench/large_batch")
    p.add_argument("--only", nargs="*", default=None, help=f"subset of {[r.key for r in RUNS]} (or of the sweep's)")
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
        f"train.base_lr={args.base_lr * run.lr_mult}", f"train.weight_decay={WEIGHT_DECAY[args.optimizer]}",
        f"train.warmup_epochs={args.warmup_epochs if run.warmup else 0}",
        f"train.warmup_steps={args.warmup_steps if run.warmup else 0}", "train.device=cpu",
        f"train.eval_interval={max(1, args.epochs // 3)}", "train.ema_tau=20", f"train.grad_clip={args.grad_clip}",
        f"train.seed={args.seed}",
    ])


def sweep_runs(mults: list[float]) -> list[Run]:
    """Part (b) as an LR sweep: the batch-256 pair (warmup / none) at base LR x M."""
    return [Run(f"b256{'' if warm else '_no_warmup'}_x{m:g}", 32, 8, warm, m) for m in mults for warm in (True, False)]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def train(args: argparse.Namespace, run: Run) -> dict:
    start = time.perf_counter()
    trainer = Trainer(config(args, run), progress=False)
    tc = trainer.cfg.train
    row = {"run": run.key, "effective_batch": run.effective, "batch": run.batch, "accumulate": run.accumulate,
           "lr_mult": run.lr_mult, "peak_lr": trainer.lr, "warmup": run.warmup,
           "warmup_steps": warmup_length(trainer.steps_per_epoch, tc.warmup_epochs, tc.warmup_steps),
           "total_steps": trainer.total_steps, "diverged": False}
    try:
        result = trainer.fit()
        metrics = result.metrics
    except TrainingError as e:  # non-finite loss for several steps: the run diverged
        row["diverged"], metrics = True, {}
        row["error"] = str(e)
    row["nonfinite_batches"] = trainer.nonfinite_batches
    epochs = read_csv(trainer.run_dir / "metrics.csv") if (trainer.run_dir / "metrics.csv").is_file() else []
    steps = read_csv(trainer.run_dir / "steps.csv") if (trainer.run_dir / "steps.csv").is_file() else []
    row.update({k: metrics.get(k) for k in ("bbox_AP50", "kpt_AP50", "mIoU", "fitness")})
    row["final_train_loss"] = float(epochs[-1]["loss"]) if epochs else None
    if row["final_train_loss"] is not None and not math.isfinite(row["final_train_loss"]):
        row["diverged"] = True
    row["loss_per_epoch"] = [float(r["loss"]) for r in epochs]
    row["lr_per_step"] = [float(r["lr"]) for r in steps]
    row["loss_per_step"] = [float(r["loss"]) for r in steps]
    row["peak_step_loss"] = max(row["loss_per_step"], default=None)
    row["fg_anchors_per_step"] = [float(r["num_fg"]) for r in steps if r.get("num_fg") not in (None, "")]
    row["fg_anchors_last"] = row["fg_anchors_per_step"][-1] if row["fg_anchors_per_step"] else None
    row["val_per_eval"] = [{"epoch": int(r["epoch"]) + 1, **{k: float(r[k]) for k in ("bbox_AP50", "mIoU")}}
                           for r in epochs if r.get("mIoU") not in (None, "")]
    row["train_s"] = time.perf_counter() - start
    return row


def fmt(v, spec=".3f") -> str:
    return "-" if v is None else format(v, spec)


def plot(rows: list[dict], path: Path) -> None:
    """(a): training loss per epoch and per step, LR per step. An LR sweep: one colour per LR, dashed = no
    warmup, and the validation bbox AP50 / mIoU at every evaluation instead of the epoch-mean loss (a
    collapsed detection head lowers the training loss: with no foreground anchors its loss is 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mults = sorted({r.get("lr_mult", 1.0) for r in rows})
    sweep = len(mults) > 1
    fig, axes = plt.subplots(1, 4 if sweep else 3, figsize=(21 if sweep else 16, 4.5))
    loss_ax, lr_ax = axes[1], axes[-1]
    for i, r in enumerate(rows):
        label = f"{r['run']} (lr {r['peak_lr']:.2g})"
        colour = f"C{mults.index(r.get('lr_mult', 1.0)) if sweep else i}"
        style = "-" if r.get("warmup", True) or not sweep else "--"
        ep = r["loss_per_epoch"]
        if sweep:
            evals = r.get("val_per_eval", [])
            for ax, key in ((axes[0], "bbox_AP50"), (axes[2], "mIoU")):
                ax.plot([e["epoch"] for e in evals], [e[key] for e in evals], style, color=colour, marker="o",
                        ms=4, label=label)
        else:
            axes[0].plot(range(1, len(ep) + 1), ep, style, color=colour, marker="o", ms=3, label=label)
        n = len(r["loss_per_step"])
        if n:
            frac = [(i + 1) / n * len(ep or [0]) for i in range(n)]
            loss_ax.plot(frac, r["loss_per_step"], style, color=colour, alpha=0.7, label=label)
            lr_ax.plot(frac, r["lr_per_step"], style, color=colour, label=label)
    if sweep:
        axes[0].set(title="val bbox AP50 (EMA weights)", xlabel="epoch")
        axes[2].set(title="val mIoU (EMA weights)", xlabel="epoch")
    else:
        axes[0].set(title="training loss (epoch mean)", xlabel="epoch", yscale="log")
    loss_ax.set(title="training loss per step" + (" (dashed: no warmup)" if sweep else ""), xlabel="epoch",
                yscale="log")
    lr_ax.set(title="learning rate per step", xlabel="epoch", yscale="log" if sweep else "linear")
    for ax in axes:
        ax.legend(fontsize=7 if sweep else 8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def print_table(args: argparse.Namespace, rows: list[dict]) -> None:
    print(f"\nLarge-batch recipe, {args.epochs} epochs, {args.num_train} train / {args.num_val} val images, "
          f"{args.imgsz} px, width {args.width}, {args.optimizer} base LR {args.base_lr}/256 images, seed {args.seed}")
    print(f"{'run':<22}{'eff.batch':>10}{'fwd x acc':>10}{'peak LR':>9}{'warmup':>8}{'steps':>7}{'loss':>8}"
          f"{'peak loss':>11}{'bbox AP50':>10}{'kpt AP50':>9}{'mIoU':>7}{'fitness':>8}{'non-fin':>8}{'fg last':>8}"
          f"{'time s':>8}")
    for r in rows:
        print(f"{r['run']:<22}{r['effective_batch']:>10}{str(r['batch']) + 'x' + str(r['accumulate']):>10}"
              f"{r['peak_lr']:>9.4f}{r['warmup_steps']:>8}{r['total_steps']:>7}{fmt(r['final_train_loss'], '.4g'):>8}"
              f"{fmt(r['peak_step_loss'], '.4g'):>11}{fmt(r['bbox_AP50']):>10}{fmt(r['kpt_AP50']):>9}"
              f"{fmt(r['mIoU']):>7}{fmt(r['fitness']):>8}{r['nonfinite_batches']:>8}{fmt(r['fg_anchors_last'], '.0f'):>8}"
              f"{r['train_s']:>8.0f}" + ("  DIVERGED" if r["diverged"] else ""))


def main() -> None:
    args = parse_args()
    candidates = sweep_runs(args.lr_sweep) if args.lr_sweep else list(RUNS)
    runs = [r for r in candidates if args.only is None or r.key in args.only]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "only")}
    rows, spread = [], None
    for run in runs:
        rows.append(train(args, run))
        r = rows[-1]
        print(f"{run.key}: fitness {fmt(r['fitness'])} diverged={r['diverged']} non-finite batches "
              f"{r['nonfinite_batches']} ({r['train_s']:.0f} s)", flush=True)
        if not args.lr_sweep:
            warm = [r["fitness"] for r in rows if r["warmup"] and r["fitness"] is not None]
            spread = max(warm) - min(warm) if len(warm) > 1 else None
        # written after every run: a long sweep interrupted by the host keeps what it measured
        out.write_text(json.dumps({"settings": settings, "fitness_spread_with_warmup": spread, "runs": rows},
                                  indent=2))
    if args.lr_sweep:  # table and JSON in LR order, warmup first, whatever order the sweep ran in
        rows.sort(key=lambda r: (r["lr_mult"], not r["warmup"]))
        out.write_text(json.dumps({"settings": settings, "fitness_spread_with_warmup": spread, "runs": rows},
                                  indent=2))
    print_table(args, rows)
    if spread is not None:
        print(f"fitness spread across batches 16/64/256 with warmup: {spread:.3f}")
    by_key = {r["run"]: r for r in rows}
    for m in args.lr_sweep or []:
        w, n = by_key.get(f"b256_x{m:g}"), by_key.get(f"b256_no_warmup_x{m:g}")
        if w and n and None not in (w["mIoU"], n["mIoU"], w["bbox_AP50"], n["bbox_AP50"]):
            print(f"LR x{m:g} ({w['peak_lr']:.3g}): no warmup minus warmup: bbox AP50 "
                  f"{n['bbox_AP50'] - w['bbox_AP50']:+.3f}, mIoU {n['mIoU'] - w['mIoU']:+.3f}")
    plot(rows, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
