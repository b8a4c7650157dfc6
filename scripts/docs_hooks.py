"""MkDocs hooks of the documentation site (``mkdocs.yml``).

- Math: ``$...$`` and ``$$...$$`` become MathML when the site is built, which every current
  browser draws; the site loads no script from the network.
- Files from outside ``docs/``: the explorer page as ``adadelta explore`` writes it, and the
  committed figures of ``results/`` and ``benchmarks/results/``, so the site shows the files
  the commands wrote, not copies of them.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from latex2mathml.converter import convert
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
FIGURES = [
    "results/figure1.png",
    "results/figure2.png",
    "benchmarks/results/bench.png",
]
# $$...$$ (display) first; then $...$ (inline) not touching a digit or a space on the inside
DISPLAY = re.compile(r"^\$\$\n(.+?)\n\$\$$", re.S | re.M)
INLINE = re.compile(r"(?<![\\$\w])\$(?=\S)([^$\n]+?)(?<=\S)\$(?![\w$])")
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]+`")


def on_files(files: Files, config: Any) -> Files:
    from adadelta.app.explore import write_page

    with tempfile.TemporaryDirectory() as out:
        page = write_page(Path(out)).read_text(encoding="utf-8")
    files.append(File.generated(config, "explore/explorer.html", content=page))
    for figure in FIGURES:
        files.append(File.generated(config, figure, abs_src_path=str(ROOT / figure)))
    return files


def _math(text: str) -> str:
    text = DISPLAY.sub(lambda m: convert(m.group(1), display="block"), text)
    return INLINE.sub(lambda m: convert(m.group(1)), text)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Math outside code: fenced blocks and code spans are kept as they are."""
    pieces: list[str] = []
    position = 0
    for fence in FENCE.finditer(markdown):
        pieces.append(_outside_code_spans(markdown[position : fence.start()]))
        pieces.append(fence.group(0))
        position = fence.end()
    pieces.append(_outside_code_spans(markdown[position:]))
    return "".join(pieces)


def _outside_code_spans(text: str) -> str:
    pieces: list[str] = []
    position = 0
    for span in CODE_SPAN.finditer(text):
        pieces.append(_math(text[position : span.start()]))
        pieces.append(span.group(0))
        position = span.end()
    pieces.append(_math(text[position:]))
    return "".join(pieces)
