"""The training-budget options every training benchmark shares (same flags, per-script defaults).

Imported by the scripts in this folder (``python benchmarks/<name>.py`` puts the folder on sys.path).
"""

from __future__ import annotations

import argparse


def budget_parser(doc: str, *, epochs: int, num_train: int, num_val: int, imgsz: int,
                  width: float) -> argparse.ArgumentParser:
    """An ArgumentParser with --epochs/--num-train/--num-val/--imgsz/--width: the budget all rows share."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--num-train", type=int, default=num_train, help="synthetic train images")
    p.add_argument("--num-val", type=int, default=num_val, help="synthetic val images")
    p.add_argument("--imgsz", type=int, default=imgsz, help="input size (multiple of 32)")
    p.add_argument("--width", type=float, default=width, help="MobileNetV2 width multiplier")
    return p
