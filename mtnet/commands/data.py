"""``mtnet data check|stats CONFIG|DIR``: find every problem in a data set; count and plot what is in it.

A target is a YAML config (its ``data.sources`` or ``data.root``; both splits) or a data folder: a COCO
folder (``annotations/instances_<split>.json`` ...; every split found) or a VOC folder (``JPEGImages/``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Target:
    type: str  # coco | voc
    root: Path
    split: str
    options: dict = field(default_factory=dict)  # instances / keypoints / image_dir paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    check = sub.add_parser("check", help="list every problem with file and annotation id; exit 1 on errors")
    stats = sub.add_parser("stats", help="class counts, box sizes/aspects, keypoint visibility, seg frequencies")
    for p in (check, stats):
        p.add_argument("target", help="a YAML config (or packaged config name) or a COCO / VOC data folder")
        p.add_argument("--split", action="append", help="only these splits (repeatable; default: all found)")
    check.add_argument("--no-images", action="store_true", help="do not open image and mask files")
    check.add_argument("--fast", action="store_true",
                       help="read image and mask headers only (default: decode every file in full, in parallel)")
    check.add_argument("--warnings", action=argparse.BooleanOptionalAction, default=True, help="print warnings")
    stats.add_argument("--out", default="runs/data_stats", help="folder for the PNG plots and stats.json")
    stats.add_argument("--seg-images", type=int, default=200, help="masks read for segmentation frequencies")
    stats.add_argument("--beta", type=float, default=0.999, help="beta of the class-balanced weights")


def _folder_targets(root: Path) -> list[Target]:
    from ..data.sample import DataError

    if (root / "JPEGImages").is_dir():
        splits = sorted({p.stem for d in ("Main", "Segmentation") for p in (root / "ImageSets" / d).glob("*.txt")
                         if "_" not in p.stem})  # Main/<class>_<split>.txt are per-class lists
        return [Target("voc", root, s) for s in splits]
    ann = root / "annotations"
    splits = sorted({p.stem.split("_", 1)[1] if p.stem.startswith("instances_") else p.stem.split("_", 2)[2]
                     for p in list(ann.glob("instances_*.json")) + list(ann.glob("person_keypoints_*.json"))})
    if not splits:
        raise DataError(f"{root}: neither a COCO folder (annotations/instances_<split>.json) nor VOC (JPEGImages/)")
    return [Target("coco", root, s) for s in splits]


def resolve_targets(target: str, splits: list[str] | None) -> list[Target]:
    from ..config import load_config
    from ..data.sample import DataError

    path = Path(target)
    if path.is_dir():
        found = _folder_targets(path)
    else:
        cfg = load_config(target)
        found = []
        if cfg.data.sources:
            for sc in cfg.data.sources:
                for split in dict.fromkeys(s for s in (sc.train_split, sc.val_split) if s):
                    fill = {k: Path(v.replace("{split}", split)) for k, v in
                            (("instances", sc.instances), ("keypoints", sc.keypoints), ("image_dir", sc.images)) if v}
                    found.append(Target(sc.type, Path(sc.root), split, fill))
        else:
            found = [Target("coco", Path(cfg.data.root), s) for s in (cfg.data.train_split, cfg.data.val_split)]
        for t in found:
            if not t.root.is_dir():
                raise DataError(f"{t.root}: data folder not found")
    if splits:
        found = [t for t in found if t.split in splits]
        if not found:
            raise DataError(f"{target}: none of the splits {splits} found")
    return found


def _check(args) -> int:
    from ..data.checks import check_coco, check_voc

    errors = warnings = 0
    for t in resolve_targets(args.target, args.split):
        if t.type == "voc":
            issues = check_voc(t.root, t.split, images=not args.no_images, decode=not args.fast, progress=True)
        else:
            issues = check_coco(t.root, t.split, images=not args.no_images, decode=not args.fast, progress=True,
                                **t.options)
        e = sum(i.severity == "error" for i in issues)
        errors, warnings = errors + e, warnings + len(issues) - e
        for issue in issues:
            if issue.severity == "error" or args.warnings:
                print(issue)
        print(f"{t.type} {t.root} [{t.split}]: {e} errors, {len(issues) - e} warnings")
    print(f"total: {errors} errors, {warnings} warnings")
    return 1 if errors else 0


def _stats(args) -> int:
    from ..data.coco import CocoSource
    from ..data.stats import compute_stats, format_table, write_plots
    from ..data.voc import VocSource

    for t in resolve_targets(args.target, args.split):
        source = VocSource(t.root, t.split) if t.type == "voc" else CocoSource(t.root, t.split, **t.options)
        stats = compute_stats(source, seg_images=args.seg_images, beta=args.beta)
        out = Path(args.out) / f"{t.root.name}_{t.split}"
        written = write_plots(stats, out)
        print(f"== {t.type} {t.root} [{t.split}]")
        print(format_table(stats))
        print(f"wrote {', '.join(str(p) for p in written)} and {out / 'stats.json'}")
    return 0


def run(args) -> int:
    return _check(args) if args.data_command == "check" else _stats(args)
