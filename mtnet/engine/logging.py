"""Per-epoch metrics to ``metrics.csv`` (append-safe across resumes) and training-curve plots."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ..tasks import diagnostic_log_keys, loss_log_keys, metric_keys


def csv_columns() -> list[str]:
    """metrics.csv columns: step info, every registered task's loss logs and headline metrics, fitness."""
    return ["epoch", "step", "lr", "epoch_s", "loss", *loss_log_keys(), *diagnostic_log_keys(), *metric_keys(),
            "fitness", "skipped"]


class MetricsCSV:
    def __init__(self, path: str | Path, resume_epoch: int | None = None):
        self.path = Path(path)
        self.columns = csv_columns()
        if resume_epoch is not None and self.path.is_file():
            rows = [r for r in read_rows(self.path) if int(r["epoch"]) < resume_epoch]  # drop rows the resume will redo
            self._write(rows)
        elif not self.path.is_file() or resume_epoch is None:
            self._write([])

    def _write(self, rows: list[dict]) -> None:
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, self.columns)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in self.columns})

    def append(self, row: dict) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow({k: _fmt(row.get(k, "")) for k in self.columns})


def read_rows(path: str | Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def plot_training_curves(csv_path: str | Path, out_path: str | Path) -> None:
    """Losses, LR and validation metrics against epoch in one PNG."""
    from ..plotting import subplots

    rows = read_rows(csv_path)
    if not rows:
        return

    def series(key):
        xs, ys = [], []
        for r in rows:
            if r.get(key) not in ("", None):
                v = float(r[key])
                if math.isfinite(v):
                    xs.append(int(r["epoch"]) + 1)
                    ys.append(v)
        return xs, ys

    fig, axes = subplots(1, 3, figsize=(15, 4))
    for key in ["loss", *loss_log_keys()]:
        xs, ys = series(key)
        if xs:
            axes[0].plot(xs, ys, label=key)
    axes[0].set(title="training losses", xlabel="epoch", yscale="log")
    xs, ys = series("lr")
    axes[1].plot(xs, ys)
    axes[1].set(title="learning rate (end of epoch)", xlabel="epoch")
    for key in metric_keys():
        xs, ys = series(key)
        if xs:
            axes[2].plot(xs, ys, marker="o", label=key)
    axes[2].set(title="validation (EMA weights)", xlabel="epoch", ylim=(0, 1))
    for ax in (axes[0], axes[2]):
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)


class StepLog:
    """Every optimizer step to ``steps.csv``: LR, total and per-task losses, and the task weights in force
    (they change every step under uncertainty weighting and every epoch under DWA). On resume, rows past
    the checkpoint's step are dropped, so the file matches the resumed run."""

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        self.columns: list[str] | None = None
        rows = []
        if resume_step is not None and self.path.is_file():
            rows = [r for r in read_rows(self.path) if int(r["step"]) <= resume_step]
        with open(self.path, "w", newline="") as f:
            if rows:
                self.columns = list(rows[0])
                w = csv.DictWriter(f, self.columns)
                w.writeheader()
                w.writerows(rows)

    def append(self, row: dict) -> None:
        new = self.columns is None
        if new:
            self.columns = list(row)
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, self.columns, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: _fmt(row.get(k, "")) for k in self.columns})
