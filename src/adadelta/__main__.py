"""``python -m adadelta`` and the ``adadelta`` command: :mod:`adadelta.app.cli`, which needs the
``paper`` extra; without it, ``--version`` still answers and anything else is one line saying
how to install the extra (exit status 2)."""

import sys

# the top-level modules of the [paper] extra's packages (Pillow's is PIL)
PAPER_EXTRA = ("matplotlib", "tqdm", "PIL", "threadpoolctl")


def main() -> int:
    try:
        from adadelta.app.cli import main as cli_main
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in PAPER_EXTRA:
            raise
        if sys.argv[1:2] == ["--version"]:  # what the command line's --version prints
            import adadelta

            print(f"adadelta {adadelta.__version__}")
            return 0
        print(
            f"adadelta: error: the command line needs {missing}, which the [paper] extra "
            "installs: pip install 'adadelta[paper]'",
            file=sys.stderr,
        )
        return 2
    return cli_main()


if __name__ == "__main__":
    raise SystemExit(main())
