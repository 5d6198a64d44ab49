"""Where the full pyramid (strides 8/16/32) loses against stride 8 alone: one change at a time, same budget.

    python benchmarks/pyramid_ablation.py [--epochs 30] [--only p3,p345,...] [--threads 1]
                                          [--out benchmarks/results/pyramid_ablation.json]

Why: on data whose objects span 12 px to more than half the image (``configs/scale_spread.yaml``, the
scale-spread synthetic variant) the detection and pose heads must read several pyramid levels, and every
design choice of a multi-level head (weight sharing across levels, assignment, the keypoint offset scale,
the PAN path) changes what each level learns. Each variant below is the base config plus overrides; every
row trains from scratch with the same seed, epochs, batch and LR recipe, in its own process with
``--threads`` torch threads, and is scored by mtnet's COCO evaluators on the same val json.

Each finished row is written to ``<out stem>/<variant>.json`` as soon as it ends, so a long sweep can be
split over processes (``--only``) and a rerun skips finished rows (``--force`` retrains them). The table
and ``--out`` are assembled from every row present.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from coco_subset import category_subset
from result_rows import run_rows, write_json

ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = ROOT / "configs" / "scale_spread.yaml"


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    overrides: tuple[str, ...]
    person_only: bool = False  # YOLO11n-pose's task set: person boxes + keypoints (no other category)
    pose_labelled_only: bool = False  # and, as YOLO11n-pose's labels, train only on persons with keypoints


MOSAIC_SEP = ("model.share_head_levels=false", "data.augment.mosaic=1.0", "data.augment.no_aug_epochs=3")
DFL = ("model.box_bins=16", "loss.box_iou=ciou")
RECIPE = (*MOSAIC_SEP, *DFL, "data.augment.mosaic_scale=[0.5,1.5]", "data.augment.no_aug_epochs=10")
DETPOSE_NOMOSAIC = (*RECIPE, "model.tasks=[det,pose]", "data.augment.mosaic=0.0")
VARIANTS = (
    Variant("p3", "stride 8 only", ("model.head_strides=[8]",)),
    Variant("p345", "8/16/32, heads shared across levels", ("model.share_head_levels=true",)),
    Variant("p345_sep", "8/16/32, one head per level", ("model.share_head_levels=false",)),
    Variant("p345_finest", "8/16/32, shared heads, keypoints from the finest level",
            ("model.share_head_levels=true", "model.pose_level=finest")),
    Variant("p345_sep_finest", "8/16/32, one head per level, keypoints from the finest level",
            ("model.share_head_levels=false", "model.pose_level=finest")),
    Variant("p345_finest_mosaic", "8/16/32, shared heads, keypoints from the finest level, mosaic",
            ("model.share_head_levels=true", "model.pose_level=finest", "data.augment.mosaic=1.0",
             "data.augment.no_aug_epochs=3")),
    Variant("p345_sep_mosaic", "8/16/32, one head per level, mosaic",
            ("model.share_head_levels=false", "data.augment.mosaic=1.0", "data.augment.no_aug_epochs=3")),
    Variant("w10_sep_mosaic", "width 1.0, 8/16/32, one head per level, mosaic",
            ("model.width=1.0", "model.neck_channels=64", "model.head_channels=64", "model.share_head_levels=false",
             "data.augment.mosaic=1.0", "data.augment.no_aug_epochs=3")),
    Variant("p345_sep_pan", "8/16/32, one head per level + PAN", ("model.share_head_levels=false", "model.pan=true")),
    # detection recipe, on top of "one head per level, mosaic"
    Variant("sm_det", "… detection only (tasks: [det])", (*MOSAIC_SEP, "model.tasks=[det]")),
    Variant("sm_box75", "… box loss weight 7.5 (YOLOv8's box : cls ratio)", (*MOSAIC_SEP, "loss.box=7.5")),
    Variant("sm_ciou", "… CIoU instead of GIoU", (*MOSAIC_SEP, "loss.box_iou=ciou")),
    Variant("sm_dfl", "… DFL (16 bins) + CIoU", (*MOSAIC_SEP, *DFL)),
    Variant("dfl_close10", "… DFL + CIoU, last 10 epochs without mosaic", (*MOSAIC_SEP, *DFL, "data.augment.no_aug_epochs=10")),
    Variant("dfl_mscale", "… DFL + CIoU, mosaic rescaled 0.5-1.5", (*MOSAIC_SEP, *DFL, "data.augment.mosaic_scale=[0.5,1.5]")),
    # the resulting recipe (library defaults + mosaic), for the peers' task sets (YOLO11n detect: boxes;
    # YOLO11n-pose: person boxes + keypoints) and on stride 8 alone
    Variant("new", "8/16/32, DFL + CIoU, mosaic 0.5-1.5, 10 epochs no-mosaic finish", RECIPE),
    Variant("new_p3", "stride 8 only, DFL + CIoU, mosaic 0.5-1.5, 10 epochs no-mosaic finish",
            ("model.head_strides=[8]", *RECIPE)),
    Variant("new_det", "8/16/32, same recipe, detection only", (*RECIPE, "model.tasks=[det]")),
    Variant("new_detpose", "8/16/32, same recipe, detection + pose", (*RECIPE, "model.tasks=[det,pose]")),
    Variant("new_detpose_w1", "8/16/32, same recipe, detection + pose, pose loss weight 1.0",
            (*RECIPE, "model.tasks=[det,pose]", "loss.pose=1.0")),
    Variant("new_detpose_finest", "8/16/32, same recipe, detection + pose, keypoints from the finest level",
            (*RECIPE, "model.tasks=[det,pose]", "model.pose_level=finest")),
    Variant("new_detpose_nomosaic", "8/16/32, same recipe without mosaic, detection + pose", DETPOSE_NOMOSAIC),
    Variant("new_person_pose", "8/16/32, same recipe, person boxes + keypoints (YOLO11n-pose's task set)",
            (*RECIPE, "model.tasks=[det,pose]"), person_only=True),
    Variant("new_person_pose_nomosaic", "8/16/32, same recipe without mosaic, person boxes + keypoints",
            DETPOSE_NOMOSAIC, person_only=True),
    *(Variant(f"new_person_pose_nomosaic_p{w}{f'_b{blocks}' if blocks != 2 else ''}{f'_s{seed}' if seed else ''}",
              f"… without mosaic, person boxes + keypoints, pose towers {w} wide, {blocks} blocks, seed {seed}",
              (*DETPOSE_NOMOSAIC, f"model.pose_channels={w}", f"model.pose_blocks={blocks}", f"train.seed={seed}"),
              person_only=True)
      for w, blocks, seed in ((96, 2, 0), (128, 2, 0), (128, 2, 1), (192, 2, 0), (192, 2, 1), (128, 3, 0), (128, 3, 1),
                              (96, 3, 0), (96, 3, 1))),
    Variant("new_person_pose_nomosaic_p128_pw1", "… without mosaic, person boxes + keypoints, pose towers 128 wide, "
            "pose loss weight 1", (*DETPOSE_NOMOSAIC, "model.pose_channels=128", "loss.pose=1.0"), person_only=True),
    *(Variant(f"new_pose_labelled_p128{suffix}", f"… without mosaic, pose towers 128 wide, trained on YOLO11n-pose's "
              f"labels (persons with keypoints){label}", (*DETPOSE_NOMOSAIC, "model.pose_channels=128", *extra),
              person_only=True, pose_labelled_only=True)
      for suffix, label, extra in (("", "", ()), ("_neck64", ", 64-channel neck", ("model.neck_channels=64",)),
                                   ("_scale", ", YOLO's rescale range 0.5-1.5", ("data.augment.scale=[0.5,1.5]",)))),
    Variant("new_detpose_nomosaic_p128", "… without mosaic, detection + pose, pose towers 128 wide",
            (*DETPOSE_NOMOSAIC, "model.pose_channels=128")),
    Variant("new_p128", "8/16/32, same recipe, pose towers 128 wide", (*RECIPE, "model.pose_channels=128")),
    Variant("new_nomosaic", "8/16/32, same recipe without mosaic", (*RECIPE, "data.augment.mosaic=0.0")),
    Variant("new_nomosaic_p128", "8/16/32, same recipe without mosaic, pose towers 128 wide",
            (*RECIPE, "data.augment.mosaic=0.0", "model.pose_channels=128")),
)
METRICS = ("bbox_AP", "bbox_AP50", "bbox_AP_small", "bbox_AP_medium", "bbox_AP_large", "kpt_AP", "kpt_AP50", "mIoU")


def with_seed(variant: Variant, seed: int) -> Variant:
    """The same variant trained with another seed (init, data order, augmentation)."""
    return Variant(f"{variant.key}_seed{seed}", f"{variant.label}, seed {seed}",
                   (*variant.overrides, f"train.seed={seed}"), variant.person_only, variant.pose_labelled_only)


def run_variant(variant: Variant, epochs: int, threads: int, run_root: Path, data_root: str,
                budget_min: float) -> dict:
    """Train one variant in a child process (own thread count) and return its final metrics."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    overrides = variant.overrides
    if variant.person_only:
        subset = category_subset(ROOT / data_root, run_root / ("data_person_kpt" if variant.pose_labelled_only
                                                               else "data_person"), ["person"],
                                 pose_labelled_only=("train",) if variant.pose_labelled_only else ())
        overrides = (*overrides, f"data.sources=[{{type: coco, root: {subset}, train_split: train, val_split: val, "
                                 "tasks: [det, pose]}]")
    cmd = [sys.executable, "-m", "mtnet", "train", str(BASE_CONFIG), f"train.epochs={epochs}", f"data.root={data_root}",
           f"train.time_budget_min={budget_min}", f"name={variant.key}", f"output_dir={run_root}", *overrides]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    metrics = json.loads((run_root / variant.key / "metrics.json").read_text())
    return {"label": variant.label, "overrides": list(overrides), "epochs": metrics["epochs"],
            "budget_min": budget_min,
            "train_min": round(metrics["train_s"] / 60, 2), "wall_min": round((time.perf_counter() - start) / 60, 2),
            "params": metrics["params"], **{k: metrics.get(k) for k in METRICS}}


def table(rows: dict[str, dict]) -> str:
    head = "| variant | epochs | train min | box AP | AP50 | AP S | AP M | AP L | kpt AP | kpt AP50 | mIoU |"
    lines = [head, "|---|" + "---:|" * 10]
    known = [v.key for v in VARIANTS if v.key in rows]
    for key in known + sorted(set(rows) - set(known)):  # then the --seed rows
        r = rows[key]
        cells = [f"{r[m]:.3f}" if r.get(m) is not None else "–" for m in METRICS]
        lines.append(f"| {r['label']} | {r['epochs']} | {r['train_min']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30, help="epochs (the most, with --budget-min)")
    p.add_argument("--budget-min", type=float, default=0.0,
                   help="> 0: each row trains for this many minutes (train.time_budget_min) instead of --epochs")
    p.add_argument("--only", default="", help="comma-separated variant keys (default: all)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    p.add_argument("--force", action="store_true", help="retrain rows that already have a result")
    p.add_argument("--seed", type=int, default=None,
                   help="train every chosen variant with this seed instead (rows keyed <variant>_seed<N>)")
    p.add_argument("--data-root", default="data/scale_spread", help="where the scale-spread set is (generated if missing)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "pyramid_ablation"), help="training run folders")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pyramid_ablation.json"))
    args = p.parse_args()
    known = {v.key: v for v in VARIANTS}
    chosen = [k for k in args.only.split(",") if k] or list(known)
    unknown = [k for k in chosen if k not in known]
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {list(known)}")
    if args.seed is not None:
        known = {f"{k}_seed{args.seed}": with_seed(known[k], args.seed) for k in chosen}
        chosen = list(known)
    out = Path(args.out)
    rows = run_rows(out, chosen, lambda key: run_variant(known[key], args.epochs, args.threads, Path(args.runs),
                                                         args.data_root, args.budget_min),
                    lambda row: {m: row[m] for m in METRICS}, force=args.force)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {platform.processor() or ''} "
              f"{os.cpu_count()} cores".strip(), "threads": args.threads, "base_config": str(BASE_CONFIG.relative_to(ROOT)),
              "rows": rows}
    write_json(out, report)
    print(table(rows))


if __name__ == "__main__":
    main()
