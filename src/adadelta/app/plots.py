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
    curves: Mapping[str, Sequence[Sequence[float | None]]],
    path: str | os.PathLike[str],
    *,
    title: str,
    paper: Mapping[str, Mapping[int, float]] | None = None,
) -> None:
    """Test error (%) per epoch, one curve per method: ``curves[method]`` holds one list of
    per-epoch errors per seed (``None`` marks epochs after a divergence). The line is the mean
    over seeds; with more than one seed a band shows mean ± std (sample std, ddof=1).

    ``paper`` adds the values read off the paper's figure as faint dashed reference points.
    """
    fig = Figure(figsize=(7, 5), dpi=120)
    ax = fig.add_subplot()
    top = 0.0
    seeds = set()
    for method, runs in curves.items():
        style = STYLE.get(method, {"marker": "."})
        values = np.array([[np.nan if e is None else e for e in run] for run in runs], float)
        seeds.add(len(values))
        mean = values.mean(axis=0)
        epochs = np.arange(1, values.shape[1] + 1)
        ax.plot(epochs, mean, label=method, linewidth=1.2, markersize=5, **style)
        upper = mean
        if len(values) > 1:
            std = values.std(axis=0, ddof=1)
            upper = mean + std
            ax.fill_between(
                epochs, mean - std, upper, color=style.get("color", "gray"), alpha=0.15, lw=0
            )
        finite = upper[np.isfinite(upper)]
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
    if seeds == {1}:
        ax.set_ylabel("Test error % (one seed)")
    else:
        n = "/".join(str(k) for k in sorted(seeds))
        ax.set_ylabel(f"Test error %: mean over {n} seeds, band ± std")
    ax.set_title(title)
    if paper:
        top = max([top, *(v for points in paper.values() for v in points.values())])
    if top:
        ax.set_ylim(0, min(100.0, top * 1.1))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path)


def plot_demo(
    curves: Mapping[str, Sequence[Sequence[float | None]]],
    lr_sweeps: Mapping[str, Mapping[float, float | None]],
    adadelta_grid: Sequence[float | None],
    path: str | os.PathLike[str],
    *,
    title: str,
    sweep_epochs: int,
) -> None:
    """The demo's picture: left, Figure 1's test error per epoch (one list per seed for each
    method, as :func:`plot_test_error`); right, test error after ``sweep_epochs`` epochs against
    the learning rate for SGD and ADAGRAD (``lr_sweeps[method][lr]``, ``None`` for diverged:
    drawn as an x at the top), with the range of ADADELTA's errors over its ``(rho, eps)`` grid
    as a band (it has no learning rate)."""
    fig = Figure(figsize=(12, 5.4), dpi=110)
    left, right = fig.subplots(1, 2)
    for method, runs in curves.items():
        style = STYLE.get(method, {"marker": "."})
        values = np.array([[np.nan if e is None else e for e in run] for run in runs], float)
        epochs = np.arange(1, values.shape[1] + 1)
        left.plot(epochs, values.mean(axis=0), label=method, lw=1.2, markersize=5, **style)
    left.set_xlabel("Epoch")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_ylabel("Test error % (one seed)")
    left.set_title("Figure 1 style: each method at the paper's best setting", fontsize=10)
    left.set_ylim(bottom=0)
    left.grid(True, alpha=0.3)
    left.legend(fontsize=8)

    finite = [v for sweep in lr_sweeps.values() for v in sweep.values() if v is not None]
    finite += [v for v in adadelta_grid if v is not None]
    ceiling = 100.0
    for method, sweep in lr_sweeps.items():
        style = {**STYLE.get(method, {}), "marker": STYLE.get(method, {}).get("marker") or "s"}
        rates = np.array(list(sweep), float)
        errors = np.array([np.nan if v is None else v for v in sweep.values()], float)
        right.plot(rates, errors, label=f"{method}, by learning rate", lw=1.2, **style)
        if np.isnan(errors).any():
            right.plot(
                rates[np.isnan(errors)],
                np.full(int(np.isnan(errors).sum()), ceiling),
                "x",
                color=style.get("color"),
                markersize=9,
                label=f"{method} diverged",
            )
    grid = [v for v in adadelta_grid if v is not None]
    if grid:
        right.axhspan(
            min(grid),
            max(grid),
            color=STYLE["ADADELTA"]["color"],
            alpha=0.2,
            label=f"ADADELTA, all {len(adadelta_grid)} (rho, eps) settings: "
            f"{min(grid):.2f}% to {max(grid):.2f}%",
        )
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_ylim(max(0.5, 0.8 * min(finite)) if finite else 1, ceiling * 1.15)
    right.set_xlabel("Learning rate (SGD, ADAGRAD)")
    right.set_ylabel(f"Test error % after {sweep_epochs} epochs (log scale)")
    right.set_title("Tuning: learning rates against ADADELTA's rho and eps", fontsize=10)
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.suptitle(title, fontsize=11)
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
    RMS[dx]_{t-1}/RMS[g]_t (top) and the changes dx (bottom) of the sampled weights;
    ``step_sizes[layer]`` has shape (samples, weights). The top row's y axis runs from 0 to a
    little above its largest value (at least 1), the bottom row's is symmetric around 0 and
    shared by all layers, so that no curve is cut off at the border."""
    layers = list(step_sizes)
    fig = Figure(figsize=(4 * len(layers), 6), dpi=110)
    axes = fig.subplots(2, len(layers), squeeze=False, sharex=True)
    epochs = np.asarray(batches, dtype=float) / batches_per_epoch
    size_top = 1.05 * max(1.0, *(float(np.nanmax(v)) for v in step_sizes.values()))
    change = 1.1 * max(float(np.nanmax(np.abs(v))) for v in updates.values())
    for column, layer in enumerate(layers):
        top, bottom = axes[0][column], axes[1][column]
        top.plot(epochs, step_sizes[layer], linewidth=0.8)
        bottom.plot(epochs, updates[layer], linewidth=0.8)
        top.set_title(f"{layer}: step sizes")
        bottom.set_title(f"{layer}: parameter changes")
        top.set_ylim(0, size_top)
        bottom.set_ylim(-change, change)
        bottom.set_xlabel("Epoch")
        for ax in (top, bottom):
            ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(r"step size $\mathrm{RMS}[\Delta x]_{t-1} / \mathrm{RMS}[g]_t$")
    axes[1][0].set_ylabel(r"update $\Delta x_t$")
    fig.tight_layout()
    fig.savefig(path)
