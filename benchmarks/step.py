"""One ADADELTA step against its peers, at several sizes: ``adadelta bench step``.

    python benchmarks/step.py --out benchmarks/results     # the full run (a few minutes)
    python benchmarks/step.py --quick --out /tmp/bench      # seconds

See ``benchmarks/README.md`` and ``python benchmarks/step.py --help``.
"""

from __future__ import annotations

import sys

from adadelta.app.bench import main

if __name__ == "__main__":
    sys.exit(main(["step", *sys.argv[1:]]))
