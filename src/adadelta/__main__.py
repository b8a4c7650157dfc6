"""``python -m adadelta`` and the ``adadelta`` command: :mod:`adadelta.app.cli`, which needs the
``paper`` extra; without it, one line says how to install it (exit status 2)."""

import sys

PAPER_EXTRA = ("matplotlib", "tqdm")


def main() -> int:
    try:
        from adadelta.app.cli import main as cli_main
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in PAPER_EXTRA:
            raise
        print(
            f"adadelta: error: the command line needs {missing}, which the [paper] extra "
            "installs: pip install 'adadelta[paper]'",
            file=sys.stderr,
        )
        return 2
    return cli_main()


if __name__ == "__main__":
    raise SystemExit(main())
