"""Redraw Figure 1 from a ``figure1.json`` that ``adadelta reproduce figure1`` wrote, without
training: the PNG goes beside the JSON. ``python scripts/redraw_figure1.py results/figure1.json``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from adadelta.app.experiments import draw_figure1


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/redraw_figure1.py OUT/figure1.json", file=sys.stderr)
        return 2
    source = Path(argv[0])
    document = json.loads(source.read_text(encoding="utf-8"))
    target = source.with_suffix(".png")
    draw_figure1(document, target)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
