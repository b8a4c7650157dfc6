"""``adadelta explore``: the optimizers on 2-D surfaces, and ADADELTA's state while it moves.

For each surface the library's own optimizers (``adadelta.SGD``, ``adadelta.Adadelta(x,
preset="keras")``, ...) step a float64 array of shape (2,) from the same start; the paths go
over the contours, beside ADADELTA's state per coordinate over time (RMS[g]_t, RMS[dx]_{t-1},
the step RMS[dx]_{t-1}/RMS[g]_t and the update). Written: an animated GIF per surface, its last
frame as a PNG, an MP4 where an ffmpeg encoder is installed (``imageio-ffmpeg``, or ``ffmpeg``
on the PATH), ``settings.json`` (every start, learning rate and step count), and
``explorer.html``, an interactive page that computes the same paths in JavaScript.

The page and this module share one description of a run, a settings dict::

    {"surface": "rosenbrock", "start": [-1.5, 2.0], "steps": 1000, "noise": 0.0, "seed": 0,
     "optimizers": [{"name": "SGD", "kind": "SGD", "lr": 0.001}, ...,
                    {"name": "ADADELTA keras", "kind": "Adadelta", "preset": "keras"}]}

Gradient noise is ``noise * z`` per coordinate and step, ``z`` the sum of 12 uniforms minus 6
(mean 0, variance 1) from the ``mulberry32`` generator seeded with ``seed``: every operation
exact or IEEE-rounded, so the page draws the very same noise. A path ends where the gradient
stops being finite (the optimizers refuse such a step).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import adadelta
from adadelta.checkpoint import atomic_write
from adadelta.presets import PRESETS

Gradient = Callable[[float, float], tuple[float, float]]
Settings = dict[str, Any]

# --- the surfaces: f and its gradient, written operation for operation as in explorer.html ---


def rosenbrock(x: float, y: float) -> float:
    a = y - x * x
    return (1 - x) * (1 - x) + 100 * a * a


def rosenbrock_grad(x: float, y: float) -> tuple[float, float]:
    a = y - x * x
    return -2 * (1 - x) - 400 * x * a, 200 * a


def beale(x: float, y: float) -> float:
    t1, t2, t3 = 1.5 - x + x * y, 2.25 - x + x * y * y, 2.625 - x + x * y * y * y
    return t1 * t1 + t2 * t2 + t3 * t3


def beale_grad(x: float, y: float) -> tuple[float, float]:
    t1, t2, t3 = 1.5 - x + x * y, 2.25 - x + x * y * y, 2.625 - x + x * y * y * y
    gx = 2 * t1 * (y - 1) + 2 * t2 * (y * y - 1) + 2 * t3 * (y * y * y - 1)
    gy = 2 * t1 * x + 4 * t2 * x * y + 6 * t3 * x * y * y
    return gx, gy


def saddle(x: float, y: float) -> float:
    return x * x - y * y + 0.25 * y * y * y * y


def saddle_grad(x: float, y: float) -> tuple[float, float]:
    return 2 * x, y * y * y - 2 * y


def valley(x: float, y: float) -> float:
    return 0.05 * x * x + 5 * y * y


def valley_grad(x: float, y: float) -> tuple[float, float]:
    return 0.1 * x, 10 * y


@dataclass(frozen=True)
class Function:
    f: Callable[[float, float], float]
    grad: Gradient
    formula: str
    extent: tuple[float, float, float, float]  # x_min, x_max, y_min, y_max
    minimum: tuple[float, float]


FUNCTIONS: dict[str, Function] = {
    "rosenbrock": Function(
        rosenbrock, rosenbrock_grad, "(1-x)^2 + 100 (y-x^2)^2", (-2, 2, -1, 3), (1, 1)
    ),
    "beale": Function(
        beale,
        beale_grad,
        "(1.5-x+xy)^2 + (2.25-x+xy^2)^2 + (2.625-x+xy^3)^2",
        (-1, 4.5, -1.5, 2.5),
        (3, 0.5),
    ),
    "saddle": Function(saddle, saddle_grad, "x^2 - y^2 + y^4/4", (-2, 2, -2, 2), (0, math.sqrt(2))),
    "valley": Function(valley, valley_grad, "0.05 x^2 + 5 y^2", (-5, 5, -2, 2), (0, 0)),
}

# --- the runs: what `adadelta explore` shows, with the baselines' learning rates per surface ---

BASELINES = ("SGD", "MOMENTUM", "ADAGRAD", "RMSprop", "Adam")
ADADELTAS = ("paper", "torch", "keras", "tf1")


@dataclass(frozen=True)
class Scene:
    """One surface as `adadelta explore` runs it: the start, the gradient noise, and the
    baselines' learning rates (picked by hand per surface so that each baseline makes visible
    progress in 1,000 steps without diverging; not tuned to be the best; MOMENTUM uses
    momentum 0.9). ADADELTA runs with its presets' settings, untouched."""

    function: str
    start: tuple[float, float]
    lrs: Mapping[str, float]
    noise: float = 0.0
    seed: int = 0
    steps: int = 1000
    title: str = ""


SCENES: dict[str, Scene] = {
    "rosenbrock": Scene(
        "rosenbrock",
        (-1.5, 2.0),
        {"SGD": 1e-3, "MOMENTUM": 2e-4, "ADAGRAD": 0.5, "RMSprop": 1e-2, "Adam": 0.05},
        title="Rosenbrock",
    ),
    "beale": Scene(
        "beale",
        (0.7, 1.4),
        {"SGD": 1e-3, "MOMENTUM": 1e-4, "ADAGRAD": 0.5, "RMSprop": 1e-2, "Adam": 0.05},
        title="Beale",
    ),
    "saddle": Scene(
        "saddle",
        (1.8, 1e-3),
        {"SGD": 0.02, "MOMENTUM": 2e-3, "ADAGRAD": 0.5, "RMSprop": 1e-2, "Adam": 0.05},
        title="Saddle",
    ),
    "valley": Scene(
        "valley",
        (-4.5, 1.5),
        {"SGD": 0.18, "MOMENTUM": 0.02, "ADAGRAD": 1.0, "RMSprop": 0.05, "Adam": 0.1},
        title="Ill-conditioned valley",
    ),
    "noisy_valley": Scene(
        "valley",
        (-4.5, 1.5),
        {"SGD": 0.05, "MOMENTUM": 0.005, "ADAGRAD": 0.5, "RMSprop": 0.02, "Adam": 0.05},
        noise=1.0,
        seed=0,
        title="Ill-conditioned valley, noisy gradients",
    ),
}


def optimizer_specs(lrs: Mapping[str, float]) -> list[dict[str, Any]]:
    """The optimizers of a scene: the baselines at ``lrs`` (the library's other defaults), and
    ADADELTA with the paper's settings and the torch, keras and tf1 presets."""
    specs: list[dict[str, Any]] = [
        {"name": "SGD", "kind": "SGD", "lr": lrs["SGD"]},
        {"name": "MOMENTUM", "kind": "SGD", "lr": lrs["MOMENTUM"], "momentum": 0.9},
        {"name": "ADAGRAD", "kind": "Adagrad", "lr": lrs["ADAGRAD"]},
        {"name": "RMSprop", "kind": "RMSprop", "lr": lrs["RMSprop"]},
        {"name": "Adam", "kind": "Adam", "lr": lrs["Adam"]},
    ]
    for preset in ADADELTAS:
        name = "ADADELTA" if preset == "paper" else f"ADADELTA {preset}"
        specs.append({"name": name, "kind": "Adadelta", "preset": preset})
    return specs


def scene_settings(scene: Scene, steps: int | None = None) -> Settings:
    return {
        "surface": scene.function,
        "start": list(scene.start),
        "steps": scene.steps if steps is None else steps,
        "noise": scene.noise,
        "seed": scene.seed,
        "optimizers": optimizer_specs(scene.lrs),
    }


# --- the noise: mulberry32, mirrored in explorer.html ---

_U32 = 0xFFFFFFFF


def mulberry32(seed: int) -> Iterator[float]:
    """Uniforms in [0, 1), multiples of 2**-32: Tommy Ettinger's mulberry32, in 32-bit
    unsigned arithmetic (the bits JavaScript's ``Math.imul`` and ``>>>`` give)."""
    a = seed & _U32
    while True:
        a = (a + 0x6D2B79F5) & _U32
        t = ((a ^ (a >> 15)) * (1 | a)) & _U32
        t = ((t + (((t ^ (t >> 7)) * (61 | t)) & _U32)) & _U32) ^ t
        yield (t ^ (t >> 14)) / 4294967296


def gradient_noise(seed: int, steps: int) -> npt.NDArray[np.float64]:
    """(steps, 2) standard-ish normals: each the sum of 12 uniforms minus 6 (exact in float64)."""
    uniforms = mulberry32(seed)
    noise = np.empty((steps, 2))
    for t in range(steps):
        for i in range(2):
            total = 0.0
            for _ in range(12):
                total += next(uniforms)
            noise[t, i] = total - 6
    return noise


# --- running the library's optimizers ---


@dataclass
class Path2D:
    """One optimizer's run: the points x_0..x_n (n <= steps; fewer when the gradient stopped
    being finite), and for ADADELTA its state per step and coordinate (shape (n, 2))."""

    name: str
    points: npt.NDArray[np.float64]
    rms_g: npt.NDArray[np.float64] | None = None  # RMS[g]_t
    rms_dx: npt.NDArray[np.float64] | None = None  # RMS[dx]_{t-1}
    diverged: bool = False


def make_optimizer(spec: Mapping[str, Any], x: npt.NDArray[np.float64]) -> adadelta.Optimizer:
    """The library optimizer that ``spec`` describes, on ``x``."""
    kind = spec["kind"]
    if kind == "SGD":
        return adadelta.SGD(x, lr=spec["lr"], momentum=spec.get("momentum", 0.0))
    if kind == "Adagrad":
        return adadelta.Adagrad(x, lr=spec["lr"])
    if kind == "RMSprop":
        return adadelta.RMSprop(x, lr=spec["lr"])
    if kind == "Adam":
        return adadelta.Adam(x, lr=spec["lr"])
    if kind == "Adadelta":
        overrides = {k: spec[k] for k in ("lr", "rho", "eps") if k in spec}
        return adadelta.Adadelta(x, preset=spec.get("preset", "paper"), **overrides)
    raise ValueError(
        f"unknown optimizer kind {kind!r}; expected SGD, Adagrad, RMSprop, Adam or Adadelta"
    )


def run(
    settings: Mapping[str, Any], progress: Callable[[int], object] | None = None
) -> list[Path2D]:
    """Every optimizer of ``settings`` from its start, ``steps`` steps of the library's own
    ``step`` on the surface's gradient plus the seeded noise. ``progress(steps)`` is called
    after each optimizer's run with its number of steps."""
    function = FUNCTIONS[settings["surface"]]
    steps, sigma = int(settings["steps"]), float(settings["noise"])
    noise = gradient_noise(int(settings["seed"]), steps)
    paths = []
    for spec in settings["optimizers"]:
        x = np.array(settings["start"], dtype=np.float64)
        opt = make_optimizer(spec, x)
        adadelta_state = isinstance(opt, adadelta.Adadelta)
        eps = opt.param_groups[0].get("eps", 0.0)
        points = np.empty((steps + 1, 2))
        points[0] = x
        rms_g, rms_dx = np.empty((steps, 2)), np.empty((steps, 2))
        n, diverged = 0, False
        for t in range(steps):
            gx, gy = function.grad(float(x[0]), float(x[1]))
            g = np.array([gx + sigma * noise[t, 0], gy + sigma * noise[t, 1]])
            if adadelta_state:
                old_dx2 = opt.state[0]["E_dx2"].copy() if "E_dx2" in opt.state[0] else 0.0
            try:
                opt.step(g)
            except adadelta.NonFiniteGradientError:
                diverged = True
                break
            if adadelta_state:
                rms_g[t] = np.sqrt(opt.state[0]["E_g2"] + eps)
                rms_dx[t] = np.sqrt(old_dx2 + eps)
            n = t + 1
            points[n] = x
        if progress is not None:
            progress(steps)
        paths.append(
            Path2D(
                spec["name"],
                points[: n + 1],
                rms_g[:n] if adadelta_state else None,
                rms_dx[:n] if adadelta_state else None,
                diverged,
            )
        )
    return paths


# --- the figures ---


@dataclass(frozen=True)
class Style:
    """How a path is drawn, in the figures and on the page: its color and its dash pattern
    (lengths on, off, ... in points; empty: solid)."""

    color: str
    dash: tuple[float, ...] = ()


STYLES = {
    "SGD": Style("#222222"),
    "MOMENTUM": Style("#d62728"),
    "ADAGRAD": Style("#2ca02c"),
    "RMSprop": Style("#9467bd"),
    "Adam": Style("#ff7f0e"),
    "ADADELTA": Style("#1f4fd6"),
    "ADADELTA torch": Style("#17becf", (6, 3)),
    "ADADELTA keras": Style("#e377c2", (1.5, 2.5)),
    "ADADELTA tf1": Style("#8c564b", (6, 2, 1.5, 2)),
}
COLORS = {name: style.color for name, style in STYLES.items()}
# What the figures draw, and the page shows until asked for more: the paper's four methods and
# the Keras preset (every optimizer is still run, and reported in settings.json)
SHOWN = ("SGD", "MOMENTUM", "ADAGRAD", "ADADELTA", "ADADELTA keras")
# A path has left the view once it is farther outside the surface's extent than this share of
# the extent's width or height: it is drawn up to there and marked, not scribbled across
MARGIN = 0.25


def escape_step(points: npt.NDArray[np.float64], extent: Sequence[float]) -> int | None:
    """The first step whose point is out of view (see :data:`MARGIN`), else None."""
    x0, x1, y0, y1 = extent
    dx, dy = MARGIN * (x1 - x0), MARGIN * (y1 - y0)
    x, y = points[:, 0], points[:, 1]
    outside = ~((x >= x0 - dx) & (x <= x1 + dx) & (y >= y0 - dy) & (y <= y1 + dy))
    hits = np.flatnonzero(outside)
    return int(hits[0]) if hits.size else None


def describe(spec: Mapping[str, Any]) -> str:
    """The legend's label: the name and the settings that differ from the library defaults."""
    if spec["kind"] == "Adadelta":
        p = PRESETS[spec.get("preset", "paper")]
        lr, rho, eps = (spec.get(k, getattr(p, k)) for k in ("lr", "rho", "eps"))
        return f"{spec['name']}\n(lr={lr:g}, rho={rho:g}, eps={eps:g})"
    extra = f", momentum={spec['momentum']:g}" if spec.get("momentum") else ""
    return f"{spec['name']}\n(lr={spec['lr']:g}{extra})"


def legend_label(spec: Mapping[str, Any]) -> str:
    """The figures' legend entry: the name, then the settings on short lines."""
    if spec["kind"] == "Adadelta":
        p = PRESETS[spec.get("preset", "paper")]
        lr, rho, eps = (spec.get(k, getattr(p, k)) for k in ("lr", "rho", "eps"))
        return f"{spec['name']}\nlr {lr:g}, rho {rho:g}\neps {eps:g}"
    extra = f", momentum {spec['momentum']:g}" if spec.get("momentum") else ""
    return f"{spec['name']}\nlr {spec['lr']:g}{extra}"


def frame_steps(steps: int, frames: int) -> list[int]:
    """The steps shown by the animation's frames: geometric from 1 to ``steps`` (the first
    steps, where ADADELTA warms up, get as many frames as the long tail), without repeats."""
    shown = sorted({round(v) for v in np.geomspace(1, steps, frames)})
    return [0, *shown] if shown[0] != 0 else shown


def animate(
    settings: Mapping[str, Any],
    paths: Sequence[Path2D],
    title: str,
    out: Path,
    *,
    frames: int = 36,
    fps: int = 8,
) -> dict[str, Any]:
    """Write ``out``.gif (the animation), ``out``.png (its last frame) and, where an encoder is
    installed, ``out``.mp4. Returns the paths written and the number of frames.

    The paths of :data:`SHOWN` are drawn over the contours, each in its :data:`STYLES`; a path
    that leaves the view (:func:`escape_step`) or whose gradient stops being finite ends in a
    cross with its name. The contours, axes and labels are drawn once; each frame restores
    them and draws only the moving lines (blitting), which keeps a frame to a few milliseconds.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter
    from PIL import Image

    function = FUNCTIONS[settings["surface"]]
    x0, x1, y0, y1 = function.extent
    fig = Figure(figsize=(11, 4.8), dpi=120)
    canvas: Any = FigureCanvasAgg(fig)  # Agg's blitting methods are untyped
    grid = fig.add_gridspec(
        2, 4, width_ratios=[1.4, 0.8, 1, 1], left=0.05, right=0.975, top=0.8, bottom=0.11,
        wspace=0.32, hspace=0.62,
    )  # fmt: skip
    ax = fig.add_subplot(grid[:, 0])
    xs, ys = np.linspace(x0, x1, 240), np.linspace(y0, y1, 180)
    values = np.array([[function.f(float(a), float(b)) for a in xs] for b in ys])
    levels = np.log1p(values - values.min())
    ax.contourf(xs, ys, levels, levels=14, cmap="Greys", alpha=0.55)
    ax.contour(xs, ys, levels, levels=14, colors="#777777", linewidths=0.4)
    ax.plot(*function.minimum, marker="*", color="gold", markersize=14, markeredgecolor="k")
    ax.annotate("minimum", function.minimum, xytext=(7, 6), textcoords="offset points", fontsize=9)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x", fontsize=9, labelpad=1)
    ax.set_ylabel("y", fontsize=9, labelpad=1, rotation=0)
    ax.tick_params(labelsize=8)
    noise = f"; gradient noise sigma={settings['noise']:g}, seed {settings['seed']}"
    fig.text(0.05, 0.935, title, fontsize=13, weight="bold")
    fig.text(
        0.05, 0.87, f"f = {function.formula}{noise if settings['noise'] else ''}", fontsize=9.5
    )
    moving = []
    for spec, path in zip(settings["optimizers"], paths, strict=True):
        if spec["name"] not in SHOWN:
            continue
        style = STYLES.get(spec["name"], Style("#555555"))
        first = spec["name"] == "ADADELTA"
        (line,) = ax.plot(
            [], [], color=style.color, linewidth=2.2 if first else 1.5,
            linestyle=(0, style.dash) if style.dash else "-", label=legend_label(spec),
            zorder=3 if first else 2,
        )  # fmt: skip
        (head,) = ax.plot([], [], "o", color=style.color, markersize=4.5, zorder=4)
        (cross,) = ax.plot([], [], "x", color=style.color, markersize=9, mew=2.2, zorder=4)
        tag = ax.text(0, 0, "", color=style.color, fontsize=8.5, weight="bold", zorder=5)
        escape = escape_step(path.points, function.extent)
        moving.append((path, escape, line, head, cross, tag))
    key = fig.add_subplot(grid[:, 1])
    key.axis("off")
    key.legend(
        *ax.get_legend_handles_labels(),
        loc="center",
        fontsize=9,
        frameon=False,
        handlelength=2.2,
        labelspacing=1.0,
    )

    adadelta_path = next(p for p in paths if p.name == "ADADELTA")
    adadelta_escape = escape_step(adadelta_path.points, function.extent)
    in_view = len(adadelta_path.points) - 1 if adadelta_escape is None else adadelta_escape - 1
    state_lines = []
    for k, (label, series) in enumerate(_state_panels(adadelta_path)):
        series = series[: max(1, in_view)]
        sax = fig.add_subplot(grid[k // 2, 2 + k % 2])
        sax.set_xscale("log")
        sax.set_yscale("log")
        sax.set_xlim(1, max(2, settings["steps"]))
        sax.set_ylim(*_log_limits(series))
        sax.set_title(label, fontsize=10, loc="left")
        sax.tick_params(labelsize=8)
        sax.yaxis.set_minor_formatter(NullFormatter())
        if k >= 2:
            sax.set_xlabel("step t", fontsize=9, labelpad=1)
        if adadelta_escape is not None:
            sax.axvline(max(1, adadelta_escape), color="#dd0000", linewidth=1.5)
            sax.text(
                max(1, adadelta_escape), 0.95, f" left the view at step {adadelta_escape}",
                color="#dd0000", fontsize=8,
                transform=sax.get_xaxis_transform(), va="top",
            )  # fmt: skip
        (a,) = sax.plot([], [], color="#1f4fd6", linewidth=1.3, label="x")
        (b,) = sax.plot([], [], color="#d62728", linewidth=1.3, linestyle="--", label="y")
        if k == 0:
            sax.legend(fontsize=8, loc="lower left")
        state_lines.append((a, b, series))
    fig.text(0.53, 0.935, "ADADELTA's state per coordinate", fontsize=12, weight="bold")
    fig.text(0.53, 0.87, _adadelta_label(settings), fontsize=9.5)
    counter = ax.text(
        0.97, 0.97, "", transform=ax.transAxes, ha="right", va="top", fontsize=11, weight="bold",
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8}, zorder=6,
    )  # fmt: skip

    artists: list[Any] = [counter]
    for _, _, *drawn in moving:
        artists += drawn
    artists += [a for a, b, _ in state_lines for a in (a, b)]
    for artist in artists:
        artist.set_animated(True)  # left out of canvas.draw(): drawn per frame
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)

    palette = _palette()
    frames_p, last = [], None
    for step in frame_steps(settings["steps"], frames):
        canvas.restore_region(background)
        for path, escape, line, head, cross, tag in moving:
            upto = min(step, len(path.points) - 1)
            left = escape is not None and escape <= step
            if escape is not None and left:
                upto = max(0, escape - 1)
            shown = path.points[: upto + 1]
            line.set_data(shown[:, 0], shown[:, 1])
            end = shown[-1:]
            stopped = left or (path.diverged and step >= len(path.points) - 1)
            head.set_data(end[:, 0] if not stopped else [], end[:, 1] if not stopped else [])
            cross.set_data(end[:, 0] if stopped else [], end[:, 1] if stopped else [])
            tag.set_text(f" {path.name}" if stopped else "")
            tag.set_position((float(end[0, 0]), float(end[0, 1])))
        for a, b, series in state_lines:
            shown = series[:step]
            a.set_data(np.arange(1, len(shown) + 1), shown[:, 0])
            b.set_data(np.arange(1, len(shown) + 1), shown[:, 1])
        counter.set_text(f"step {step}")
        for artist in artists:
            fig.draw_artist(artist)
        last = np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
        frames_p.append(Image.fromarray(last).quantize(palette=palette, dither=Image.Dither.NONE))
    assert last is not None
    gif, png = out.with_suffix(".gif"), out.with_suffix(".png")
    durations = [int(1000 / fps)] * (len(frames_p) - 1) + [2000]  # linger on the last frame
    atomic_write(gif, lambda f: frames_p[0].save(
        f, format="GIF", save_all=True, append_images=frames_p[1:], duration=durations, loop=0
    ))  # fmt: skip
    atomic_write(png, lambda f: Image.fromarray(last).save(f, format="PNG"))
    written: dict[str, Any] = {"frames": len(frames_p), "gif": gif, "png": png}
    encoder = ffmpeg_encoder()
    if encoder is not None:
        mp4 = out.with_suffix(".mp4")
        video = _encode_mp4(encoder, [np.asarray(im.convert("RGB")) for im in frames_p], fps)
        atomic_write(mp4, lambda f: f.write(video))
        written["mp4"] = mp4
    return written


def _palette() -> Any:
    """One GIF palette for every frame: 128 greys, and each line's color mixed with white and
    with grey in steps (the antialiased edges). A palette fitted to each frame instead merges
    the thin lines' colors into their neighbours'."""
    from matplotlib.colors import to_rgb
    from PIL import Image

    colors = [(v, v, v) for v in range(0, 256, 2)]
    for name in [*COLORS.values(), "gold"]:
        rgb = np.array(to_rgb(name)) * 255
        for base in (255.0, 160.0):
            for mix in (1.0, 0.75, 0.5, 0.25):
                r, g, b = (int(c + 0.5) for c in rgb * mix + base * (1 - mix))
                colors.append((r, g, b))
    flat = [c for rgb in dict.fromkeys(colors) for c in rgb][: 256 * 3]
    palette = Image.new("P", (1, 1))
    palette.putpalette(flat)
    return palette


def _adadelta_label(settings: Mapping[str, Any]) -> str:
    spec = next(s for s in settings["optimizers"] if s["name"] == "ADADELTA")
    return describe(spec).replace("\n", " ") + "; x solid, y dashed"


def _state_panels(path: Path2D) -> list[tuple[str, npt.NDArray[np.float64]]]:
    assert path.rms_g is not None and path.rms_dx is not None
    update = np.abs(np.diff(path.points, axis=0))
    return [
        ("RMS[g] at step t", path.rms_g),
        ("RMS[\u0394x] at step t\u22121", path.rms_dx),
        ("step: RMS[\u0394x] / RMS[g]", path.rms_dx / path.rms_g),
        ("update |\u0394x|", update),
    ]


def _log_limits(series: npt.NDArray[np.float64]) -> tuple[float, float]:
    positive = series[np.isfinite(series) & (series > 0)]
    if positive.size == 0:
        return 0.1, 1.0
    high = float(positive.max()) * 2
    return max(float(positive.min()) / 2, high * 1e-14), high


def ffmpeg_encoder() -> str | None:
    """An ffmpeg executable: imageio-ffmpeg's, else ``ffmpeg`` on the PATH, else None."""
    try:
        import imageio_ffmpeg  # type: ignore[import-not-found]

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg")


def _encode_mp4(encoder: str, images: Sequence[npt.NDArray[np.uint8]], fps: int) -> bytes:
    """The frames as an MP4 (H.264 where the encoder has it), from the encoder's stdout: a
    fragmented MP4, which needs no seeking back, so that no temporary file is involved."""
    height, width = images[0].shape[:2]
    command = [
        encoder, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
        "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p",
        "-movflags", "frag_keyframe+empty_moov", "-f", "mp4", "pipe:1",
    ]  # fmt: skip
    frames = b"".join(im.tobytes() for im in images)
    return subprocess.run(command, input=frames, check=True, capture_output=True).stdout


# --- the page ---


def page_config() -> dict[str, Any]:
    """What explorer.html needs from Python: the presets, the surfaces and the scenes."""
    return {
        "maxSteps": MAX_STEPS,
        "margin": MARGIN,
        "shown": list(SHOWN),
        "styles": {k: {"color": v.color, "dash": list(v.dash)} for k, v in STYLES.items()},
        "presets": {k: {"lr": p.lr, "rho": p.rho, "eps": p.eps} for k, p in PRESETS.items()},
        "surfaces": {
            k: {
                "formula": f.formula,
                "extent": f.extent,
                "minimum": f.minimum,
                "f_min": f.f(*f.minimum),
            }
            for k, f in FUNCTIONS.items()
        },
        "scenes": {k: {**scene_settings(s), "title": s.title} for k, s in SCENES.items()},
    }


def write_page(out: Path) -> Path:
    """``out``/explorer.html: the page, with :func:`page_config` inlined (no network needed)."""
    template = (Path(__file__).with_name("explorer.html")).read_text(encoding="utf-8")
    marker = "/*CONFIG*/null"
    if marker not in template:
        raise RuntimeError("explorer.html lost its /*CONFIG*/ marker")
    page = template.replace(marker, json.dumps(page_config()))
    path = out / "explorer.html"
    atomic_write(path, lambda f: f.write(page.encode("utf-8")))
    return path


# --- the command ---

MAX_STEPS = 20_000  # per optimizer: the page's bound too
MAX_FRAMES = 120  # per animation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("explore"),
        metavar="DIR",
        help="output directory (default: %(default)s)",
    )
    parser.add_argument(
        "--surfaces",
        nargs="+",
        choices=list(SCENES),
        default=list(SCENES),
        metavar="SURFACE",
        help=f"which surfaces, of {', '.join(SCENES)} (default: all)",
    )
    parser.add_argument(
        "--steps",
        type=_at_most(MAX_STEPS),
        metavar="N",
        help=f"steps per optimizer, at most {MAX_STEPS} (default: 1000)",
    )
    parser.add_argument(
        "--frames",
        type=_at_most(MAX_FRAMES),
        default=36,
        metavar="N",
        help=f"frames per animation, at most {MAX_FRAMES} (default: %(default)s)",
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="hide the progress bar (default: shown when stderr is a terminal)",
    )


def _at_most(bound: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if not 1 <= value <= bound:
            raise argparse.ArgumentTypeError(f"expected an integer from 1 to {bound}, got {text!r}")
        return value

    return parse


def output_files(args: argparse.Namespace) -> list[str]:
    """The files ``main`` writes in ``--out``."""
    each = [f"{name}{suffix}" for name in args.surfaces for suffix in (".gif", ".png", ".mp4")]
    return [*each, "settings.json", "explorer.html"]


def main(args: argparse.Namespace) -> int:
    """``adadelta explore`` with the options of :func:`add_arguments` (``--out`` exists)."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    start = time.perf_counter()
    out: Path = args.out
    summary: dict[str, Any] = {}
    surfaces = list(dict.fromkeys(args.surfaces))
    for name in surfaces:
        scene = SCENES[name]
        settings = scene_settings(scene, args.steps)
        total = len(settings["optimizers"]) * settings["steps"]
        with tqdm(
            total=total, desc=scene.title, unit="step", disable=not args.progress, file=sys.stderr
        ) as bar:
            paths = run(settings, progress=bar.update)
        written = animate(settings, paths, scene.title, out / name, frames=args.frames)
        summary[name] = {
            **settings,
            "title": scene.title,
            "end": {p.name: [float(v) for v in p.points[-1]] for p in paths},
            "diverged": [p.name for p in paths if p.diverged],
        }
        files = ", ".join(str(written[k]) for k in ("gif", "png", "mp4") if k in written)
        print(f"{scene.title}: {written['frames']} frames -> {files}")
        for spec, path in zip(settings["optimizers"], paths, strict=True):
            end = ", ".join(f"{v:.4g}" for v in path.points[-1])
            gone = f" (diverged after {len(path.points) - 1} steps)" if path.diverged else ""
            label = describe(spec).replace("\n", " ")
            print(f"  {label:<48} ends at ({end}){gone}")
    if ffmpeg_encoder() is None:
        print("no MP4: no ffmpeg encoder (pip install imageio-ffmpeg, or put ffmpeg on the PATH)")
    settings_path = out / "settings.json"
    as_json = json.dumps(summary, indent=1).encode("utf-8")
    atomic_write(settings_path, lambda f: f.write(as_json))
    page = write_page(out)
    print(f"settings: {settings_path}\npage: {page}")
    print(f"wrote {out}/ in {time.perf_counter() - start:.1f} s")
    return 0
