"""``python -m adadelta``: the ``adadelta`` command (needs the ``paper`` extra)."""

from adadelta.app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
