"""Instance masks on the quickstart recipe: three-task baseline, four-task (full outlines), four-task (weak:
boxes + semantic maps only), one budget, synthetic val split.

    python benchmarks/instance_masks.py [--epochs 40] [--inst-weight W] [--runs-dir runs]
                                        [--out benchmarks/results/instance_masks.json]

Each variant is ``mtnet train quickstart`` with the same overrides (epochs, one final evaluation); a variant whose
``runs/<name>/metrics.json`` exists is read, not retrained, so the three can also be trained side by side as
separate processes (``mtnet train configs/quickstart.yaml name=... <overrides>``, the lines printed by
``--print-commands``). The weak variant reads the same data through ``data.sources`` with ``tasks: [det, seg,
pose]``: its samples carry no instance outlines, so every mask target comes from boxes + semantic maps.
Checks printed and written: mask AP50 within 0.10 of box AP50 (full), weak within 0.15 of full mask AP50, and
the three-task metrics of the four-task run next to the baseline's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mtnet.config import load_config
from mtnet.fileio import atomic_write
from mtnet.workflows import train_and_report

WEAK_SOURCE = "data.sources=[{type: coco, root: data/synthetic, train_split: train, val_split: val, tasks: [det, seg, pose]}]"
FOUR = "model.tasks=[det,seg,pose,inst]"


def variants(inst_weight: float | None) -> dict[str, list[str]]:
    """Run name -> overrides; an ``inst_weight`` trains the four-task runs with that mask-loss weight instead of
    the task's default."""
    tag, weight = ("", []) if inst_weight is None else (f"_w{inst_weight:g}", [f"loss.task_weights={{inst: {inst_weight}}}"])
    return {"inst_base3": [], f"inst_full4{tag}": [FOUR, *weight], f"inst_weak4{tag}": [FOUR, WEAK_SOURCE, *weight]}
KEYS = ("bbox_AP", "bbox_AP50", "segm_AP", "segm_AP50", "kpt_AP", "kpt_AP50", "mIoU")


def overrides(name: str, extra: list[str], epochs: int, runs_dir: str) -> list[str]:
    return [f"name={name}", f"output_dir={runs_dir}", f"train.epochs={epochs}", f"train.eval_interval={epochs}", *extra]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40, help="the quickstart recipe's 40")
    ap.add_argument("--inst-weight", type=float, default=None,
                    help="loss.task_weights.inst of the four-task runs (default: the inst task's own, 8)")
    ap.add_argument("--runs-dir", default="runs")
    ap.add_argument("--out", default="benchmarks/results/instance_masks.json")
    ap.add_argument("--print-commands", action="store_true", help="print the three training commands and exit")
    args = ap.parse_args()
    runs = variants(args.inst_weight)
    if args.print_commands:
        for name, extra in runs.items():
            print("mtnet train configs/quickstart.yaml " + " ".join(f"'{o}'" for o in overrides(name, extra, args.epochs, args.runs_dir)))
        return
    rows = {}
    for name, extra in runs.items():
        path = Path(args.runs_dir) / name / "metrics.json"
        if not path.is_file():
            train_and_report(load_config("quickstart", overrides(name, extra, args.epochs, args.runs_dir)), progress=False)
        m = json.loads(path.read_text())
        rows[name] = {k: m.get(k) for k in KEYS} | {"epochs": m.get("epochs"), "train_s": m.get("train_s")}
    base, full, weak = rows.values()
    checks = {
        "mask_AP50_vs_box_AP50": round(full["bbox_AP50"] - full["segm_AP50"], 4),
        "mask_AP50_within_0.10_of_box_AP50": full["bbox_AP50"] - full["segm_AP50"] <= 0.10,
        "weak_vs_full_mask_AP50": round(full["segm_AP50"] - weak["segm_AP50"], 4),
        "weak_within_0.15_of_full": full["segm_AP50"] - weak["segm_AP50"] <= 0.15,
        "four_task_minus_baseline": {k: round(full[k] - base[k], 4) for k in ("bbox_AP50", "kpt_AP50", "mIoU")},
    }
    print("| run | box AP / AP50 | mask AP / AP50 | keypoint AP / AP50 | mIoU |\n|---|---|---|---|---|")
    for name, r in rows.items():
        mask = f"{r['segm_AP']:.3f} / {r['segm_AP50']:.3f}" if r["segm_AP"] is not None else "–"
        print(f"| {name} | {r['bbox_AP']:.3f} / {r['bbox_AP50']:.3f} | {mask} | {r['kpt_AP']:.3f} / {r['kpt_AP50']:.3f} "
              f"| {r['mIoU']:.3f} |")
    print(json.dumps(checks, indent=2))
    doc = {"epochs": args.epochs, "inst_weight": args.inst_weight, "runs": rows, "checks": checks}
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=2)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
