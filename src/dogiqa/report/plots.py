"""Scatter plot of predictions vs MOS with the fitted 4-parameter logistic (like the paper's figures).

Uses matplotlib's Agg canvas directly, so it never changes the user's matplotlib backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dogiqa.atomic import atomic_savefig
from dogiqa.evaluate import fit_logistic, logistic4, plcc, srcc, undefined_reason


def scatter_plot(
    preds: Sequence[float] | np.ndarray,
    target: Sequence[float] | np.ndarray,
    path: Path | str,
    title: str = "",
    xlabel: str = "prediction",
    ylabel: str = "MOS",
    jitter: float = 0.0,
    seed: int = 0,
    negated: bool = False,
) -> Path:
    """Write a PNG scatter of ``preds`` (x) vs ``target`` (y) with the logistic fit; returns the path.

    ``jitter`` spreads integer-valued predictions horizontally (by up to +-jitter) for readability only;
    the fit and the correlations in the legend use the exact values.

    ``negated``: the predictions are lower-is-better (NIQE, BRISQUE, PIQE). The x axis still shows them as
    they are, but the title's SRCC/PLCC are those of the negated score, the sign convention of every table
    and metrics file (a method that agrees with people is positive), and the title says so.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    p, t = np.asarray(preds, dtype=float), np.asarray(target, dtype=float)
    fig = Figure(figsize=(5, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    shown = p + np.random.default_rng(seed).uniform(-jitter, jitter, p.size) if jitter else p
    ax.scatter(shown, t, s=8, alpha=0.45, edgecolors="none", label="images")
    params = fit_logistic(p, t)
    if params is not None:
        xs = np.linspace(p.min(), p.max(), 200)
        ax.plot(xs, logistic4(xs, *params), color="C3", lw=2, label="logistic fit")
    ax.set_title(scatter_title(p, t, title, negated), fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_savefig(fig, path, format="png")
    return path


def scatter_title(preds: np.ndarray, target: np.ndarray, title: str = "", negated: bool = False) -> str:
    """The plot's title: ``title`` and SRCC/PLCC in the tables' sign convention (or why they are undefined)."""
    oriented = -np.asarray(preds, dtype=float) if negated else np.asarray(preds, dtype=float)
    reason = undefined_reason(oriented, target)
    if reason:
        stats = f"SRCC, PLCC undefined: {reason}"
    else:
        stats = f"SRCC {srcc(oriented, target):.3f}  PLCC {plcc(oriented, target):.3f}  n={oriented.size}"
        stats += "  (of -score: lower is better)" if negated else ""
    return f"{title}\n{stats}" if title else stats
