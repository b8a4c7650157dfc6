"""Build the demo's digits, ``src/adadelta/app/data/mnist_subset.npz``, from the real MNIST files.

The draw is fixed: for each digit 0..9, ``TRAIN_PER_CLASS`` images of that digit from MNIST's
60,000 training images and ``TEST_PER_CLASS`` from its 10,000 test images, chosen without
replacement by ``numpy.random.default_rng(SEED)`` (digits in order 0..9, training set first),
then each split shuffled by the same generator. The four source files are checked against
their known SHA-256 first, and the written file against ``EXPECTED_SHA256`` (the checksum that
``adadelta.app.datasets.load_embedded_digits`` verifies at load). The archive is a plain ``.npz``
(no pickled objects) of uint8 / uint16 arrays, written with fixed zip timestamps so that the
same inputs give the same bytes::

    python scripts/build_demo_digits.py                  # reads ../shared/data/mnist
    python scripts/build_demo_digits.py --mnist DIR --out FILE

It exits with status 1 if the result's checksum differs from ``EXPECTED_SHA256`` (e.g. after a
change of SEED or the counts: then update the constant in datasets.py and the data README).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from adadelta.app.datasets import EMBEDDED_SHA256, FILES, SHA256, read_idx

SEED = 20121222  # the date of the paper's arXiv submission
TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 200
REPO = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = REPO.parent / "shared" / "data" / "mnist"
DEFAULT_OUT = REPO / "src" / "adadelta" / "app" / "data" / "mnist_subset.npz"


def draw(mnist: Path) -> dict[str, np.ndarray[Any, Any]]:
    """The subset's arrays: images (n, 784) uint8, labels uint8, source row indices uint16."""
    for name in FILES.values():
        digest = hashlib.sha256((mnist / name).read_bytes()).hexdigest()
        if digest != SHA256[name]:
            raise SystemExit(f"{mnist / name}: SHA-256 {digest}, expected {SHA256[name]}")
    rng = np.random.default_rng(SEED)
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        images = read_idx(mnist / FILES[f"{split}_images"]).reshape(-1, 28 * 28)
        labels = read_idx(mnist / FILES[f"{split}_labels"])
        chosen = np.concatenate(
            [
                rng.choice(np.flatnonzero(labels == digit), per_class, replace=False)
                for digit in range(10)
            ]
        )
        chosen = rng.permutation(chosen)
        arrays[f"x_{split}"] = images[chosen]
        arrays[f"y_{split}"] = labels[chosen]
        arrays[f"{split}_index"] = chosen.astype(np.uint16)  # row in the MNIST file
    return arrays


def write_npz(path: Path, arrays: dict[str, np.ndarray[Any, Any]]) -> None:
    """A deflated ``.npz`` whose bytes depend only on the arrays (fixed zip timestamps)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST, help="the four MNIST .gz")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the .npz to write")
    args = parser.parse_args()
    arrays = draw(args.mnist)
    write_npz(args.out, arrays)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    counts = {
        split: np.bincount(arrays[f"y_{split}"], minlength=10).tolist()
        for split in ("train", "test")
    }
    print(f"seed {SEED}; per class: train {counts['train']}, test {counts['test']}")
    print("sources: " + ", ".join(f"{name} {SHA256[name][:12]}..." for name in FILES.values()))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes), SHA-256 {digest}")
    if digest != EMBEDDED_SHA256:
        print(f"checksum differs from the expected {EMBEDDED_SHA256}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
