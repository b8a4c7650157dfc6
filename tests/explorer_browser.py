"""The browser harness of the explorer page: headless Chromium (Debian's ``chromium``) driven by
Playwright, loading ``explorer.html`` from ``file://`` with a fresh profile and collecting console
errors. Used by ``tests/test_explore.py`` and ``benchmarks/explorer_timing.py``.

Playwright drives the system's Chromium (``executable_path``); ``playwright install`` (which
downloads browsers) is never needed.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def missing() -> str | None:
    """Why the browser cannot run here (None when it can)."""
    if importlib.util.find_spec("playwright") is None:
        return "the Python package playwright is not installed (pip install -e '.[dev]')"
    if chromium() is None:
        return "no chromium executable on the PATH (apt-get install -y chromium)"
    return None


@dataclass
class Browser:
    page: Any  # playwright.sync_api.Page
    errors: list[str] = field(default_factory=list)


@contextmanager
def open_page(path: Path) -> Iterator[Browser]:
    """``path`` loaded in a fresh headless Chromium; ``errors`` collects console errors, page
    errors and failed requests while the context is open."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    if executable is None:
        raise RuntimeError("no chromium executable on the PATH")
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=ARGS
        )
        try:
            page = context.new_page()
            browser = Browser(page)
            page.on(
                "console",
                lambda m: (
                    browser.errors.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: browser.errors.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: browser.errors.append(f"request failed: {r.url}"))
            page.goto(path.resolve().as_uri())
            page.wait_for_function("window.explorer !== undefined")
            yield browser
        finally:
            context.close()


def press(page: Any, selector: str, key: str, times: int = 1) -> None:
    """Focus ``selector`` and press ``key`` (e.g. ArrowRight on a slider) as a user would."""
    page.focus(selector)
    for _ in range(times):
        page.keyboard.press(key)


def canvas_pixels(page: Any, canvas_id: str) -> str:
    """The canvas's pixels, as a data URL (equal strings: equal drawings)."""
    return str(page.evaluate(f"document.getElementById('{canvas_id}').toDataURL()"))
