"""``mtnet data check|stats CONFIG|DIR``: find every problem in a data set; count and plot what is in it.

A target is a YAML config (its ``data.sources`` or ``data.root``; both splits) or a data folder: a COCO
folder (``annotations/instances_<split>.json`` ...; every split found) or a VOC folder (``JPEGImages/``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ..config import SourceConfig


@dataclass
class Target:
    source: SourceConfig  # type (coco | voc), root, and for configured sources their file paths / classes
    split: str

    @property
    def name(self) -> str:
        return f"{self.source.type} {self.source.root} [{self.split}]"


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
    from ..data.build import folder_type
    from ..data.sample import DataError

    if folder_type(root) == "voc":
        splits = sorted({p.stem for d in ("Main", "Segmentation") for p in (root / "ImageSets" / d).glob("*.txt")
                         if "_" not in p.stem})  # Main/<class>_<split>.txt are per-class lists
        return [Target(SourceConfig(type="voc", root=str(root)), s) for s in splits]
    ann = root / "annotations"
    splits = sorted({p.stem.split("_", 1)[1] if p.stem.startswith("instances_") else p.stem.split("_", 2)[2]
                     for p in list(ann.glob("instances_*.json")) + list(ann.glob("person_keypoints_*.json"))})
    if not splits:
        raise DataError(f"{root}: neither a COCO folder (annotations/instances_<split>.json) nor VOC (JPEGImages/)")
    return [Target(SourceConfig(type="coco", root=str(root)), s) for s in splits]


def resolve_targets(target: str, splits: list[str] | None) -> list[Target]:
    from ..config import load_config
    from ..data.build import folder_type
    from ..data.sample import DataError

    path = Path(target)
    if path.is_dir():
        found = _folder_targets(path)
    else:
        cfg = load_config(target)
        found = []
        if cfg.data.sources:
            found = [Target(sc, split) for sc in cfg.data.sources
                     for split in dict.fromkeys(s for s in (sc.train_split, sc.val_split) if s)]
        else:
            root = SourceConfig(type=folder_type(cfg.data.root), root=cfg.data.root)
            found = [Target(root, s) for s in (cfg.data.train_split, cfg.data.val_split)]
        for t in found:
            if not Path(t.source.root).is_dir():
                raise DataError(f"{t.source.root}: data folder not found")
    if splits:
        found = [t for t in found if t.split in splits]
        if not found:
            raise DataError(f"{target}: none of the splits {splits} found")
    return found


def _check(args) -> int:
    from ..data.build import check_source

    errors = warnings = 0
    for t in resolve_targets(args.target, args.split):
        issues = check_source(t.source, t.split, images=not args.no_images, decode=not args.fast, progress=True)
        e = sum(i.severity == "error" for i in issues)
        errors, warnings = errors + e, warnings + len(issues) - e
        for issue in issues:
            if issue.severity == "error" or args.warnings:
                print(issue)
        print(f"{t.name}: {e} errors, {len(issues) - e} warnings")
    print(f"total: {errors} errors, {warnings} warnings")
    return 1 if errors else 0


def _stats(args) -> int:
    from ..data.build import open_source
    from ..data.stats import compute_stats, format_table, write_plots

    for t in resolve_targets(args.target, args.split):
        stats = compute_stats(open_source(t.source, t.split), seg_images=args.seg_images, beta=args.beta)
        out = Path(args.out) / f"{Path(t.source.root).name}_{t.split}"
        written = write_plots(stats, out)
        print(f"== {t.name}")
        print(format_table(stats))
        print(f"wrote {', '.join(str(p) for p in written)} and {out / 'stats.json'}")
    return 0


def run(args) -> int:
    return _check(args) if args.data_command == "check" else _stats(args)
