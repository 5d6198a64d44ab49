"""Shared fixtures: a tiny synthetic COCO-format data set and a tiny trained checkpoint (session-scoped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtnet.config import load_config
from mtnet.data.synthetic import generate_dataset

TINY_OVERRIDES = [
    "data.imgsz=160", "data.synthetic.image_size=160", "data.synthetic.num_train=24", "data.synthetic.num_val=6",
    "model.width=0.35", "model.neck_channels=24", "model.head_channels=24", "model.seg_channels=24",
    "train.epochs=1", "train.batch_size=8", "train.warmup_epochs=0.5", "eval.num_examples=2",
    "model.head_strides=[8]",  # one anchor level (the NMS export tests build their 8/16/32 variant from it)
    # softplus box distances: one-epoch fixtures need their anchor-sized initial boxes (DFL bins start uniform:
    # every box ~7.5 strides a side, clipped into near-identical boxes); the DFL head has its own export test
    "model.box_bins=0",
]


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, num_train=24, num_val=6, size=160, seed=0, progress=False)
    return root


def tiny_config(root: Path, out: Path, *extra: str):
    return load_config("quickstart", TINY_OVERRIDES + [f"data.root={root}", f"output_dir={out}", *extra])


@pytest.fixture(scope="session")
def tiny_run(synthetic_root, tmp_path_factory) -> Path:
    """A finished one-epoch three-task run (best.pt, last.pt, metrics.json ...)."""
    from mtnet.workflows import train_and_report

    out = tmp_path_factory.mktemp("runs")
    metrics = train_and_report(tiny_config(synthetic_root, out, "name=tiny"), progress=False)
    return Path(metrics["run_dir"])


@pytest.fixture(scope="session")
def subtypes_root(tmp_path_factory) -> Path:
    """A tiny synthetic set of the ``subtypes`` recipe (sports-ball sub-types, fine COCO json + map)."""
    root = tmp_path_factory.mktemp("subtypes")
    generate_dataset(root, num_train=24, num_val=6, size=160, seed=0, progress=False, variant="subtypes")
    return root


@pytest.fixture(scope="session")
def cascade_run(subtypes_root, tmp_path_factory) -> dict[str, Path]:
    """A one-epoch detection-only detector of the coarse classes and a one-epoch crop classifier trained on
    its detections: {"detector": best.pt, "classifier": best.pt, "root": data folder}. The detector is barely
    trained (scores near its 0.01 prior), so its detections are taken from a 0.005 threshold, 1000 per image."""
    from mtnet.cascade.config import ClassifierConfig
    from mtnet.cascade.train import train_classifier
    from mtnet.workflows import train_and_report

    out = tmp_path_factory.mktemp("cascade_runs")
    cfg = tiny_config(subtypes_root, out, "name=det", "model.tasks=[det]", "data.synthetic.variant=subtypes")
    det = Path(train_and_report(cfg, progress=False)["run_dir"]) / "best.pt"
    summary = train_classifier(ClassifierConfig(name="cls", output_dir=str(out), detector=str(det), data_root=str(subtypes_root),
                                                input_size=48, epochs=1, batch_size=16, det_conf=0.005, det_max_det=1000),
                               progress=False)
    return {"detector": det, "classifier": Path(summary["checkpoint"]), "root": subtypes_root}


def require_side_env(name: str):
    """The installed side environment ``name`` (``mtnet envs install NAME``, run by .ci/run), else skip: tests
    never download."""
    from mtnet.sideenv import SIDE_ENVS

    env = SIDE_ENVS[name]
    if not env.installed():
        pytest.skip(f"side environment '{name}' is not installed (`mtnet envs install {name}`)")
    return env
