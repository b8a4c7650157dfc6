"""How fast ``adadelta explore`` and its page are: the command's wall time with its defaults, and
the page's first drawing and redraw after a slider move, in headless Chromium.

    python benchmarks/explorer_timing.py --out benchmarks/results

The page is loaded from ``file://`` by the browser harness of the tests
(``tests/explorer_browser.py``), ``--loads`` times in a fresh browser profile. Read back with
``performance.now()``:

- first drawing: from navigation start to the end of the first complete drawing (every path of
  the first scene computed, contours, paths and state panel drawn);
- redraw: a slider's ``input`` handler, start to end (every optimizer's path recomputed for the
  scene's 1,000 steps, the three canvases redrawn; on ADADELTA's sliders also the learning-rate
  sweep, 75 more runs), over ``--moves`` moves per load, on the baselines' learning-rate sliders
  and ADADELTA's eps and rho in turn;
- to the next frame: from the same ``input`` event to the next ``requestAnimationFrame``
  callback (includes waiting for the frame, up to 16.7 ms at 60 Hz).

Writes ``explorer_timing.md`` and ``explorer_timing.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import explorer_browser  # type: ignore[import-not-found]  # noqa: E402  (tests/, not a package)
from adadelta.app import explore  # noqa: E402

MOVE = """async ([selector, up]) => {
  const slider = document.querySelector(selector);
  const step = Number(slider.step), value = Number(slider.value);
  const next = up ? value + step : value - step;
  slider.value = String(Math.min(Number(slider.max), Math.max(Number(slider.min), next)));
  const t0 = performance.now();
  slider.dispatchEvent(new Event("input"));
  await new Promise((resolve) => requestAnimationFrame(resolve));
  return [window.explorer.timings.redraws.at(-1), performance.now() - t0];
}"""

SLIDERS = [
    *(f"input[data-optimizer='{name}']" for name in explore.BASELINES),
    "#eps",
    "#rho",
]


def time_command() -> float:
    """Wall time of ``adadelta explore --out TMP`` with its defaults, in a fresh process."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "adadelta", "explore", "--out", out],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        return time.perf_counter() - start


def time_page(loads: int, moves: int) -> dict[str, Any]:
    first, handler, frame = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        page_path = explore.write_page(Path(folder))
        for _ in range(loads):
            with explorer_browser.open_page(page_path) as b:
                first.append(b.page.evaluate("window.explorer.timings.firstDraw"))
                settings = b.page.evaluate("window.explorer.settings()")
                for k in range(moves):
                    selector = SLIDERS[k % len(SLIDERS)]
                    redraw, to_frame = b.page.evaluate(MOVE, [selector, k % 4 < 2])
                    handler.append(redraw)
                    frame.append(to_frame)
                if b.errors:
                    raise RuntimeError(f"the page reported errors: {b.errors}")
    return {
        "steps": settings["steps"],
        "optimizers": len(settings["optimizers"]),
        "first_draw_ms": first,
        "redraw_ms": handler,
        "next_frame_ms": frame,
    }


def summary(values: list[float]) -> str:
    if not values:
        return "not run | not run"
    return f"{statistics.median(values):.1f} | {max(values):.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--moves", type=int, default=40)
    parser.add_argument(
        "--commands", type=int, default=3, help="runs of adadelta explore (0: none)"
    )
    args = parser.parse_args()
    reason = explorer_browser.missing()
    if reason is not None:
        parser.error(f"no browser: {reason}")
    command = [time_command() for _ in range(args.commands)]
    page = time_page(args.loads, args.moves)
    result = {"command_s": command, **page, "machine": platform.platform()}
    chromium = subprocess.run(
        [str(explorer_browser.chromium()), "--version"], capture_output=True, text=True
    ).stdout.strip()
    table = "\n".join(
        [
            "# The explorer's timings",
            "",
            f"`python benchmarks/explorer_timing.py --loads {args.loads} --moves {args.moves} "
            f"--commands {args.commands}`; {chromium}, headless, no GPU; {platform.platform()}, "
            f"{os.cpu_count()} cores.",
            "",
            "| what | median | max | target |",
            "|---|---|---|---|",
            f"| `adadelta explore` (defaults: 5 surfaces, 9 optimizers, 1,000 steps, GIF + PNG "
            f"+ page), s | {summary(command)} | < 30 s |",
            f"| page: first drawing (from navigation start), ms | "
            f"{summary(page['first_draw_ms'])} | < 500 ms |",
            f"| page: redraw after a slider move ({page['optimizers']} optimizers x "
            f"{page['steps']} steps recomputed, the canvases drawn; on ADADELTA's sliders also "
            "the sweep's 75 runs), ms | "
            f"{summary(page['redraw_ms'])} | < 50 ms |",
            f"| page: slider move to the next animation frame, ms | "
            f"{summary(page['next_frame_ms'])} | |",
            "",
            f"{args.commands} runs of the command (warm Numba cache), {args.loads} page loads "
            f"in fresh profiles, {args.loads * args.moves} slider moves. Load average at the "
            f"end (1, 5, 15 min): {[round(v, 2) for v in os.getloadavg()]} (other work on the "
            "machine shows here).",
            "",
        ]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "explorer_timing.md").write_text(table)
    (args.out / "explorer_timing.json").write_text(json.dumps(result, indent=1) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
