"""``adadelta explore``: the paths are the library optimizers' own steps, the files are written
and valid, and the interactive page computes the very same paths in a real browser (headless
Chromium), loads without console errors and redraws when a control moves."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import adadelta
import explorer_browser
from adadelta import rules
from adadelta.app import cli, explore

# --- the Python side ---


def test_paths_are_the_library_optimizers_steps() -> None:
    settings = explore.scene_settings(explore.SCENES["noisy_valley"], steps=60)
    paths = explore.run(settings)
    assert [p.name for p in paths] == [s["name"] for s in settings["optimizers"]]
    noise = explore.gradient_noise(0, 60)
    for spec, path in zip(settings["optimizers"], paths, strict=True):
        x = np.array(settings["start"])
        opt = explore.make_optimizer(spec, x)
        expected = [x.copy()]
        for t in range(60):
            gx, gy = explore.valley_grad(float(x[0]), float(x[1]))
            opt.step(np.array([gx + 1.0 * noise[t, 0], gy + 1.0 * noise[t, 1]]))
            expected.append(x.copy())
        np.testing.assert_array_equal(path.points, np.array(expected), err_msg=spec["name"])
    kinds = {type(explore.make_optimizer(s, np.zeros(2))) for s in settings["optimizers"]}
    assert kinds == {adadelta.SGD, adadelta.Adagrad, adadelta.RMSprop, adadelta.Adam,
                     adadelta.Adadelta}  # fmt: skip


def test_adadelta_paths_and_state_agree_with_the_rule() -> None:
    """Against the reference rule of adadelta.rules (not the kernel the optimizer runs): the
    first step is sqrt(eps)-sized, and the recorded RMS[g]_t and RMS[dx]_{t-1} are the rule's."""
    settings = explore.scene_settings(explore.SCENES["rosenbrock"], steps=200)
    settings["optimizers"] = [
        {"name": "ADADELTA", "kind": "Adadelta", "preset": "paper"},
        {"name": "keras", "kind": "Adadelta", "preset": "keras"},
        {"name": "mine", "kind": "Adadelta", "preset": "torch", "rho": 0.7, "eps": 1e-3, "lr": 0.5},
    ]
    for spec, path in zip(settings["optimizers"], explore.run(settings), strict=True):
        p = adadelta.PRESETS[spec["preset"]]
        lr, rho, eps = (spec.get(k, getattr(p, k)) for k in ("lr", "rho", "eps"))
        x, state = np.array(settings["start"]), rules.AdadeltaState(0, None, None)
        assert path.rms_g is not None and path.rms_dx is not None
        for t in range(200):
            g = np.array(explore.rosenbrock_grad(float(x[0]), float(x[1])))
            old = np.zeros(2) if state.E_dx2 is None else state.E_dx2
            x, state = rules.adadelta(x, g, state, lr=lr, rho=rho, eps=eps, weight_decay=0.0,
                                      decoupled_weight_decay=False, maximize=False)  # fmt: skip
            assert state.E_g2 is not None
            np.testing.assert_allclose(path.points[t + 1], x, rtol=1e-12)
            np.testing.assert_allclose(path.rms_g[t], np.sqrt(state.E_g2 + eps), rtol=1e-12)
            np.testing.assert_allclose(path.rms_dx[t], np.sqrt(old + eps), rtol=1e-12)
        g0 = np.array(explore.rosenbrock_grad(*settings["start"]))
        first = -math.sqrt(eps) / np.sqrt((1 - rho) * g0 * g0 + eps) * g0 * lr
        np.testing.assert_allclose(path.points[1] - path.points[0], first, rtol=1e-9)


def test_a_path_ends_where_the_gradient_stops_being_finite() -> None:
    settings = explore.scene_settings(explore.SCENES["rosenbrock"], steps=100)
    settings["optimizers"] = [{"name": "SGD", "kind": "SGD", "lr": 0.5}]
    (path,) = explore.run(settings)
    assert path.diverged and 1 < len(path.points) < 101
    assert np.isfinite(path.points).all()


def test_the_noise_is_seeded_and_standardised() -> None:
    a, b = explore.gradient_noise(7, 4000), explore.gradient_noise(7, 4000)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, explore.gradient_noise(8, 4000))
    assert abs(a.mean()) < 0.05 and abs(a.std() - 1) < 0.05
    # the first uniform of mulberry32(0), as JavaScript computes it (also checked in Chromium)
    assert next(explore.mulberry32(0)) == 0.26642920868471265


def test_frame_steps_cover_the_run() -> None:
    for steps, frames in [(1000, 36), (40, 6), (1, 5), (3, 50)]:
        shown = explore.frame_steps(steps, frames)
        assert shown[0] == 0 and shown[-1] == steps
        assert shown == sorted(set(shown))  # increasing, no repeats
        assert len(shown) <= frames + 1


def test_explore_writes_gifs_pngs_settings_and_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    monkeypatch.setattr(explore, "ffmpeg_encoder", lambda: None)
    out = tmp_path / "ex"
    argv = ["explore", "--out", str(out), "--surfaces", "saddle", "noisy_valley", "--steps", "40",
            "--frames", "6"]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "no MP4" in printed and "SGD (lr=0.02)" in printed
    frames = len(explore.frame_steps(40, 6))
    for name in ("saddle", "noisy_valley"):
        with Image.open(out / f"{name}.gif") as gif:
            assert gif.format == "GIF" and gif.n_frames == frames
            size = gif.size
        assert size[0] >= 1300 and size[1] >= 560  # legend and ticks readable
        with Image.open(out / f"{name}.png") as png:
            assert png.format == "PNG" and png.size == size
        assert not (out / f"{name}.mp4").exists()
        assert stat.S_IMODE((out / f"{name}.gif").stat().st_mode) & 0o044  # not mkstemp's 0600
    assert not (out / "rosenbrock.gif").exists()
    summary = json.loads((out / "settings.json").read_text())
    assert set(summary) == {"saddle", "noisy_valley"}
    lrs = {o["name"]: o.get("lr") for o in summary["saddle"]["optimizers"]}
    assert lrs["SGD"] == explore.SCENES["saddle"].lrs["SGD"]
    assert summary["noisy_valley"]["noise"] == 1.0
    page = (out / "explorer.html").read_text()
    assert "/*CONFIG*/" not in page and '"keras"' in page
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_mp4_goes_through_the_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in encoder records the raw frames piped to it, as ffmpeg would encode them."""
    fake = tmp_path / "ffmpeg"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "data = sys.stdin.buffer.read()\n"
        "sys.stdout.buffer.write(b'%d ' % len(data) + ' '.join(sys.argv[1:]).encode())\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(explore, "ffmpeg_encoder", lambda: str(fake))
    settings = explore.scene_settings(explore.SCENES["valley"], steps=20)
    written = explore.animate(settings, explore.run(settings), "valley", tmp_path / "v", frames=4)
    record = written["mp4"].read_bytes().decode()
    length, args = record.split(" ", 1)
    width, height = args.split("-s ")[1].split(" ")[0].split("x")
    assert int(length) == written["frames"] * int(width) * int(height) * 3
    assert "-pix_fmt yuv420p" in args


# --- the files: written as every file of the library is (checkpoint.atomic_write) ---

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = ["--surfaces", "valley", "--steps", "10", "--frames", "2", "--no-progress"]


def _explore_in_a_process(out: Path, marker: Path, patch: str) -> subprocess.Popen[bytes]:
    """``adadelta explore`` in a child process with ``patch`` applied (it writes ``marker`` when
    the child is where the test wants to signal it); returns once the marker exists."""
    code = "\n".join(
        [
            "import os, sys, time",
            "from pathlib import Path",
            "from adadelta.app import cli, explore",
            "explore.ffmpeg_encoder = lambda: None",
            f"marker = Path({str(marker)!r})",
            patch,
            f"sys.exit(cli.main(['explore', '--out', {str(out)!r}, *{TINY!r}]))",
        ]
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    child = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the child never got there"
        time.sleep(0.02)
    return child


STALL_GIF = """
real = explore.atomic_write
def stalled(target, write):
    def partial(f):
        f.write(b"GIF89a, the first bytes")
        f.flush()
        marker.write_text(str(target))
        time.sleep(120)
    real(target, partial if target.suffix == ".gif" else write)
explore.atomic_write = stalled
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_explore_leaves_the_old_file_and_no_temporary(
    sig: signal.Signals, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed mid-write: the previous GIF is intact. SIGTERM stops it as Ctrl-C does (status
    143, the temporary file removed); after SIGKILL the next run removes the dead writer's
    temporary file."""
    out = tmp_path / "ex"
    out.mkdir()
    (out / "valley.gif").write_bytes(b"the previous animation")
    child = _explore_in_a_process(out, tmp_path / "writing", STALL_GIF)
    child.send_signal(sig)
    _, err = child.communicate(timeout=60)
    assert (out / "valley.gif").read_bytes() == b"the previous animation"
    left = [p.name for p in out.glob(".*")]
    if sig == signal.SIGTERM:
        assert child.returncode == 143, err
        [line] = err.decode().strip().splitlines()
        assert line.startswith("adadelta: terminated: ")
        assert left == []
    else:
        assert len(left) == 1 and left[0].startswith(".valley.gif."), left
        monkeypatch.setattr(explore, "ffmpeg_encoder", lambda: None)
        assert cli.main(["explore", "--out", str(out), *TINY]) == 0
        assert list(out.glob(".*")) == []
        assert (out / "valley.gif").read_bytes()[:6] == b"GIF89a"


def test_ctrl_c_just_after_a_rename_is_an_interruption(tmp_path: Path) -> None:
    """SIGINT between the rename of settings.json and the cleanup: status 130 and the
    interruption's line, not an error about the temporary file; nothing left behind."""
    stall = """
rename = os.replace
def replace(source, target):
    rename(source, target)
    if str(target).endswith("settings.json"):
        marker.write_text("renamed")
        time.sleep(120)
os.replace = replace
"""
    out = tmp_path / "ex"
    child = _explore_in_a_process(out, tmp_path / "renamed", stall)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    message = err.decode()
    assert child.returncode == 130, message
    assert "Errno" not in message and "Traceback" not in message
    [line] = message.strip().splitlines()
    assert line.startswith("adadelta: interrupted: ")
    assert json.loads((out / "settings.json").read_text())["valley"]["steps"] == 10
    assert list(out.glob(".*")) == []


def test_a_rerun_keeps_the_files_modes_and_every_file_is_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(explore, "ffmpeg_encoder", lambda: None)
    out = tmp_path / "ex"
    assert cli.main(["explore", "--out", str(out), *TINY]) == 0
    files = ["valley.gif", "valley.png", "settings.json", "explorer.html"]
    for name in files:
        (out / name).chmod(0o600)
    synced: set[int] = set()
    fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.add(os.fstat(fd).st_ino)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    assert cli.main(["explore", "--out", str(out), *TINY]) == 0
    for name in files:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
        assert (out / name).stat().st_ino in synced, f"{name} was not fsynced"
    assert out.stat().st_ino in synced  # the directory too (the renames)


# --- the page, in a real browser ---

browser = pytest.mark.skipif(
    explorer_browser.missing() is not None, reason=f"no browser: {explorer_browser.missing()}"
)


@pytest.fixture(scope="module")
def page_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return explore.write_page(tmp_path_factory.mktemp("page"))


@pytest.fixture(scope="module")
def loaded(page_path: Path) -> Iterator[explorer_browser.Browser]:
    """One browser for the module's tests (starting Chromium takes a second or two)."""
    with explorer_browser.open_page(page_path) as b:
        yield b


@pytest.fixture
def fresh(loaded: explorer_browser.Browser) -> explorer_browser.Browser:
    """The page reloaded, its errors so far checked and cleared."""
    assert loaded.errors == []
    loaded.page.reload()
    loaded.page.wait_for_function("window.explorer !== undefined")
    return loaded


def _settings_to_check() -> list[dict[str, Any]]:
    cases = [explore.scene_settings(s, steps=400) for s in explore.SCENES.values()]
    custom = copy.deepcopy(cases[0])
    custom.update(noise=2.5, seed=12345, start=[0.3, -0.7])
    custom["optimizers"] += [
        {"name": "mine", "kind": "Adadelta", "preset": "tf1", "rho": 0.8, "eps": 1e-3, "lr": 0.5},
        {"name": "too fast", "kind": "SGD", "lr": 0.01},  # diverges
        {"name": "heavy", "kind": "SGD", "lr": 0.001, "momentum": 0.99},
    ]
    return [*cases, custom]


@browser
def test_the_page_computes_the_library_paths(fresh: explorer_browser.Browser) -> None:
    cases = _settings_to_check()
    results = fresh.page.evaluate("(cases) => cases.map((s) => window.explorer.paths(s))", cases)
    uniforms = fresh.page.evaluate("window.explorer.uniforms(0, 3)")
    assert fresh.errors == []
    diverged = 0
    for settings, page_paths in zip(cases, results, strict=True):
        for path, js in zip(explore.run(settings), page_paths, strict=True):
            where = f"{settings['surface']}, {path.name}"
            assert js["name"] == path.name and js["diverged"] == path.diverged, where
            points = np.stack([js["x"], js["y"]], axis=1)
            np.testing.assert_allclose(points, path.points, rtol=1e-12, atol=0, err_msg=where)
            if path.rms_g is not None:
                np.testing.assert_allclose(np.transpose(js["rms_g"]), path.rms_g, rtol=1e-12)
                np.testing.assert_allclose(np.transpose(js["rms_dx"]), path.rms_dx, rtol=1e-12)
            diverged += path.diverged
    assert diverged >= 1  # the case that diverges did, in both
    generator = explore.mulberry32(0)
    assert uniforms == [next(generator) for _ in range(3)]


@browser
def test_the_page_loads_cleanly_and_follows_its_controls(fresh: explorer_browser.Browser) -> None:
    b, page = fresh, fresh.page
    timings = page.evaluate("window.explorer.timings")
    assert timings["firstDraw"] > 0 and len(timings["redraws"]) >= 1
    before = page.evaluate("window.explorer.drawn()")
    pixels = explorer_browser.canvas_pixels(page, "surface")
    state_pixels = explorer_browser.canvas_pixels(page, "state")

    # a baseline's learning-rate slider: its path and the drawing change
    explorer_browser.press(page, "input[data-optimizer='SGD']", "ArrowRight", 4)
    after = page.evaluate("window.explorer.drawn()")
    assert after[0]["name"] == "SGD" and after[0]["end"] != before[0]["end"]
    assert [a["end"] for a in after[1:]] == [a["end"] for a in before[1:]]
    assert explorer_browser.canvas_pixels(page, "surface") != pixels
    sgd_lr = page.evaluate("window.explorer.settings().optimizers[0].lr")
    assert sgd_lr == pytest.approx(10 ** (math.log10(0.001) + 0.2), rel=0.03)

    # ADADELTA's eps: its path and the state panel follow
    explorer_browser.press(page, "#eps", "ArrowRight", 10)
    spec = page.evaluate("window.explorer.settings().optimizers[5]")
    assert spec["name"] == "ADADELTA" and spec["eps"] == pytest.approx(1e-5)
    assert explorer_browser.canvas_pixels(page, "state") != state_pixels

    # a preset, then a click on the surface moves the start of every path
    page.select_option("#preset", "keras")
    spec = page.evaluate("window.explorer.settings().optimizers[5]")
    assert (spec["lr"], spec["rho"], spec["eps"]) == (1e-3, 0.95, 1e-7)
    page.evaluate("window.scrollTo(0, 0)")  # the sliders below scrolled the page
    box = page.locator("#surface").bounding_box()
    area = page.evaluate("window.explorer.plotArea()")  # inside the axes
    page.mouse.click(
        box["x"] + area["left"] + area["width"] * 0.75,
        box["y"] + area["top"] + area["height"] * 0.25,
    )
    start = page.evaluate("window.explorer.settings().start")
    assert start == pytest.approx([1.0, 2.0], abs=0.02)  # extent (-2, 2) x (-1, 3)
    drawn = page.evaluate("window.explorer.paths(window.explorer.settings())")
    assert all([p["x"][0], p["y"][0]] == start for p in drawn)

    # scrub and play
    page.fill("#steps", "40")
    page.dispatch_event("#steps", "change")
    explorer_browser.press(page, "#scrub", "Home")
    assert page.text_content("#stepLabel") == "step 0"
    page.click("#play")
    page.wait_for_function("document.getElementById('stepLabel').textContent !== 'step 0'")
    page.wait_for_function("document.getElementById('play').textContent === 'Play'")
    assert page.text_content("#stepLabel") == "step 40"

    # every scene, with noise
    for scene in explore.SCENES:
        page.select_option("#scene", scene)
        explorer_browser.press(page, "#noise", "ArrowRight", 3)
        assert page.evaluate("window.explorer.settings().noise") == pytest.approx(
            explore.SCENES[scene].noise + 0.3
        )
    assert b.errors == []


@browser
@pytest.mark.slow  # a second Python and Chromium started: several seconds of wall time
def test_the_timing_benchmark_reports_every_row(tmp_path: Path) -> None:
    """benchmarks/explorer_timing.py, run tiny (no timing is checked)."""
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "explorer_timing.py"
    argv = ["--out", str(tmp_path), "--loads", "1", "--moves", "3", "--commands", "0"]
    subprocess.run([sys.executable, str(script), *argv], check=True, capture_output=True)
    result = json.loads((tmp_path / "explorer_timing.json").read_text())
    assert result["steps"] == 1000 and result["optimizers"] == 9
    assert len(result["first_draw_ms"]) == 1 and len(result["redraw_ms"]) == 3
    assert all(t > 0 for t in result["redraw_ms"] + result["next_frame_ms"])
    table = (tmp_path / "explorer_timing.md").read_text()
    assert "first drawing" in table and "redraw after a slider move" in table


def test_a_path_that_leaves_the_view_is_cut_there() -> None:
    extent = explore.FUNCTIONS["rosenbrock"].extent  # (-2, 2, -1, 3): margin 1 either way
    points = np.array([[0.0, 0.0], [2.9, 3.9], [3.1, 0.0], [0.0, 0.0], [np.nan, 0.0]])
    assert explore.escape_step(points, extent) == 2
    assert explore.escape_step(points[:2], extent) is None
    assert explore.escape_step(points[[0, 4]], extent) == 1  # not finite: out of view
    assert set(explore.SHOWN) <= set(explore.STYLES)
    dashes = [explore.STYLES[n].dash for n in explore.STYLES if n.startswith("ADADELTA")]
    assert len(set(dashes)) == len(dashes)  # every ADADELTA preset drawn its own way


# --- the page at every width, its marks, and the claim ---

WIDTHS = (360, 1024, 1600)
LAYOUT = """() => {
  const boxes = [];
  for (const e of document.querySelectorAll(
      "input, select, button, label, canvas, .val, .swatch, .status, legend, h2")) {
    const r = e.getBoundingClientRect();
    if (r.width * r.height > 0) boxes.push({
      what: e.id || e.textContent.slice(0, 20) || e.tagName, tag: e.tagName, type: e.type || "",
      left: r.left, right: r.right, top: r.top, bottom: r.bottom });
  }
  return { boxes, width: window.innerWidth, scroll: document.documentElement.scrollWidth };
}"""


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> float:
    w = min(a["right"], b["right"]) - max(a["left"], b["left"])
    h = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
    return max(w, 0) * max(h, 0)


@browser
def test_the_page_fits_every_width(fresh: explorer_browser.Browser) -> None:
    """At a phone's 360 px, a laptop's 1024 and a wide 1600: nothing overlaps, nothing leaves
    the screen sideways, every slider is long enough to use; no console errors."""
    page = fresh.page
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        layout = page.evaluate(LAYOUT)
        assert layout["scroll"] <= width, f"{width} px: the page scrolls sideways"
        boxes = layout["boxes"]
        assert len(boxes) > 40
        for box in boxes:
            assert box["left"] >= -0.5 and box["right"] <= width + 0.5, (width, box)
            if box["type"] == "range":
                assert box["right"] - box["left"] >= 60, (width, box)
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert _overlap(a, b) < 1, (width, a, b)
        canvases = {b["what"]: b for b in boxes if b["tag"] == "CANVAS"}
        assert set(canvases) == {"surface", "state", "sweep"}
        assert all(c["right"] - c["left"] >= min(300, width - 40) for c in canvases.values())
    assert fresh.errors == []


@browser
def test_fewer_paths_by_default_and_a_diverging_one_is_marked(
    fresh: explorer_browser.Browser,
) -> None:
    page = fresh.page
    drawn = page.evaluate("window.explorer.drawn()")
    assert [d["name"] for d in drawn if d["shown"]] == list(explore.SHOWN)
    # SGD's rate at the slider's top: it leaves the view where explore.py says it does
    explorer_browser.press(page, "input[data-optimizer='SGD']", "End")
    settings = page.evaluate("window.explorer.settings()")
    sgd = page.evaluate("window.explorer.drawn()")[0]
    (path,) = explore.run({**settings, "optimizers": settings["optimizers"][:1]})
    extent = explore.FUNCTIONS[settings["surface"]].extent
    assert sgd["escape"] == explore.escape_step(path.points, extent) is not None
    status = page.text_content(".status[data-optimizer='SGD']")
    assert status == f"left the view at step {sgd['escape']}"
    # ADADELTA sent off the surface: its state panel stops there instead of rising to 1e150
    explorer_browser.press(page, "#eps", "End")
    explorer_browser.press(page, "#alr", "End")
    adadelta_drawn = page.evaluate("window.explorer.drawn()")[5]
    assert adadelta_drawn["name"] == "ADADELTA" and adadelta_drawn["escape"] is not None
    ranges = page.evaluate("window.explorer.stateRanges()")
    assert len(ranges) == 4 and all(high <= 6 for _, high in ranges), ranges
    assert fresh.errors == []


@browser
def test_the_claim_each_baseline_over_learning_rates(fresh: explorer_browser.Browser) -> None:
    """The sweep: where SGD, MOMENTUM and ADAGRAD end over 25 learning rates (null: the run
    left the view or diverged), against ADADELTA's one setting; as the library computes it."""
    page = fresh.page
    sweep = page.evaluate("window.explorer.sweep()")
    settings = page.evaluate("window.explorer.settings()")
    function = explore.FUNCTIONS[settings["surface"]]
    f_min = function.f(*function.minimum)
    assert [c["name"] for c in sweep["curves"]] == ["SGD", "MOMENTUM", "ADAGRAD"]
    assert len(sweep["lrs"]) == 25 and sweep["lrs"][0] == 1e-5 and sweep["lrs"][-1] == 10

    def gap(spec: dict[str, Any]) -> float | None:
        (path,) = explore.run({**settings, "optimizers": [spec]})
        if path.diverged or explore.escape_step(path.points, function.extent) is not None:
            return None
        return max(1e-16, function.f(*path.points[-1]) - f_min)

    specs = {o["name"]: o for o in settings["optimizers"]}
    lost = 0
    for curve in sweep["curves"]:
        assert len(curve["values"]) == 25
        for k in range(0, 25, 6):
            expected = gap({**specs[curve["name"]], "lr": sweep["lrs"][k]})
            if expected is None:
                assert curve["values"][k] is None
                lost += 1
            else:
                assert curve["values"][k] == pytest.approx(expected, rel=1e-9)
    assert lost >= 1  # too large a rate fails: that is what ADADELTA's one setting spares
    assert sweep["adadelta"] == pytest.approx(gap(specs["ADADELTA"]), rel=1e-9)
    assert fresh.errors == []
