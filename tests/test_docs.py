"""The README and the documentation site: every Python example runs, and the site builds and loads.

Every ```python block of README.md and docs/**/*.md is executed: the blocks of one page in order,
in one shared namespace, with a fresh temporary directory as the working directory; other fences
(bash, console, text) are not run. A new page is picked up by the parametrization. A page whose
examples import an optional extra that is not installed is skipped, naming it.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import explorer_browser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# A fenced block: its indentation (inside a list item), its fence, its info string and body.
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)\n"
    r"(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.M | re.S,
)
IMPORT = re.compile(r"^[ \t]*(?:from|import)[ \t]+([\w.]+)", re.M)
# The modules of optional extras, and what each needs installed.
NEEDS = {
    "torch": "torch",
    "adadelta.torch": "torch",
    "jax": "jax",
    "optax": "optax",
    "adadelta.optax": "optax",
    "ray": "ray",
    "matplotlib": "matplotlib",
    "adadelta.app": "matplotlib",
}


@dataclass(frozen=True)
class Block:
    line: int  # the line of the block's first code line in its page, counting from 1
    code: str


def python_blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    blocks = []
    for fence in FENCE.finditer(text):
        words = fence.group("info").split()
        if words and words[0] == "python":
            line = text.count("\n", 0, fence.start("body")) + 1
            blocks.append(Block(line, textwrap.dedent(fence.group("body"))))
    return blocks


def missing_extras(blocks: list[Block]) -> list[str]:
    modules = {m for block in blocks for m in IMPORT.findall(block.code)}
    needed = {
        need
        for module in modules
        for prefix, need in NEEDS.items()
        if module == prefix or module.startswith(prefix + ".")
    }
    return sorted(n for n in needed if importlib.util.find_spec(n) is None)


def run_page(page: Path, directory: Path) -> dict[str, Any]:
    """Runs the page's blocks in order in one namespace, in ``directory``; returns the namespace.

    Each block is compiled with the page's path and its own line numbers, so a failure's
    traceback points at the line of the page."""
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    before = os.getcwd()
    os.chdir(directory)
    try:
        for block in python_blocks(page):
            code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
            exec(code, namespace)
    finally:
        os.chdir(before)
    return namespace


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def test_the_pages_are_found() -> None:
    names = {page_id(p) for p in PAGES}
    assert {"README.md", "docs/index.md", "docs/guide/numpy.md"} <= names
    assert python_blocks(ROOT / "README.md"), "the README has Python examples"


def test_only_python_fences_run(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```bash\nexit 1\n```\n\n- a list item:\n\n  ```python\n  x = 1\n  ```\n\n"
        "~~~python\ny = x + 1\n~~~\n\n```pycon\n>>> raise SystemExit\n```\n"
        "```python title='t'\nz = y * 10\n```\n",
        encoding="utf-8",
    )
    assert [b.line for b in python_blocks(page)] == [8, 12, 19]
    assert run_page(page, tmp_path)["z"] == 20


def test_a_failing_example_names_its_page_and_line(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("text\n\n```python\nx = 1\nmodel.step()\n```\n", encoding="utf-8")
    with pytest.raises(NameError) as error:
        run_page(page, tmp_path)
    frame = error.traceback[-1]
    assert (Path(str(frame.path)), frame.lineno + 1) == (page, 5)


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=page_id)
def test_every_python_example_runs_and_prints(
    page: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = missing_extras(python_blocks(page))
    if missing:
        pytest.skip(f"{page_id(page)}'s examples need {', '.join(missing)}, not installed")
    run_page(page, tmp_path)
    assert capsys.readouterr().out.strip(), f"{page_id(page)}'s examples print nothing"


def test_the_readme_quick_start_converges_and_saves(tmp_path: Path) -> None:
    readme = ROOT / "README.md"
    quick_start = next(b for b in python_blocks(readme) if "adadelta.Adadelta(params)" in b.code)
    page = tmp_path / "quick_start.md"
    page.write_text(f"```python\n{quick_start.code}```\n", encoding="utf-8")
    params = run_page(page, tmp_path)["params"]
    np.testing.assert_allclose(params["W"], 0, atol=1e-6)
    np.testing.assert_allclose(params["b"], 1, atol=1e-6)
    assert (tmp_path / "opt.npz").is_file()


# --- the site ---

no_mkdocs = importlib.util.find_spec("mkdocs") is None


@pytest.fixture(scope="module")
def site() -> Iterator[Path]:
    """``mkdocs build --strict`` of the repository's site, into a temporary directory."""
    with tempfile.TemporaryDirectory() as out:
        built = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", out],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        )
        assert built.returncode == 0, built.stderr[-4000:]
        yield Path(out)


@pytest.mark.skipif(no_mkdocs, reason="mkdocs is not installed (pip install -e '.[docs]')")
def test_the_site_builds_strict_with_every_page(site: Path) -> None:
    pages = {p.relative_to(site).as_posix() for p in site.rglob("*.html")}
    for page in ROOT.joinpath("docs").rglob("*.md"):
        assert page.relative_to(ROOT / "docs").with_suffix(".html").as_posix() in pages
    assert "explore/explorer.html" in pages  # the explorer page, as adadelta explore writes it
    how = (site / "how-it-works.html").read_text(encoding="utf-8")
    assert '<iframe src="explore/explorer.html"' in how
    assert "<math" in how and "$$" not in how  # the formulas as MathML, no script needed
    for figure in ["results/figure1.png", "benchmarks/results/bench.png", "demo.png"]:
        assert (site / figure).is_file(), figure


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """``directory`` over HTTP on 127.0.0.1 (the site's search runs in a web worker, which a
    file:// page may not start)."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.skipif(no_mkdocs, reason="mkdocs is not installed (pip install -e '.[docs]')")
@pytest.mark.skipif(
    explorer_browser.missing() is not None, reason=f"no browser: {explorer_browser.missing()}"
)
def test_every_page_of_the_site_loads_in_chromium_without_errors(site: Path) -> None:
    from playwright.sync_api import sync_playwright

    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    errors: list[str] = []
    with (
        serve(site) as url,
        sync_playwright() as playwright,
        tempfile.TemporaryDirectory() as profile,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=explorer_browser.chromium(),
            headless=True,
            args=explorer_browser.ARGS,
        )
        try:
            page = context.new_page()
            current = [""]
            page.on(
                "console",
                lambda m: (
                    errors.append(f"{current[0]}: console {m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: errors.append(f"{current[0]}: page error: {e}"))
            page.on(
                "requestfailed",
                lambda r: errors.append(f"{current[0]}: request failed: {r.url} ({r.failure})"),
            )
            context.on(
                "response",
                lambda r: (
                    errors.append(f"{current[0]}: HTTP {r.status}: {r.url}")
                    if r.status >= 400 and not r.url.endswith("404.html")
                    else None
                ),
            )
            for name in pages:
                current[0] = name
                page.goto(url + name, wait_until="networkidle")  # the search index too
                assert page.title(), name
            # the explorer inside "How ADADELTA works" draws
            current[0] = "how-it-works.html"
            page.goto(url + "how-it-works.html", wait_until="networkidle")
            frame = page.frame_locator("iframe").locator("#surface")
            frame.scroll_into_view_if_needed()
            frame.wait_for(state="visible")
            page.evaluate("console.error('probe')")  # the listeners hear what a page reports
            page.wait_for_timeout(100)
        finally:
            context.close()
    assert errors[-1:] == ["how-it-works.html: console error: probe"], errors
    assert not errors[:-1], "\n".join(errors[:-1])
