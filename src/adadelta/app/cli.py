"""The ``adadelta`` command: ``demo``, ``reproduce``, ``bench`` and ``explore``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from adadelta.app import experiments


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="adadelta", description="ADADELTA (Zeiler, 2012): the paper's experiments and more."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="SGD, MOMENTUM, ADAGRAD and ADADELTA on the embedded 5,000-image MNIST sample "
        "(no network), with a figure and a table",
    )
    demo.add_argument("--out", type=Path, default=Path("demo"), help="output directory")
    demo.add_argument("--epochs", type=_positive, default=20, help="epochs per method")
    _add_common(demo)

    reproduce = commands.add_parser("reproduce", help="the paper's MNIST experiments")
    reproduce.add_argument("experiment", choices=[*experiments.EXPERIMENTS, "all"])
    reproduce.add_argument(
        "--data",
        type=Path,
        help="directory of the four MNIST .gz files (default: $ADADELTA_DATA, else the cache "
        "directory, downloading what is missing)",
    )
    reproduce.add_argument("--out", type=Path, default=Path("results"), help="output directory")
    reproduce.add_argument("--seeds", type=_positive, default=1, help="seeds 0..N-1 per setting")
    reproduce.add_argument("--no-download", action="store_true", help="never download MNIST")
    reproduce.add_argument(
        "--state-dtype",
        choices=["float32", "bfloat16", "float8"],
        help="ADADELTA alone, its state in this format (figure1, table2, tanh; float32: the "
        "default state, the baseline of the compact ones)",
    )
    reproduce.add_argument(
        "--epochs", type=_positive, help="override every experiment's epochs (quick runs)"
    )
    reproduce.add_argument(
        "--subset",
        type=_pair,
        metavar="N_TRAIN,N_TEST",
        help="train and test on the first N images only (quick runs)",
    )
    _add_common(reproduce)

    bench = commands.add_parser("bench", help="optimizer step benchmarks against the peers")
    from adadelta.app import bench as bench_module

    bench_module.add_arguments(bench)

    explore = commands.add_parser(
        "explore",
        help="the optimizers on 2-D surfaces: animated paths beside ADADELTA's state, and an "
        "interactive page",
    )
    from adadelta.app import explore as explore_module

    explore_module.add_arguments(explore)

    args = parser.parse_args(argv)
    if args.command == "bench":
        return bench_module.run(args)
    if args.command == "explore":
        return explore_module.main(args)
    start = time.perf_counter()
    if args.command == "demo":
        from adadelta.app.datasets import load_embedded_digits

        ctx = experiments.Context(load_embedded_digits(), args.out, progress=args.progress)
        reports = [experiments.demo(ctx, epochs=args.epochs)]
    else:
        from adadelta.app.datasets import load_mnist

        data = load_mnist(args.data, download=not args.no_download, progress=args.progress)
        if args.subset is not None:
            data = data.subset(*args.subset)
        ctx = experiments.Context(
            data,
            args.out,
            seeds=args.seeds,
            progress=args.progress,
            epochs=args.epochs,
            state_dtype=args.state_dtype,
        )
        names = experiments.ALL_ORDER if args.experiment == "all" else [args.experiment]
        if args.state_dtype is not None and args.experiment == "all":
            names = [n for n in names if n in experiments.COMPACT_EXPERIMENTS]
        reports = experiments.reproduce(names, ctx)
    for report in reports:
        print(f"\n## {report.name}\n\n{report.markdown}")
        for figure in report.figures:
            print(f"figure: {args.out / figure}")
    print(f"\nwrote {args.out}/ in {time.perf_counter() - start:.1f} s")
    return 0


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide the progress bars"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _pair(text: str) -> tuple[int, int]:
    try:
        n_train, n_test = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N_TRAIN,N_TEST, got {text!r}") from None
    if n_train < 1 or n_test < 1:
        raise argparse.ArgumentTypeError(f"both sizes must be positive, got {text!r}")
    return n_train, n_test


if __name__ == "__main__":
    sys.exit(main())
