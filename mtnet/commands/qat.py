"""mtnet qat CHECKPOINT [--epochs 2] [--lr 1e-4] [--objective labels|teacher] [--out qat.pt]: quantisation-aware fine-tuning for int8 TFLite."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="trained float checkpoint (best.pt)")
    p.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs with fake quantisation")
    p.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (cosine to 0)")
    p.add_argument("--ema", action="store_true", help="bake the moving average of the weights (train.ema_decay)")
    p.add_argument("--objective", choices=["labels", "teacher"], default="labels",
                   help="labels: the task losses; teacher: reproduce the float checkpoint's outputs (int8 tracks it)")
    p.add_argument("--calib-batches", type=int, default=8, help="training batches that set the initial ranges")
    p.add_argument("--data", default=None, help="COCO or VOC folder to train on (default: the checkpoint's data)")
    p.add_argument("--out", default=None, help="QAT checkpoint to write (default: qat.pt next to CHECKPOINT)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from mtnet.calibration.qat import qat_finetune

    out = Path(args.out) if args.out else Path(args.checkpoint).with_name("qat.pt")
    section = qat_finetune(args.checkpoint, out, epochs=args.epochs, lr=args.lr, calib_batches=args.calib_batches,
                           ema=args.ema, objective=args.objective, data_root=args.data, progress=not args.no_progress)
    print(f"QAT: {section['epochs']} epochs ({section['steps']} steps, {section['train_s']:.0f} s), "
          f"{len(section['ranges'])} activation ranges, final loss {section['final_loss']:.4f}")
    print(f"wrote {out}; export it with: mtnet export {out} --quant qat")
    return 0
