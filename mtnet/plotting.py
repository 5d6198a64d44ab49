"""Figures without pyplot: drawing into a private ``Figure`` never switches the process-wide matplotlib
backend, so a notebook that trains or benchmarks keeps working ``plt.show()``."""

from __future__ import annotations

from typing import Any


def subplots(nrows: int = 1, ncols: int = 1, **fig_kw: Any):
    """Like ``plt.subplots`` but unattached to pyplot's state (no ``plt.close`` needed)."""
    from matplotlib.figure import Figure

    fig = Figure(**fig_kw)
    return fig, fig.subplots(nrows, ncols)
