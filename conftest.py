"""Repository-level pytest configuration: the doctests in src/ run with the tests."""

import importlib.util

# adadelta.torch needs the optional torch extra, and its GPU kernel Triton; without them, their
# doctests cannot be collected.
collect_ignore = [] if importlib.util.find_spec("torch") else ["src/adadelta/torch"]
if not importlib.util.find_spec("triton"):
    collect_ignore.append("src/adadelta/torch/triton_kernel.py")
