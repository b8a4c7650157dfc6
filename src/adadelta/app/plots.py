"""Figures in the paper's style, drawn with Matplotlib's object API (no global pyplot state).

Figure 1 of the paper: test error (%) against epoch, SGD black, MOMENTUM red '+', ADAGRAD green
'o', ADADELTA blue '*'. Figure 2: ADADELTA's step sizes RMS[dx]_{t-1}/RMS[g]_t and parameter
changes dx for a few weights of each layer, over training.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

STYLE: dict[str, dict[str, Any]] = {
    "SGD": {"color": "black", "marker": ""},
    "MOMENTUM": {"color": "red", "marker": "+"},
    "ADAGRAD": {"color": "green", "marker": "o", "markerfacecolor": "none"},
    "ADADELTA": {"color": "blue", "marker": "*"},
}


def plot_test_error(
    curves: Mapping[str, Sequence[float | None]],
    path: str | os.PathLike[str],
    *,
    title: str,
    paper: Mapping[str, Mapping[int, float]] | None = None,
) -> None:
    """Test error (%) per epoch, one curve per method (``None`` marks epochs after a divergence).

    ``paper`` adds the values read off the paper's figure as faint dashed reference points.
    """
    fig = Figure(figsize=(7, 5), dpi=120)
    ax = fig.add_subplot()
    top = 0.0
    for method, errors in curves.items():
        style = STYLE.get(method, {"marker": "."})
        values = np.array([np.nan if e is None else e for e in errors], dtype=float)
        epochs = np.arange(1, len(values) + 1)
        ax.plot(epochs, values, label=method, linewidth=1.2, markersize=5, **style)
        finite = values[np.isfinite(values)]
        if finite.size:
            top = max(top, float(finite.max()))
        if paper and method in paper:
            points = sorted(paper[method].items())
            ax.plot(
                [e for e, _ in points],
                [v for _, v in points],
                linestyle="--",
                linewidth=0.8,
                alpha=0.45,
                color=style.get("color", "gray"),
                label=f"{method} (paper)",
            )
    ax.set_xlabel("Epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("Test Error %")
    ax.set_title(title)
    if paper:
        top = max([top, *(v for points in paper.values() for v in points.values())])
    if top:
        ax.set_ylim(0, min(100.0, top * 1.1))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path)


def plot_step_sizes(
    batches: Sequence[int],
    step_sizes: Mapping[str, np.ndarray[Any, Any]],
    updates: Mapping[str, np.ndarray[Any, Any]],
    path: str | os.PathLike[str],
    *,
    batches_per_epoch: int,
) -> None:
    """The paper's Figure 2: for each weight matrix (one column each), the step sizes
    RMS[dx]_{t-1}/RMS[g]_t (top, y from 0 to 1) and the changes dx (bottom, y from -0.01 to
    0.01) of the sampled weights; ``step_sizes[layer]`` has shape (samples, weights)."""
    layers = list(step_sizes)
    fig = Figure(figsize=(4 * len(layers), 6), dpi=110)
    axes = fig.subplots(2, len(layers), squeeze=False, sharex=True)
    epochs = np.asarray(batches, dtype=float) / batches_per_epoch
    for column, layer in enumerate(layers):
        top, bottom = axes[0][column], axes[1][column]
        top.plot(epochs, step_sizes[layer], linewidth=0.8)
        bottom.plot(epochs, updates[layer], linewidth=0.8)
        top.set_title(f"{layer}: step size RMS[dx]/RMS[g]")
        bottom.set_title(f"{layer}: parameter change dx")
        top.set_ylim(0, 1)
        bottom.set_ylim(-0.01, 0.01)
        bottom.set_xlabel("Epoch")
        for ax in (top, bottom):
            ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
