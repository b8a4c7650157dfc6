"""Train the paper's MNIST network in PyTorch with the drop-in ADADELTA.

The network of Zeiler (2012), Table 2: 784 -> 500 -> 300 -> 10 with ReLU, softmax cross-entropy,
mini-batches of 100, ADADELTA with rho=0.95, eps=1e-6 and no learning rate (lr=1); the paper
reports 1.83% test error after 6 epochs. The only change from a plain PyTorch script is the
import of ``Adadelta`` (``--torch-optim`` switches back, for comparison).

    python examples/mnist_torch.py --data /path/to/mnist   # the four MNIST .gz files
    python examples/mnist_torch.py --embedded --epochs 3   # offline: the 12,000 embedded digits

Needs the torch extra: ``pip install "adadelta[torch]"``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from adadelta.app.datasets import Dataset, load_embedded_digits, load_mnist
from adadelta.torch import Adadelta  # instead of: from torch.optim import Adadelta

BATCH_SIZE = 100


def paper_network() -> nn.Module:
    return nn.Sequential(
        nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 300), nn.ReLU(), nn.Linear(300, 10)
    )


def test_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        predictions = torch.cat([model(xb).argmax(1) for xb in x.split(1000)])
    return (predictions != y).double().mean().item()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", metavar="DIR", help="directory of the MNIST .gz files")
    parser.add_argument("--epochs", type=int, default=6, help="passes over the data (6)")
    parser.add_argument("--embedded", action="store_true", help="the embedded demo digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--torch-optim", action="store_true", help="use torch.optim.Adadelta, to compare"
    )
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")

    data: Dataset = load_embedded_digits() if args.embedded else load_mnist(args.data)
    x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)

    torch.manual_seed(args.seed)
    model = paper_network()
    optimizer_class = torch.optim.Adadelta if args.torch_optim else Adadelta
    optimizer = optimizer_class(model.parameters(), rho=0.95, eps=1e-6)  # the paper's setting
    print(
        f"{data.name}: {len(y_train)} training, {len(y_test)} test images; "
        f"{optimizer_class.__module__}.{optimizer_class.__name__}"
    )

    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(y_train), generator=generator)
        for batch in order.split(BATCH_SIZE):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
        seconds = time.perf_counter() - start
        model.eval()
        error = test_error(model, x_test, y_test)
        print(f"epoch {epoch:3d}  test error {100 * error:5.2f}%  ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
