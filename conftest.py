"""Repository-level pytest configuration: the doctests in src/ run with the tests."""

import importlib.util

# adadelta.torch needs the optional torch extra; without it, its doctests cannot be collected.
collect_ignore = [] if importlib.util.find_spec("torch") else ["src/adadelta/torch.py"]
