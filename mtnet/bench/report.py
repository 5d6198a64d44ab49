"""Tables and plots of :class:`BenchRecord` rows; the accuracy join for the latency-vs-accuracy chart.

Used by ``mtnet bench`` (host) and ``android_bench`` (phones) alike, so the pictures look the same
wherever the numbers came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write
from .schema import BenchRecord

DEFAULT_METRIC = "bbox_AP50"


def accuracy_for(model_path: str | Path) -> dict[str, float] | None:
    """Metrics of this model file from the export report (``report.json``) beside it, if any.

    The export engineer's report lists ``artifacts`` with ``file`` and ``metrics``; a missing or
    malformed report simply means "no accuracy known" (the latency results stand on their own).
    """
    model_path = Path(model_path)
    report = model_path.parent / "report.json"
    try:
        doc = json.loads(report.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    for art in doc.get("artifacts", []) if isinstance(doc, dict) else []:
        if isinstance(art, dict) and art.get("file") == model_path.name and isinstance(art.get("metrics"), dict):
            return {k: float(v) for k, v in art["metrics"].items() if isinstance(v, int | float)}
    return None


def format_table(records: list[BenchRecord]) -> str:
    """Plain-text table, one line per run: what the CLIs print."""
    head = ("model", "prec", "delegate", "thr", "runs", "init ms", "first ms", "avg ms", "median ms",
            "min ms", "std ms", "peak MB", "status")

    def f(v: Any) -> str:
        return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))

    rows = [head] + [(r.model, r.precision, r.delegate, f(r.threads), f(r.runs), f(r.init_ms), f(r.first_ms),
                      f(r.avg_ms), f(r.median_ms), f(r.min_ms), f(r.std_ms), f(r.peak_mem_mb),
                      r.status if r.status == "ok" else f"error: {r.error}") for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head) - 1)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False)))
             + "  " + row[-1] for row in rows]
    return "\n".join(lines)


def _save(fig: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))


def plot_latency(records: list[BenchRecord], path: str | Path) -> Path | None:
    """Grouped bars: one group per model, one bar per (delegate, threads); error runs left out."""
    from ..plotting import subplots

    ok = [r for r in records if r.status == "ok" and r.latency_ms is not None]
    if not ok:
        return None
    models = list(dict.fromkeys(r.model for r in ok))
    configs = list(dict.fromkeys((r.delegate, r.threads) for r in ok))
    width = 0.8 / len(configs)
    fig, ax = subplots(figsize=(max(6.0, 1.6 * len(models) * max(1, len(configs)) ** 0.5), 4.2))
    for j, (delegate, threads) in enumerate(configs):
        xs, ys, errs = [], [], []
        for i, m in enumerate(models):
            r = next((r for r in ok if r.model == m and (r.delegate, r.threads) == (delegate, threads)), None)
            if r is not None:
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(r.latency_ms)
                errs.append(r.std_ms or 0.0)
        ax.bar(xs, ys, width, yerr=errs, capsize=2, label=f"{delegate}, {threads} thr")
    ax.set_xticks(range(len(models)), models, rotation=15, ha="right")
    ax.set_ylabel("latency (ms, median or mean)")
    names = sorted({str(r.device.get("name")) for r in ok})
    ax.set_title(f"Latency by delegate and threads - {', '.join(names)}")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    path = Path(path)
    _save(fig, path)
    return path


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten by another that is both faster and at least as accurate, sorted by latency."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def plot_pareto(records: list[BenchRecord], path: str | Path, metric: str = DEFAULT_METRIC) -> Path | None:
    """Latency (x) vs an accuracy metric (y) for rows whose export report has that metric."""
    from ..plotting import subplots

    pts = [(r.latency_ms, r.extra["accuracy"][metric], r) for r in records
           if r.status == "ok" and r.latency_ms is not None and metric in (r.extra.get("accuracy") or {})]
    if not pts:
        return None
    fig, ax = subplots(figsize=(6.5, 4.5))
    for delegate in dict.fromkeys(r.delegate for _, _, r in pts):
        sel = [(x, y, r) for x, y, r in pts if r.delegate == delegate]
        ax.scatter([p[0] for p in sel], [p[1] for p in sel], label=delegate)
        for x, y, r in sel:
            ax.annotate(f"{r.model} ({r.threads}t)", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = pareto_front([(x, y) for x, y, _ in pts])
    ax.plot([p[0] for p in front], [p[1] for p in front], "k--", lw=1, label="Pareto front")
    ax.set_xlabel("latency (ms, median or mean)")
    ax.set_ylabel(metric)
    ax.set_title(f"Latency vs {metric}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    path = Path(path)
    _save(fig, path)
    return path


def write_plots(records: list[BenchRecord], out_dir: str | Path, stem: str,
                metric: str = DEFAULT_METRIC) -> list[Path]:
    """``<stem>_latency.png`` and, when accuracy is known, ``<stem>_pareto.png``; returns what was written."""
    out_dir = Path(out_dir)
    written = [plot_latency(records, out_dir / f"{stem}_latency.png"),
               plot_pareto(records, out_dir / f"{stem}_pareto.png", metric)]
    return [p for p in written if p is not None]


def plot_pareto_panels(records: list[BenchRecord], path: str | Path,
                       panels: tuple[tuple[str, str], ...]) -> Path | None:
    """One panel per (metric, label): latency (x) vs that metric (y) of every row whose ``extra["accuracy"]``
    has it; one series per (device, backend, precision), the Pareto front of each device dashed."""
    from ..plotting import subplots

    rows = [r for r in records if r.status == "ok" and r.latency_ms is not None and r.extra.get("accuracy")]
    panels = tuple((m, label) for m, label in panels if any(r.extra["accuracy"].get(m) is not None for r in rows))
    if not panels:
        return None
    fig, axes = subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4))
    axes = list(np.atleast_1d(axes))
    markers = {"fp32": "o", "fp16": "s", "int8": "^", "dynamic": "v"}
    devices = list(dict.fromkeys(f"{r.device.get('name')} ({r.backend})" for r in rows))
    for ax, (metric, label) in zip(axes, panels, strict=True):
        for d_idx, device in enumerate(devices):
            on_device = [r for r in rows if f"{r.device.get('name')} ({r.backend})" == device
                         and r.extra["accuracy"].get(metric) is not None]
            for prec in dict.fromkeys(r.precision for r in on_device):
                sel = [r for r in on_device if r.precision == prec]
                ax.scatter([r.latency_ms for r in sel], [r.extra["accuracy"][metric] for r in sel],
                           marker=markers.get(prec, "x"), color=f"C{d_idx}", label=f"{device}, {prec}")
            front = pareto_front([(r.latency_ms, r.extra["accuracy"][metric]) for r in on_device])
            ax.plot([p[0] for p in front], [p[1] for p in front], "--", color=f"C{d_idx}", lw=1)
            for r in on_device:
                if (r.latency_ms, r.extra["accuracy"][metric]) in front:
                    ax.annotate(r.model, (r.latency_ms, r.extra["accuracy"][metric]), fontsize=6,
                                xytext=(3, -8), textcoords="offset points")
        ax.set_xlabel(f"latency ms (median, {rows[0].threads} thread{'s' if rows[0].threads > 1 else ''})")
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs latency (dashed: Pareto front)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    path = Path(path)
    _save(fig, path)
    return path
