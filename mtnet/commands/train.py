"""mtnet train CONFIG [key.sub=value ...] [--resume [LAST_PT]] [--devices N]

Multi-process: ``torchrun --nproc_per_node=N -m mtnet train CONFIG`` (or ``--devices N``, which runs exactly
that). Every process trains; rank 0 alone evaluates, writes files and prints the report.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config path or packaged name (quickstart, coco_mnv2_320)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.epochs=10")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="LAST_PT",
                   help="resume from runs/<name>/last.pt (or the given checkpoint)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.add_argument("--devices", type=int, default=0, metavar="N",
                   help="launch N local processes with torchrun (GPUs: one per GPU, NCCL; CPU: gloo)")


def _torchrun_argv(args: argparse.Namespace) -> list[str]:
    """The same ``train`` command without ``--devices``, for each process torchrun starts."""
    argv = ["train", args.config, *args.overrides]
    if args.resume:
        argv += ["--resume"] if args.resume is True else ["--resume", str(args.resume)]
    return argv + (["--no-progress"] if args.no_progress else [])


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..engine import distributed
    from ..errors import UserError

    cfg = load_config(args.config, args.overrides)  # fail on a bad config before any process starts
    ctx = distributed.env_context()
    if args.devices > 1 and not ctx.enabled:
        return distributed.launch(args.devices, _torchrun_argv(args))
    if args.devices < 0:
        raise UserError(f"--devices: expected a positive number, got {args.devices}")
    try:
        if not ctx.is_main:
            from ..engine.trainer import Trainer

            Trainer(cfg, resume=args.resume, progress=False).fit()
            return 0
        return _train_and_print(cfg, args)
    finally:
        distributed.cleanup()


def _train_and_print(cfg, args: argparse.Namespace) -> int:
    from ..eval.report import metrics_table
    from ..workflows import train_and_report

    metrics = train_and_report(cfg, resume=args.resume, progress=not args.no_progress)
    if metrics.get("stopped_early"):
        print(f"stopped after step {metrics['step']}; resume with: mtnet train {args.config} --resume")
        return 0
    print(metrics_table(metrics))
    print(f"\nrun folder: {metrics['run_dir']}")
    return 0
