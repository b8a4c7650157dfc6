"""Repository-level pytest configuration: the doctests in src/ run with the tests."""

import importlib.util

# adadelta.torch needs the optional torch extra; without it, its doctests cannot be collected.
# Its GPU kernel has no doctests, and importing it would decide whether Triton interprets it
# before tests/test_torch_triton.py asks for the interpreter.
collect_ignore = ["src/adadelta/torch/triton_kernel.py"]
if not importlib.util.find_spec("torch"):
    collect_ignore.append("src/adadelta/torch")
# adadelta.optax needs the optional jax extra (JAX and optax).
if not (importlib.util.find_spec("jax") and importlib.util.find_spec("optax")):
    collect_ignore.append("src/adadelta/optax.py")
