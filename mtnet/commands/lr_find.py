"""mtnet lr-find CONFIG [key.sub=value ...] [--min-lr --max-lr --steps --out DIR]"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config path or packaged name")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.batch_size=64")
    p.add_argument("--min-lr", type=float, default=1e-6, help="first LR of the sweep (default 1e-6)")
    p.add_argument("--max-lr", type=float, default=1.0, help="last LR of the sweep (default 1)")
    p.add_argument("--steps", type=int, default=100, help="optimizer steps of the sweep (default 100)")
    p.add_argument("--out", default=None, help="output folder (default runs/<name>/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..config import load_config
    from ..engine.lr_finder import lr_range_test, save_result

    cfg = load_config(args.config, args.overrides)
    result = lr_range_test(cfg, min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps,
                           progress=not args.no_progress)
    out = Path(args.out) if args.out else Path(cfg.output_dir) / cfg.name
    json_path, png_path = save_result(result, out)
    print(f"steps run            {len(result.lrs)} of {args.steps} ({'diverged' if result.diverged else 'no divergence'})")
    print(f"loss minimum at LR   {result.min_loss_lr:.3g}")
    print(f"steepest descent LR  {result.steepest_lr:.3g}")
    print(f"suggested max LR     {result.suggested_lr:.3g} at batch {result.batch_size}"
          f"  ->  train.base_lr={result.suggested_base_lr:.3g} (per 256 images)")
    for note in result.notes:
        print(f"note: {note}")
    print(f"plot: {png_path}\njson: {json_path}")
    return 0
