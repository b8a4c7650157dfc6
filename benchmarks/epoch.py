"""One epoch of the paper's MNIST network, ours against PyTorch: ``adadelta bench epoch``.

    python benchmarks/epoch.py --out benchmarks/results                          # synthetic
    python benchmarks/epoch.py --data ../shared/data/mnist --out benchmarks/results  # MNIST

See ``benchmarks/README.md`` and ``python benchmarks/epoch.py --help``.
"""

from __future__ import annotations

import sys

from adadelta.app.bench import main

if __name__ == "__main__":
    sys.exit(main(["epoch", *sys.argv[1:]]))
