"""mtnet quickstart: synthetic data -> three-task training from scratch on CPU -> evaluation -> pictures."""

from __future__ import annotations

import argparse

# training part of the 15-minute quickstart: measured runs ended 0-25 s after the budget (data generation,
# start-up, final evaluation and pictures)
QUICKSTART_BUDGET_MIN = 13.5


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides of configs/quickstart.yaml")
    p.add_argument("--budget-min", type=float, default=QUICKSTART_BUDGET_MIN,
                   help="training time budget in minutes (train.time_budget_min): fewer epochs on a slower machine, "
                        "so the whole quickstart stays within 15 minutes; 0 = always train all epochs")
    p.add_argument("--resume", action="store_true", help="continue an interrupted quickstart run")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..eval.report import metrics_table
    from ..workflows import train_and_report

    cfg = load_config("quickstart", [f"train.time_budget_min={args.budget_min}", *args.overrides])
    print(f"mtnet quickstart: data in {cfg.data.root}, run in {cfg.output_dir}/{cfg.name}")
    metrics = train_and_report(cfg, resume=args.resume, progress=not args.no_progress)
    print(metrics_table(metrics))
    run_dir = metrics["run_dir"]
    print(f"\nwrote {run_dir}/: best.pt last.pt metrics.csv metrics.json training_curves.png examples.png")
    return 0
