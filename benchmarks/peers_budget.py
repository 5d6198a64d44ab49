"""Equal CPU budget: YOLO11n (detect, pose) trained from scratch vs mtnet, scored by mtnet's COCO evaluator.

Budget: every run gets N minutes of one dedicated CPU core (1 thread): ``--budget-min N``, the process pinned
to one core (``taskset -c 1``), ``--threads 1`` (torch threads; OMP/MKL are set to the same number).

- YOLO runs (``--runs yolo11n,yolo11n-pose``): ultralytics 8.4.190 (``pip install -e ".[peers]"``), the
  architecture yaml with random init (``pretrained=False``), its default recipe otherwise, batch 16,
  ``time=N/60`` hours (ultralytics refits its epoch count and LR schedule to the time after every epoch and
  stops mid-epoch when the time is up), ``val=False`` (no per-epoch validation inside the budget; ultralytics
  still validates once after the last epoch, outside the timed loop). Data: the COCO folder converted to YOLO
  labels the way ultralytics' ``convert_coco`` does (crowds skipped; pose: persons with no labelled keypoint
  skipped), class order = the json's category order. Then every val image is predicted (conf 0.001, IoU 0.7,
  max 100, multi-label NMS as in ultralytics' own val and in mtnet's evaluation), written as COCO results
  with the json's category ids, and scored by ``mtnet.eval.coco``. YOLO11n-pose detects only persons: its box
  AP is scored against person-only ground truth (``box classes`` = person in the table).
- mtnet runs (``--mtnet NAME=CONFIG[:key=value,...]``): ``mtnet train CONFIG data.root=DATA ...
  data.synthetic=null train.time_budget_min=N``, then ``mtnet.evaluate`` of ``best.pt`` (else ``last.pt``) on
  the same val split. ``data.synthetic=null``: a config with a synthetic recipe that differs from the one that
  made DATA (e.g. ``quickstart``) would otherwise regenerate DATA in place.

See peers_common.py for what ultralytics needs offline next to the CPU torch wheel. Results: JSON (``--out``)
and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coco_subset import category_subset
from peers_common import check_nms, offline_ultralytics

COCO_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]  # COCO keypoints, left <-> right


def cpu_name() -> str:
    """The CPU model string (for the results' machine field)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _yolo_line(values: list[float]) -> str:
    return " ".join(f"{v:.6g}" for v in values) + "\n"


def convert_coco(data: Path, out: Path) -> dict[str, Path]:
    """YOLO-format det and pose data sets (labels + symlinked images + data yaml), like ultralytics' convert_coco.

    Returns the data yaml paths (``det``, ``pose``) and a person-only val gt json (``person_gt``)."""
    import yaml

    result: dict[str, Path] = {}
    for kind, prefix in (("det", "instances"), ("pose", "person_keypoints")):
        root = out / kind
        shutil.rmtree(root, ignore_errors=True)  # no stale labels/links (ultralytics globs the image folders)
        names: list[str] = []
        for split in ("train", "val"):
            d = json.loads((data / "annotations" / f"{prefix}_{split}.json").read_text())
            cats = [c for c in d["categories"] if kind == "det" or c.get("keypoints")]
            cls = {c["id"]: i for i, c in enumerate(cats)}
            names = [c["name"] for c in cats]
            anns: dict[int, list[dict]] = {}
            for a in d["annotations"]:
                anns.setdefault(a["image_id"], []).append(a)
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            for img in d["images"]:
                w, h = img["width"], img["height"]
                link = root / "images" / split / img["file_name"]
                if not link.is_symlink():
                    link.symlink_to((data / split / img["file_name"]).resolve())
                rows = []
                for a in anns.get(img["id"], []):
                    x, y, bw, bh = a["bbox"]
                    if a.get("iscrowd") or bw <= 0 or bh <= 0 or a["category_id"] not in cls:
                        continue
                    row = [cls[a["category_id"]], (x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h]
                    if kind == "pose":
                        kp = a.get("keypoints") or []
                        if not any(kp[2::3]):  # no labelled keypoint: ignored by COCO eval, skipped by ultralytics
                            continue
                        row += [v / (w, h, 1)[i % 3] for i, v in enumerate(kp)]
                    rows.append(_yolo_line(row))
                label = (root / "labels" / split / img["file_name"]).with_suffix(".txt")
                label.write_text("".join(dict.fromkeys(rows)))
            if kind == "pose" and split == "val":
                person = category_subset(data, out / "person_only", names, splits=("val",))
                result["person_gt"] = person / "annotations" / "instances_val.json"
        spec: dict[str, Any] = {"path": str(root.resolve()), "train": "images/train", "val": "images/val",
                                "names": dict(enumerate(names))}
        if kind == "pose":
            spec |= {"kpt_shape": [17, 3], "flip_idx": COCO_FLIP}
        result[kind] = out / f"{kind}.yaml"
        result[kind].write_text(yaml.safe_dump(spec, sort_keys=False))
    return result


@contextlib.contextmanager
def multi_label_nms() -> Iterator[None]:
    """ultralytics' predictor runs single-label NMS; its val (and mtnet's eval) multi-label: match them."""
    from ultralytics.utils import nms

    original = nms.non_max_suppression
    nms.non_max_suppression = lambda *a, **k: original(*a, **{**k, "multi_label": True})
    try:
        yield
    finally:
        nms.non_max_suppression = original


def train_yolo(model_yaml: str, data_yaml: Path, budget_min: float, imgsz: int, project: Path,
               name: str, seed: int = 0) -> dict[str, Any]:
    """Train from scratch for ``budget_min`` minutes; returns epochs, minutes and the weights path."""
    from ultralytics import YOLO

    model = YOLO(model_yaml)
    seen = {"batches": 0, "epoch_ends": 0, "train_s": 0.0, "nb": 1, "threads": 0}

    def on_batch_end(trainer: Any) -> None:
        seen["batches"] += 1

    def on_epoch_end(trainer: Any) -> None:  # before the (final) validation: the training loop's own time
        seen.update(epoch_ends=seen["epoch_ends"] + 1, train_s=time.time() - trainer.train_time_start,
                    nb=len(trainer.train_loader), threads=__import__("torch").get_num_threads())

    model.add_callback("on_train_batch_end", on_batch_end)
    model.add_callback("on_train_epoch_end", on_epoch_end)
    start = time.perf_counter()
    model.train(data=str(data_yaml), time=budget_min / 60, imgsz=imgsz, batch=16, device="cpu", seed=seed,
                workers=0, pretrained=False, val=False, plots=False, project=str(project.resolve()), name=name,
                exist_ok=True, verbose=False)
    trainer = model.trainer
    weights = trainer.best if Path(trainer.best).exists() else trainer.last
    return {"epochs": round(seen["batches"] / seen["nb"], 2), "epochs_planned": int(trainer.epochs),
            "train_min": round(seen["train_s"] / 60, 2), "wall_min": round((time.perf_counter() - start) / 60, 2),
            "torch_threads": seen["threads"], "weights": str(weights)}


def predict_coco(weights: str, source: Any, imgsz: int, pose: bool) -> tuple[list[dict], list[dict]]:
    """COCO result entries (boxes; keypoints for pose) for every image of an mtnet CocoSource."""
    from ultralytics import YOLO

    model = YOLO(weights)
    by_name = {info["file_name"]: iid for iid, info in source.images.items()}
    paths = [str(Path(source.image_dir) / n) for n in by_name]
    cat_ids = source.meta.det_category_ids if not pose else [source.meta.det_category_ids[source.meta.keypoint_class]]
    boxes, kpts = [], []
    with multi_label_nms():
        results = model.predict(paths, imgsz=imgsz, conf=0.001, iou=0.7, max_det=100, device="cpu", batch=16,
                                stream=True, verbose=False)
        for r in results:
            iid = by_name[Path(r.path).name]
            xyxy, conf, cls = (t.tolist() for t in (r.boxes.xyxy, r.boxes.conf, r.boxes.cls))
            kp = r.keypoints.data.tolist() if pose else [None] * len(conf)
            for (x0, y0, x1, y1), s, c, k in zip(xyxy, conf, cls, kp, strict=True):
                entry = {"image_id": iid, "category_id": cat_ids[int(c)], "score": round(s, 5),
                         "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]}
                boxes.append(entry)
                if pose:  # the visibility slot is ignored by COCOeval; 1 as mtnet writes it
                    kpts.append({**entry, "keypoints": [round(v, 2) for x, y, _ in k for v in (x, y, 1.0)]})
    return boxes, kpts


def run_yolo(name: str, args: argparse.Namespace, datasets: dict[str, Path], source: Any) -> dict[str, Any]:
    """Train one YOLO11n variant within the budget and score it with mtnet's evaluator."""
    from mtnet.eval.coco import coco_bbox_metrics, coco_keypoint_metrics

    pose = "pose" in name
    run = train_yolo(f"{name}.yaml", datasets["pose" if pose else "det"], args.budget_min, args.imgsz,
                     args.work / "train", f"{name}_seed{args.seed}" if args.seed else name, args.seed)
    boxes, kpts = predict_coco(run["weights"], source, args.imgsz, pose)
    if pose:
        metrics = coco_bbox_metrics(datasets["person_gt"], boxes)
        metrics |= coco_keypoint_metrics(source.keypoints_path, kpts, source.meta.keypoint_sigmas)
    else:
        metrics = coco_bbox_metrics(source.instances_path, boxes)
    return {"name": name, "seed": args.seed, "kind": "ultralytics", "box_classes": "person" if pose else "all", **run, **metrics}


def run_mtnet(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    """``NAME=CONFIG[:key=value,...]``: ``mtnet train`` within the budget, then ``mtnet.evaluate`` on --data."""
    import mtnet

    name, _, rest = spec.partition("=")
    config, _, overrides = rest.partition(":")
    out = args.work / "mtnet"
    cmd = [sys.executable, "-m", "mtnet", "train", config, f"data.root={args.data}",
           *filter(None, overrides.split(",")), "data.synthetic=null",  # never (re)generate the scored data
           f"train.time_budget_min={args.budget_min:g}", f"name={name}", f"output_dir={out}", "--no-progress"]
    print("+", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall_min = (time.perf_counter() - start) / 60
    run_dir = out / name
    trained = json.loads((run_dir / "metrics.json").read_text())
    ckpt = run_dir / "best.pt" if (run_dir / "best.pt").exists() else run_dir / "last.pt"
    metrics = mtnet.evaluate(ckpt, data=args.data, split="val", progress=False)
    keys = ("bbox_AP", "bbox_AP50", "bbox_AP75", "kpt_AP", "kpt_AP50", "kpt_AP75", "mIoU")
    return {"name": name, "kind": "mtnet", "box_classes": "all", "config": config, "overrides": overrides,
            "epochs": trained.get("epochs"), "train_min": round(trained.get("train_s", 0.0) / 60, 2),
            "wall_min": round(wall_min, 2), "weights": str(ckpt), **{k: metrics[k] for k in keys if k in metrics}}


def _cell(value: Any, key: str) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) and ("AP" in key or key == "mIoU") else str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One line per run: epochs, minutes and the metrics (blank where a run has no such task)."""
    cols = [("run", "name"), ("epochs", "epochs"), ("train min", "train_min"), ("wall min", "wall_min"),
            ("box classes", "box_classes"), ("box AP", "bbox_AP"), ("box AP50", "bbox_AP50"),
            ("kpt AP", "kpt_AP"), ("kpt AP50", "kpt_AP50"), ("mIoU", "mIoU")]
    lines = ["| " + " | ".join(c for c, _ in cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(k), k) for _, k in cols) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget-min", type=float, default=10.0, help="training minutes per run (one core, --threads)")
    p.add_argument("--data", type=Path, default=Path("data/scale_spread"), help="COCO-layout data folder")
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--runs", default="yolo11n,yolo11n-pose", help="ultralytics model names ('' for none)")
    p.add_argument("--mtnet", action="append", default=[], metavar="NAME=CONFIG[:k=v,...]",
                   help="an mtnet run (repeatable), e.g. det=configs/quickstart.yaml:data.root=data/scale_spread")
    p.add_argument("--seed", type=int, default=0, help="ultralytics' training seed (its default: 0)")
    p.add_argument("--threads", type=int, default=1, help="torch/OMP threads of every run")
    p.add_argument("--work", type=Path, default=Path("runs/peers"), help="converted data, runs, config dir")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/peers_budget.json"))
    args = p.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # also inherited by the mtnet subprocesses
    import torch

    torch.set_num_threads(args.threads)

    from mtnet.config import Config, DataConfig
    from mtnet.data.build import open_split

    source = open_split(Config(data=DataConfig(root=str(args.data), val_split="val")), "val")
    rows: list[dict[str, Any]] = []
    names = [n for n in args.runs.split(",") if n]
    if names:
        offline_ultralytics(args.work / "ultralytics_config", args.threads)
        print(f"torchvision::nms (pure PyTorch) matches the reference on {check_nms()} random trials", flush=True)
        datasets = convert_coco(args.data, args.work / "yolo_data")
        rows += [run_yolo(n, args, datasets, source) for n in names]
    rows += [run_mtnet(spec, args) for spec in args.mtnet]
    report = {"budget": f"{args.budget_min:g} min of one dedicated CPU core ({args.threads} thread)",
              "budget_min": args.budget_min, "threads": args.threads, "imgsz": args.imgsz, "data": str(args.data),
              "machine": f"{platform.platform()}; {cpu_name()}; {os.cpu_count()} cores visible, "
                         f"affinity {sorted(os.sched_getaffinity(0))}",
              "val_json_sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
                                  for p in map(Path, filter(None, (source.instances_path, source.keypoints_path)))},
              "torch": torch.__version__, "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "runs": rows}
    if names:
        import ultralytics

        report["ultralytics"] = ultralytics.__version__
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown_table(rows))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
