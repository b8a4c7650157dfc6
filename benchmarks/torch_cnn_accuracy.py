"""Accuracy of compact state on a small convolutional network: float32, bfloat16 and float8
state of the PyTorch drop-in, three seeds each, final test loss and accuracy.

The network: conv 5x5 (1 -> 16) + ReLU + max-pool 2, conv 5x5 (16 -> 32) + ReLU + max-pool 2,
linear 512 -> 10 (18,346 parameters; under the default policy the 12,800-element conv and
5,120-element linear weights get compact state, the rest float32 state). Data: the package's
embedded MNIST digits (10,000 training, 2,000 test images), no download. Each seed fixes the
initial weights, the batch order and the state's rounding seed; ADADELTA with PyTorch's
defaults (lr=1.0, rho=0.9, eps=1e-6), batches of 100.

    python benchmarks/torch_cnn_accuracy.py               # 3 epochs, seeds 0 1 2
    python benchmarks/torch_cnn_accuracy.py --epochs 1

The last lines compare each compact format's mean test accuracy with float32 state's, against
the target: within max(0.1 points, float32's seed spread (max - min)).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from adadelta.app.datasets import load_embedded_digits
from adadelta.torch import Adadelta

FORMATS: list[str | None] = [None, "bfloat16", "float8"]


def network() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(512, 10),
    )  # fmt: skip


def train(fmt: str | None, seed: int, epochs: int) -> tuple[float, float]:
    """Final test loss and accuracy (%) of one run."""
    data = load_embedded_digits()
    x_train = torch.from_numpy(data.x_train).reshape(-1, 1, 28, 28)
    y_train = torch.from_numpy(data.y_train)
    x_test = torch.from_numpy(data.x_test).reshape(-1, 1, 28, 28)
    y_test = torch.from_numpy(data.y_test)
    torch.manual_seed(seed)
    model = network()
    opt = Adadelta(model.parameters(), state_dtype=fmt, seed=seed)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(y_train), generator=order).split(100):  # type: ignore[no-untyped-call]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch]).backward()  # type: ignore[no-untyped-call]
            opt.step()
    with torch.no_grad():
        logits = model(x_test)
        loss = float(torch.nn.functional.cross_entropy(logits, y_test))
        accuracy = 100 * float((logits.argmax(1) == y_test).float().mean())
    return loss, accuracy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = ["| state | seed | test loss | test accuracy (%) |", "|---|---|---|---|"]
    accuracies: dict[str | None, list[float]] = {}
    for fmt in FORMATS:
        for seed in args.seeds:
            loss, accuracy = train(fmt, seed, args.epochs)
            accuracies.setdefault(fmt, []).append(accuracy)
            rows.append(f"| {fmt or 'float32'} | {seed} | {loss:.4f} | {accuracy:.2f} |")
            print(rows[-1], flush=True)
    base = accuracies[None]
    spread = max(base) - min(base)
    bound = max(0.1, spread)
    summary = [
        "| state | mean accuracy (%) | spread over seeds | vs float32's mean | within target |",
        "|---|---|---|---|---|",
    ]
    for fmt, values in accuracies.items():
        diff = statistics.mean(values) - statistics.mean(base)
        summary.append(
            f"| {fmt or 'float32'} | {statistics.mean(values):.2f} | "
            f"{max(values) - min(values):.2f} | {diff:+.2f} | "
            f"{'yes' if abs(diff) <= bound else 'no'} |"
        )
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{args.epochs} epochs, seeds {args.seeds}; torch {torch.__version__}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load average {load} at the end "
        f"(a machine shared with other work); {time.perf_counter() - start:.0f} s in all.\n"
    )
    print("\n".join(rows))
    print(f"\nTarget: within max(0.1, float32's spread {spread:.2f}) = {bound:.2f} points.\n")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
