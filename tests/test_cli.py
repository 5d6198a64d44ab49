"""The command line end to end: quickstart artifacts, eval/predict on them, one-line errors on bad input."""

import json
import subprocess
import sys

import pytest

from mtnet.cli import main

from .conftest import TINY_OVERRIDES


def test_quickstart_writes_every_artifact(synthetic_root, tmp_path, capsys):
    args = ["quickstart", *TINY_OVERRIDES, f"data.root={synthetic_root}", f"output_dir={tmp_path}", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for label in ("bbox AP50", "keypoint OKS-AP50", "mIoU", "IoU person", "wall time"):
        assert label in out
    run = tmp_path / "quickstart"
    for name in ("best.pt", "last.pt", "metrics.csv", "metrics.json", "training_curves.png", "examples.png", "config.yaml"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("bbox_AP", "bbox_AP50", "kpt_AP", "kpt_AP50", "mIoU", "per_class_IoU", "wall_s", "params"):
        assert key in metrics, key
    assert set(metrics["per_class_IoU"]) == {"person", "suitcase", "sports ball", "kite", "grass", "sand",
                                             "sky-other", "water-other"}


def test_eval_and_predict_on_a_checkpoint(tiny_run, synthetic_root, tmp_path, capsys):
    assert main(["eval", str(tiny_run / "best.pt"), "--data", str(synthetic_root), "--json", str(tmp_path / "m.json"),
                 "--no-progress"]) == 0
    assert "mIoU" in capsys.readouterr().out
    assert "bbox_AP50" in json.loads((tmp_path / "m.json").read_text())
    images = [str(p) for p in sorted((synthetic_root / "val").glob("*.jpg"))[:2]]
    assert main(["predict", str(tiny_run / "best.pt"), *images, "--out", str(tmp_path / "pred"), "--conf", "0.01"]) == 0
    from PIL import Image

    drawn = sorted((tmp_path / "pred").glob("*.png"))
    assert len(drawn) == 2 and Image.open(drawn[0]).size == (160, 160)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "quickstart", "train.epohcs=3"], "unknown config key 'train.epohcs'"),
        (["train", "quickstart", "data.root=/nonexistent/data", "data.synthetic=null"], "/nonexistent/data: data folder not found"),
        (["eval", "/nonexistent/best.pt", "--data", "/tmp"], "/nonexistent/best.pt: checkpoint not found"),
        (["frobnicate"], "unknown command 'frobnicate'"),
    ],
)
def test_bad_input_gives_one_line_error(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"\x00garbage")
    assert main(["eval", str(bad), "--data", str(tmp_path)]) == 2
    assert "best.pt: not a readable checkpoint" in capsys.readouterr().err


def test_console_script_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "mtnet", "--help"], capture_output=True, text=True, check=True).stdout
    assert "quickstart" in out and "train" in out
