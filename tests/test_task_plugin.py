"""A task defined here, outside the library, trains, evaluates, exports to ONNX and predicts through the same
machinery as the built-in tasks: the proof that a task is one module plus one ``register_task`` call."""

from __future__ import annotations

import json

import numpy as np
import pytest
from torch import nn

import mtnet
from mtnet.tasks import OutputDef, Task, TaskEvaluator, register_task, unregister_task

from .conftest import tiny_config


class PersonPresent(Task):
    """Image-level "is there a person" classification with a one-layer head on the stride-32 level."""

    name = "person_present"
    requires = ("det",)  # its target comes from the detection labels (batch["labels"])
    loss_logs = ("presence",)
    metric_keys = ("presence_acc",)
    gated_metric = "presence_acc"
    fitness_metric = "presence_acc"
    summary_rows = (("person present acc", "presence_acc"),)

    def labelled(self, sample) -> bool:
        return sample.has_det  # derived from the boxes: every image whose source labels boxes

    def check_data(self, meta) -> None:
        if "person" not in meta.det_classes:
            raise ValueError("person_present needs a 'person' class")

    @staticmethod
    def _target(sample, meta) -> float:
        return float((sample.labels == meta.det_classes.index("person")).any())

    def build_head(self, meta, spec) -> nn.Module:
        return nn.Linear(spec.neck_channels, 1)

    def forward(self, head, feats, out):
        return {"presence": head(feats.pyramid[-1].mean((2, 3)))}

    def outputs(self, model):
        return [OutputDef("person_present", "B,1", "probability that the image shows a person")]

    def deploy(self, model, out, images):
        return [out["presence"].sigmoid()]

    def loss(self, out, batch, context, meta, cfg):
        has = batch["has_person_present"].to(out["presence"].device)
        person = meta.det_classes.index("person")
        target = (batch["labels"] == person).any(1).float().to(out["presence"].device)
        logits = out["presence"][:, 0]
        loss = nn.functional.binary_cross_entropy_with_logits(logits[has], target[has]) if has.any() \
            else logits.sum() * 0
        return loss, {"presence": float(loss.detach())}

    def decode(self, outputs, index, result, scale, shape, opts) -> None:
        result[self.name] = float(np.asarray(outputs["person_present"][index]).reshape(-1)[0])

    def evaluator(self, meta, source):
        task = self

        class Accuracy(TaskEvaluator):
            def __init__(self):
                self.hits, self.total = 0, 0

            def update(self, sample, prediction):
                self.hits += int((prediction.results[task.name] > 0.5) == bool(task._target(sample, meta)))
                self.total += 1

            def result(self):
                return {"presence_acc": self.hits / max(self.total, 1)}

        return Accuracy()


@pytest.fixture
def person_present_task():
    register_task(PersonPresent)
    yield
    unregister_task("person_present")


def test_plugin_task_trains_evaluates_exports_and_predicts(synthetic_root, tmp_path, person_present_task):
    assert "person_present" in mtnet.list_tasks()
    cfg = tiny_config(synthetic_root, tmp_path / "runs", "name=plugin", "model.tasks=[det,person_present]",
                      "train.epochs=2", "train.eval_interval=1")
    from mtnet.workflows import train_and_report

    metrics = train_and_report(cfg, progress=False)
    assert 0.0 <= metrics["presence_acc"] <= 1.0 and "bbox_AP50" in metrics
    run = tmp_path / "runs" / "plugin"
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"presence", "presence_acc"} <= set(header)  # the trainer's CSV follows the registry
    losses = [float(r.split(",")[header.index("presence")]) for r in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert all(np.isfinite(losses)) and losses

    # the model holds the task's head and the deploy graph its output
    model = mtnet.load(run / "best.pt").backend.model
    assert set(model.heads) == {"det", "person_present"}
    assert model.output_names() == ["boxes", "scores", "person_present"]

    out = mtnet.export(run / "best.pt", out=tmp_path / "exports", formats=["onnx"], precisions=["fp32"])
    report = json.loads((out / "report.json").read_text())
    (onnx,) = [a for a in report["artifacts"] if a["file"] == "model.onnx"]
    assert onnx["metrics"]["presence_acc"] == pytest.approx(metrics["presence_acc"], abs=1e-6)
    doc = json.loads((out / "model.json").read_text())
    assert [o["name"] for o in doc["outputs"]][-1] == "person_present"
    assert "presence_acc" in (out / "report.md").read_text()

    image = np.zeros((120, 90, 3), np.uint8)
    for path in (run / "best.pt", out / "model.onnx"):
        pred = mtnet.load(path).predict([image])[0]
        assert 0.0 <= pred.results["person_present"] <= 1.0
