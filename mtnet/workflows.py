"""High-level jobs shared by the CLI, notebooks and benchmarks: train+report, evaluate, predict."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .checkpoint_io import load_config_from_checkpoint
from .config import Config, DataConfig
from .data.build import open_split
from .data.sample import read_image
from .decode import DISPLAY_CONF, NMS_IOU
from .errors import UserError
from .eval.evaluator import evaluate
from .eval.report import write_metrics_json
from .infer.predictor import Predictor
from .infer.visualize import draw_prediction, save_grid


def evaluate_model(model_path: str | Path, data_root: str | Path | None = None, split: str = "val", *,
                   conf: float = 0.001, iou: float = NMS_IOU, max_det: int = 100, progress: bool = True,
                   tta: bool = False) -> dict:
    """Every task's metrics of a checkpoint or exported model.

    ``data_root``: a COCO or VOC folder, ``split`` one of its splits. Without it a checkpoint (``.pt``) is
    scored on its own config's data (``data.root`` or ``data.sources``), ``split`` being "val" or "train".
    ``tta``: flip + second-scale test-time augmentation (``mtnet.infer.tta``).
    """
    predictor = Predictor.from_path(model_path, conf=conf, iou=iou, max_det=max_det, multi_label=True, tta=tta)
    if data_root is not None:
        source = open_split(Config(data=DataConfig(root=str(data_root), val_split=split)), "val")
    elif Path(model_path).suffix == ".pt":
        source = open_split(load_config_from_checkpoint(model_path), split, meta=predictor.meta)
    else:
        raise UserError(f"{model_path}: an exported model does not know its data; pass a data folder (--data)")
    return evaluate(predictor, source, progress=progress)


def draw_examples(predictor: Predictor, source, out_path: str | Path, num: int = 8) -> None:
    """Predictions drawn on the first ``num`` images of ``source`` as one PNG grid."""
    images = [source.load(i).image for i in range(min(num, len(source)))]
    preds = predictor.predict(images)
    save_grid([draw_prediction(im, p, predictor.meta) for im, p in zip(images, preds, strict=True)], out_path)


def predict_files(model_path: str | Path, images: list[str | Path], out_dir: str | Path, *, conf: float = DISPLAY_CONF,
                  iou: float = NMS_IOU) -> list[Path]:
    """Draw predictions for each image into ``out_dir`` (``<stem>.png``) and return the written paths."""
    predictor = Predictor.from_path(model_path, conf=conf, iou=iou)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in images:
        image = read_image(str(path))
        pred = predictor.predict([image])[0]
        target = out_dir / f"{Path(path).stem}.png"
        from PIL import Image

        Image.fromarray(draw_prediction(image, pred, predictor.meta)).save(target)
        written.append(target)
    return written


def train_and_report(cfg: Config, *, resume: bool | str = False, progress: bool = True) -> dict:
    """Train, then evaluate ``best.pt`` on the val split and write ``metrics.json`` and ``examples.png``."""
    from .engine.logging import read_rows
    from .engine.trainer import Trainer
    from .models import count_parameters

    start = time.perf_counter()
    trainer = Trainer(cfg, resume=resume, progress=progress)
    result = trainer.fit()
    train_s = time.perf_counter() - start
    if result.stopped_early:
        return {"stopped_early": True, "step": trainer.step, "run_dir": str(result.run_dir)}
    best = result.run_dir / "best.pt"
    ec = trainer.cfg.eval
    predictor = Predictor.from_checkpoint(best, conf=ec.conf, iou=ec.iou, max_det=ec.max_det, multi_label=True)
    metrics = evaluate(predictor, trainer.val_src, progress=progress)
    draw_examples(Predictor.from_checkpoint(best, conf=DISPLAY_CONF), trainer.val_src, result.run_dir / "examples.png",
                  ec.num_examples)
    metrics.update(
        wall_s=time.perf_counter() - start, train_s=train_s, params=count_parameters(predictor.backend.model),
        imgsz=trainer.cfg.data.imgsz, tasks=list(trainer.model.tasks), epochs=trainer.cfg.train.epochs,
        checkpoint=str(best), run_dir=str(result.run_dir),
        # unreadable train samples replaced per epoch (data.on_error: skip), and which (this process's run)
        skipped_per_epoch=[int(r.get("skipped") or 0) for r in read_rows(result.run_dir / "metrics.csv")],
        skipped_samples=list(trainer.skipped_samples),
    )
    write_metrics_json(_finite(metrics), result.run_dir / "metrics.json")
    return metrics


def _finite(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}
