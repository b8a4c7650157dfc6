"""The PyTorch drop-in on real models' parameter lists, every state format against
``torch.compile``d ``torch.optim.Adadelta``: ``adadelta bench models``.

    python benchmarks/torch_models.py --out benchmarks/results             # every model, 10 rounds
    python benchmarks/torch_models.py --models resnet50 --rounds 20 --out /tmp/models
    python benchmarks/torch_models.py --memory --out benchmarks/results    # and peak memory

The code lives in :mod:`adadelta.app.bench_models` (shapes, timing, peak memory) and
:mod:`adadelta.app.bench` (the tables, the plot, the command line). See ``benchmarks/README.md``
and ``python benchmarks/torch_models.py --help``.
"""

from __future__ import annotations

import sys

from adadelta.app.bench import main

if __name__ == "__main__":
    sys.exit(main(["models", *sys.argv[1:]]))
