"""The ``adadelta`` command: ``demo``, ``reproduce``, ``bench`` and ``explore``.

Expected failures (missing or damaged data, a bad ``--out``, a ``--subset`` larger than the
data, a run directory written with other settings) print one line, ``adadelta: error: what went
wrong; what to do``, and exit with status 2, as argument errors do, before any work and
without leaving anything on disk. Ctrl-C prints where the command stood and exits with status
130 (SIGTERM: the same, status 143); files being written are left as they were. Progress bars
are drawn only when stderr is a terminal.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import adadelta
from adadelta.app import experiments
from adadelta.app.datasets import ENV_VAR, FILES, DatasetError, mnist_dir
from adadelta.app.trainer import METRICS, RunMismatchError, read_metrics
from adadelta.checkpoint import CheckpointError
from adadelta.kernels import compact

USAGE_ERROR = 2
INTERRUPTED = 128  # + the signal's number, as shells report it: 130 for SIGINT, 143 for SIGTERM


class CommandError(Exception):
    """An expected failure: the message says what went wrong and what to do."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the fix, with exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"adadelta: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="adadelta", description="ADADELTA (Zeiler, 2012): the paper's experiments and more."
    )
    parser.add_argument("--version", action="version", version=f"adadelta {adadelta.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="the paper's claim in miniature on the embedded MNIST digits (no network)",
        description="SGD, MOMENTUM, ADAGRAD and ADADELTA on the 10,000 + 2,000 MNIST digits "
        "that ship inside the package: Figure 1 style curves, and the test error of SGD and "
        "ADAGRAD over learning rates beside ADADELTA's over (rho, eps). Writes DIR/demo.json, "
        "demo.md and demo.png; keeps no checkpoints.",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("demo"),
        metavar="DIR",
        help="output directory (default: %(default)s)",
    )
    demo.add_argument(
        "--epochs",
        type=_positive,
        default=experiments.DEMO_EPOCHS,
        help="epochs of the Figure 1 curves; the sweeps train min(EPOCHS, "
        f"{experiments.DEMO_SWEEP_EPOCHS}) (default: %(default)s)",
    )
    _add_common(demo)

    reproduce = commands.add_parser(
        "reproduce",
        help="the paper's MNIST experiments",
        description="Train the paper's network as in its section 4.1 and write each "
        "experiment's JSON, markdown table and figures to --out. Runs are checkpointed after "
        "every epoch in OUT/runs/: the same command started again resumes them.",
    )
    reproduce.add_argument(
        "experiment",
        choices=[*experiments.EXPERIMENTS, "all"],
        metavar="EXPERIMENT",
        help="tanh (6 epochs), table1 (SGD, MOMENTUM, ADAGRAD over learning rates, 6 epochs), "
        "table2 (ADADELTA over rho and eps, 6 epochs), figure1 (the four methods, 50 epochs), "
        "figure2 (ADADELTA's step sizes, 25 epochs), or all",
    )
    reproduce.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help=f"directory of the four MNIST .gz files (default: ${ENV_VAR}, else "
        "$XDG_CACHE_HOME/adadelta/mnist or ~/.cache/adadelta/mnist; what is missing is "
        "downloaded unless --no-download)",
    )
    reproduce.add_argument(
        "--state-dtype",
        type=_state_dtype,
        metavar="{" + ",".join(compact.FORMATS) + "}",
        help="ADADELTA alone, its state in this compact format (figure1, table2, tanh; "
        "adadelta.Adadelta's state_dtype) (default: float32 state, every method)",
    )
    reproduce.add_argument(
        "--out",
        type=Path,
        default=Path("adadelta-results"),
        metavar="DIR",
        help="output directory (default: %(default)s in the current directory)",
    )
    reproduce.add_argument(
        "--seeds",
        type=_positive,
        default=1,
        metavar="N",
        help="train seeds 0..N-1 per setting and report mean ± std (default: %(default)s)",
    )
    reproduce.add_argument(
        "--no-download", action="store_true", help="never download MNIST (default: download)"
    )
    reproduce.add_argument(
        "--epochs",
        type=_positive,
        metavar="N",
        help="train every experiment for N epochs instead of the paper's (quick runs; the "
        "paper's targets then do not apply) (default: the paper's)",
    )
    reproduce.add_argument(
        "--subset",
        type=_pair,
        metavar="N_TRAIN,N_TEST",
        help="train and test on the first N_TRAIN training and N_TEST test images only (quick "
        "runs; the paper's targets then do not apply) (default: all 60000,10000)",
    )
    _add_common(reproduce)

    bench = commands.add_parser(
        "bench",
        help="optimizer step benchmarks against the peers",
        description="Time one ADADELTA step at several sizes (step), or one epoch of the "
        "paper's network (epoch), against PyTorch, optax and a NumPy tutorial implementation; "
        "or the PyTorch drop-in's step on real models' parameter lists against torch.compile "
        "(models). Prints the tables and writes them, with the machine and its load, to --out.",
    )
    from adadelta.app import bench as bench_module

    bench_module.add_arguments(bench)
    explore = commands.add_parser(
        "explore",
        help="the optimizers on 2-D surfaces: animated paths beside ADADELTA's state, and an "
        "interactive page",
        description="Run SGD, MOMENTUM, ADAGRAD, RMSprop, Adam and ADADELTA (the paper's "
        "settings and the torch, keras and tf1 presets) from one start on 2-D surfaces. Writes "
        "per surface NAME.gif (the paths over the contours beside ADADELTA's state), NAME.png "
        "(its last frame) and NAME.mp4 where an ffmpeg is found, then settings.json and "
        "explorer.html, an interactive page that needs only a browser.",
    )
    from adadelta.app import explore as explore_module

    explore_module.add_arguments(explore)
    _add_async(commands)
    return parser


def _add_async(commands: argparse._SubParsersAction[_Parser]) -> None:
    asynchronous = commands.add_parser(
        "async",
        help="the paper's section 4.4: asynchronous replicas against a sharded parameter server "
        "(Ray, and a simulator for 100 and 200 replicas)",
        description="Downpour-style asynchronous training of a 4-hidden-layer network on MNIST: "
        "parameter-server shards and replicas as Ray actors (Ray starts inside the command "
        "unless --address names a cluster), and a deterministic simulator of the same runs. "
        "Completed runs are kept in OUT/runs/ and reused; writes OUT/async.md, async.json and "
        "figures.",
    )
    from adadelta.app import downpour

    downpour.add_arguments(asynchronous)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.progress = getattr(args, "progress", False) and sys.stderr.isatty()
    signals: list[int] = []
    try:
        with _sigterm_interrupts(signals):
            return _run(args)
    except RunMismatchError as error:
        return _fail(
            f"{error}; on the command line: choose another --out, or delete that run's "
            "directory to train it again"
        )
    except (CommandError, DatasetError, CheckpointError, experiments.OutputLockedError) as error:
        return _fail(str(error))
    except OSError as error:  # a full disk, a permission: the system's words and the path
        return _fail(f"{error}; check the path and free space, then run the same command again")
    except KeyboardInterrupt as error:
        signum = signals[0] if signals else signal.SIGINT
        what = "terminated" if signum == signal.SIGTERM else "interrupted"
        print(f"\nadadelta: {what}: {_where(args, error)}", file=sys.stderr)
        return INTERRUPTED + signum


@contextmanager
def _sigterm_interrupts(signals: list[int]) -> Iterator[None]:
    """SIGTERM stops the command as Ctrl-C does (files being written removed, checkpoints
    kept), recording the signal in ``signals``."""

    def handler(signum: int, frame: object) -> None:
        signals.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave the signal alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    if args.command == "bench":
        from adadelta.app import bench as bench_module

        problem = bench_module.check(args)
        if problem is not None:
            raise CommandError(problem)
        _prepare_out(args.out, bench_module.output_files(args))
        return bench_module.run(args)
    if args.command == "explore":
        from adadelta.app import explore as explore_module

        _prepare_out(args.out, explore_module.output_files(args))
        return explore_module.main(args)
    if args.command == "async":
        from adadelta.app import downpour

        return downpour.main(args)
    start = time.perf_counter()
    if args.command == "demo":
        from adadelta.app.datasets import load_embedded_digits

        _prepare_out(args.out, _report_files(["demo"]))
        ctx = experiments.Context(load_embedded_digits(), args.out, progress=args.progress)
        reports = [experiments.demo(ctx, epochs=args.epochs)]
    else:
        from adadelta.app.datasets import load_mnist

        names = experiments.ALL_ORDER if args.experiment == "all" else [args.experiment]
        if args.state_dtype is not None:
            if args.experiment == "all":
                names = [n for n in names if n in experiments.COMPACT_EXPERIMENTS]
            elif args.experiment not in experiments.COMPACT_EXPERIMENTS:
                raise CommandError(
                    f"--state-dtype applies to {', '.join(sorted(experiments.COMPACT_EXPERIMENTS))}"
                    f" and all (ADADELTA's accuracy), not to {args.experiment}"
                )
        if args.no_download:
            _check_present(args.data)
        data = load_mnist(args.data, download=not args.no_download, progress=args.progress)
        if args.subset is not None:
            n_train, n_test = args.subset
            available = len(data.y_train), len(data.y_test)
            if n_train > available[0] or n_test > available[1]:
                raise CommandError(
                    f"--subset {n_train},{n_test}: MNIST has {available[0]} training and "
                    f"{available[1]} test images; choose N_TRAIN <= {available[0]} and "
                    f"N_TEST <= {available[1]}"
                )
            data = data.subset(n_train, n_test)
        _prepare_out(args.out, _report_files(names))
        ctx = experiments.Context(
            data,
            args.out,
            seeds=args.seeds,
            progress=args.progress,
            epochs=args.epochs,
            state_dtype=args.state_dtype,
        )
        reports = experiments.reproduce(names, ctx)
    for report in reports:
        print(f"\n## {report.name}\n\n{report.markdown}")
        for figure in report.figures:
            print(f"figure: {args.out / figure}")
    print(f"\nwrote {args.out}/ in {time.perf_counter() - start:.1f} s")
    return 0


def _fail(message: str) -> int:
    one_line = ""
    for line in filter(None, (line.strip() for line in message.splitlines())):
        one_line += (" " if one_line.endswith(":") else "; " if one_line else "") + line
    print(f"adadelta: error: {one_line}", file=sys.stderr)
    return USAGE_ERROR


def _prepare_out(out: Path, files: Sequence[str] = ()) -> None:
    """``out`` made a writable directory, in which none of ``files`` is a directory."""
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out}: is a file, not a directory; choose a directory")
    in_the_way = [name for name in files if (out / name).is_dir()]
    if in_the_way:
        raise CommandError(
            f"--out {out}: {', '.join(in_the_way)} would be written there but is a directory; "
            "choose another --out, or move it"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or str(error)
        raise CommandError(
            f"--out {out}: cannot create the directory ({reason}); choose another"
        ) from None
    probe = out / ".adadelta-write-test"
    try:
        probe.touch()
        probe.unlink()
    except OSError as error:
        reason = error.strerror or str(error)
        raise CommandError(f"--out {out}: cannot write there ({reason}); choose another") from None


def _report_files(names: Sequence[str]) -> list[str]:
    """The report files of these experiments (their figures other than NAME.png aside)."""
    return [f"{name}{suffix}" for name in names for suffix in (".json", ".md", ".png")]


def _check_present(data: Path | None) -> None:
    """With --no-download: every MNIST file must already be there."""
    directory = mnist_dir(data)
    missing = [name for name in FILES.values() if not (directory / name).is_file()]
    if missing:
        raise CommandError(
            f"MNIST files missing from {directory}: {', '.join(missing)}; put the four MNIST "
            f".gz files in a directory and pass --data DIR (or set ${ENV_VAR}), or drop "
            "--no-download to download them"
        )


def _where(args: argparse.Namespace, error: KeyboardInterrupt) -> str:
    """Where the interrupted command stood, and how to go on."""
    if isinstance(error, experiments.Interrupted):
        return str(error)
    if args.command != "reproduce":
        return "stopped; nothing to resume: run the command again"
    runs = [d for d in (args.out / "runs").glob("*") if (d / METRICS).is_file()]
    again = "run the same command to resume"
    if not runs:
        return f"no run had completed an epoch yet; {again} (it starts from the beginning)"
    latest = max(runs, key=lambda d: (d / METRICS).stat().st_mtime)
    try:
        completed = len(read_metrics(latest))
    except (OSError, ValueError, TypeError):
        completed = 0
    return (
        f"{len(runs)} run(s) in {args.out / 'runs'} are checkpointed; the latest, {latest.name}, "
        f"had completed {completed} epoch(s); {again} from there"
    )


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="hide the progress bars (default: shown when stderr is a terminal)",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _state_dtype(text: str) -> str:
    if text not in compact.FORMATS:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(compact.FORMATS)}, got {text!r} (float32 state is the "
            "default: leave --state-dtype out)"
        )
    return text


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
