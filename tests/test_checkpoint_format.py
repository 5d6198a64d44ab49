"""Checkpoint format header: the version and mtnet release are written, and a file of another format
version, or one that is not an mtnet checkpoint, is refused with one line (library and CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mtnet
from mtnet.checkpoint_io import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    load_model_from_checkpoint,
)
from mtnet.cli import main
from mtnet.config import load_config
from mtnet.engine.checkpoint import save_checkpoint
from mtnet.models import build_model

from .conftest import TINY_OVERRIDES
from .test_models import META


def _model_state(tmp_path: Path) -> dict:
    """A best.pt-like state of the tiny three-task model (untrained: only the layout matters here)."""
    cfg = load_config("quickstart", TINY_OVERRIDES + [f"data.root={tmp_path}", "data.synthetic=null"])
    model = build_model(cfg.model, META)
    return {"model": model.state_dict(), "config": cfg.to_dict(), "meta": META.to_dict(), "metrics": {}, "epoch": 0}


@pytest.fixture
def old_checkpoint(tmp_path) -> Path:
    """A format-version-1 checkpoint as mtnet wrote it before the task registry: heads as det_head.* etc."""
    state = _model_state(tmp_path)
    state["model"] = {k.replace("heads.det.", "det_head.").replace("heads.pose.", "pose_head.")
                      .replace("heads.seg.", "seg_head."): v for k, v in state["model"].items()}
    assert "det_head.cls_pred.weight" in state["model"]
    path = tmp_path / "old.pt"
    torch.save({"format": FORMAT, "version": 1, **state}, path)
    return path


def test_save_writes_format_version_and_mtnet_release(tmp_path):
    save_checkpoint(_model_state(tmp_path), tmp_path / "best.pt")
    state = load_checkpoint(tmp_path / "best.pt")
    assert (state["format"], state["version"], state["mtnet_version"]) == (FORMAT, FORMAT_VERSION, mtnet.__version__)
    model, _ = load_model_from_checkpoint(tmp_path / "best.pt")
    assert "heads.det.cls_pred.weight" in model.state_dict()


def test_old_format_version_is_a_one_line_error_naming_both_versions(old_checkpoint):
    with pytest.raises(CheckpointError) as e:
        load_model_from_checkpoint(old_checkpoint)
    msg = str(e.value)
    assert "\n" not in msg
    assert "format version 1" in msg and f"reads format version {FORMAT_VERSION}" in msg
    assert mtnet.__version__ in msg and "retrain" in msg


def test_newer_format_version_asks_for_an_upgrade(tmp_path):
    path = tmp_path / "new.pt"
    torch.save({"format": FORMAT, "version": FORMAT_VERSION + 1, "mtnet_version": "9.0.0"}, path)
    with pytest.raises(CheckpointError, match=rf"format version {FORMAT_VERSION + 1} \(written by mtnet 9\.0\.0\).*"
                                              rf"reads format version {FORMAT_VERSION}: upgrade mtnet"):
        load_checkpoint(path)


@pytest.mark.parametrize("command", ["eval", "export"])
def test_cli_prints_one_line_for_an_old_checkpoint(command, old_checkpoint, tmp_path, capsys):
    argv = [command, str(old_checkpoint)] + (["--out", str(tmp_path / "exports")] if command == "export" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mtnet: error: "), err
    assert "format version 1" in err[0] and f"format version {FORMAT_VERSION}" in err[0]
    assert not (tmp_path / "exports").exists()


def test_a_torch_file_that_is_not_an_mtnet_checkpoint_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "weights.pt"
    torch.save(_model_state(tmp_path)["model"], path)  # a bare state dict: readable, but no mtnet header
    with pytest.raises(CheckpointError, match="not an mtnet checkpoint"):
        load_checkpoint(path)
    assert main(["eval", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "weights.pt: not an mtnet checkpoint" in err[0]


def test_checkpoint_written_before_share_head_levels_loads_as_shared_heads(tmp_path):
    """Checkpoints written before model.share_head_levels existed had one head for all levels."""
    state = _model_state(tmp_path)
    cfg = load_config("quickstart", TINY_OVERRIDES + [f"data.root={tmp_path}", "data.synthetic=null",
                                                       "model.head_strides=[8,16,32]", "model.share_head_levels=true"])
    state["model"] = build_model(cfg.model, META).state_dict()
    state["config"] = cfg.to_dict()
    del state["config"]["model"]["share_head_levels"]
    save_checkpoint(state, tmp_path / "old_heads.pt")
    model, loaded_cfg = load_model_from_checkpoint(tmp_path / "old_heads.pt")
    assert loaded_cfg.model.share_head_levels is True
    assert "heads.det.cls_pred.weight" in model.state_dict()
