"""MkDocs hooks of the documentation site (``mkdocs.yml``).

- Math becomes MathML when the site is built, which current browsers draw without a script:
  ``$...$`` and ``$$...$$`` in the pages (kept from Markdown by ``pymdownx.arithmatex``), and
  the ``.. math::`` blocks and ``:math:`` roles of the docstrings in the API reference, whose
  other reStructuredText roles (``:func:`` and the like) are dropped, keeping their code.
- Files from outside ``docs/``: the explorer page as ``adadelta explore`` writes it, and the
  committed figures of ``results/`` and ``benchmarks/results/``, so the site shows the files
  the commands wrote, not copies of them.
"""

from __future__ import annotations

import html
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
    "benchmarks/results/torch_models.png",
    "results/async/async-simulate-2000u-j0.3-N16.png",
    "results/async/async-simulate-10000u-j0.3-N100.png",
    "results/async/async-simulate-10000u-j0.3-N200.png",
    "results/async/async-ray-2000u-N16.png",
    "results/async/async-staleness.png",
]
ARITHMATEX = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">\\(?P<open>[(\[])(?P<tex>.*?)\\[)\]]</(?P=tag)>', re.S
)
RST_MATH_BLOCK = re.compile(
    r"<p>\.\. math::</p>\s*<div class=\"highlight\"><pre><span></span><code>(?P<tex>.*?)</code>"
    r"</pre></div>",
    re.S,
)
RST_MATH_ROLE = re.compile(r":math:<code>(?P<tex>[^<]*)</code>")
RST_ROLE = re.compile(r":(?:func|meth|class|mod|data|attr|exc|obj):(?=<code>)")


def on_files(files: Files, config: Any) -> Files:
    from adadelta.app.explore import write_page

    with tempfile.TemporaryDirectory() as out:
        page = write_page(Path(out)).read_text(encoding="utf-8")
    files.append(File.generated(config, "explore/explorer.html", content=page))
    for figure in FIGURES:
        files.append(File.generated(config, figure, abs_src_path=str(ROOT / figure)))
    return files


def mathml(tex: str, display: bool) -> str:
    """MathML of ``tex``; aligned lines (``&`` and ``\\\\``) as one display block each."""
    tex = html.unescape(tex).strip()
    if not display:
        return str(convert(tex))
    lines = [line.replace("&", "") for line in tex.split("\\\\") if line.strip()]
    blocks = "".join(convert(line, display="block") for line in lines)
    return f'<div style="overflow-x: auto">{blocks}</div>'  # wide formulas scroll


def on_page_content(content: str, page: Any, config: Any, files: Files) -> str:
    content = ARITHMATEX.sub(lambda m: mathml(m["tex"], m["open"] == "["), content)
    content = RST_MATH_BLOCK.sub(lambda m: mathml(m["tex"], True), content)
    content = RST_MATH_ROLE.sub(lambda m: mathml(m["tex"], False), content)
    return RST_ROLE.sub("", content)
