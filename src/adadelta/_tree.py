"""Flattening of nested parameter structures (one array, or lists / tuples / dicts of arrays).

The optimizers keep parameters in the structure the user gave them and walk it in one fixed order:
list and tuple items in order, dict items in insertion order. A gradient structure must match it
key for key and item for item, and each gradient its parameter's shape and dtype. Parameters and
gradients are plain ``numpy.ndarray``: subclasses are refused, since their arithmetic differs
(``np.matrix`` multiplies as matrices, a masked array skips its masked entries) and the kernels
would ignore it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


def leaves_with_paths(tree: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(path, leaf)`` for each leaf of ``tree``; a path reads like ``['W1']`` or ``[0]``."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from leaves_with_paths(value, f"{path}[{key!r}]")
    elif isinstance(tree, (list, tuple)):
        for index, value in enumerate(tree):
            yield from leaves_with_paths(value, f"{path}[{index}]")
    else:
        yield path, tree


def match_gradients(
    params: Any, grads: Any, names: tuple[str, str] = ("params", "gradients")
) -> tuple[list[Any], list[Any]]:
    """The leaves of ``params`` and those of ``grads`` in the same order, each gradient checked
    against its parameter: raises if the structures differ, if a leaf of ``params`` is not an
    array, or if a gradient is not a plain NumPy array of its parameter's shape and dtype. The
    errors name the place, e.g. ``gradients['b']: expected 2 items``, the two structures by
    ``names``."""
    param_leaves: list[Any] = []
    grad_leaves: list[Any] = []
    _match(params, grads, None, param_leaves, grad_leaves, names)
    return param_leaves, grad_leaves


# Where _match is: None at the root, else (the parent's location, the key or index). Its text
# (``_path``) is only needed for an error, so it is not formatted at every level of every step.
Location = tuple["Location", Any] | None


def _path(location: Location) -> str:
    keys = []
    while location is not None:
        location, key = location
        keys.append(f"[{key!r}]")
    return "".join(reversed(keys))


def _match(
    reference: Any,
    tree: Any,
    location: Location,
    references: list[Any],
    leaves: list[Any],
    names: tuple[str, str],
) -> None:
    if isinstance(reference, dict):
        if not isinstance(tree, dict):
            raise TypeError(
                f"{names[1]}{_path(location)}: expected a dict, got {type(tree).__name__}"
            )
        if tree.keys() != reference.keys():
            missing = [k for k in reference if k not in tree]
            extra = [k for k in tree if k not in reference]
            raise KeyError(
                f"{names[1]}{_path(location)}: keys differ from the parameters' "
                f"(missing {missing}, extra {extra})"
            )
        for key, value in reference.items():
            _match(value, tree[key], (location, key), references, leaves, names)
    elif isinstance(reference, (list, tuple)):
        if not isinstance(tree, (list, tuple)):
            raise TypeError(
                f"{names[1]}{_path(location)}: expected a list or tuple, got {type(tree).__name__}"
            )
        if len(tree) != len(reference):
            raise ValueError(
                f"{names[1]}{_path(location)}: expected {len(reference)} items "
                f"(one per parameter), got {len(tree)}"
            )
        for index in range(len(tree)):  # (cheaper than enumerate(zip()))
            _match(reference[index], tree[index], (location, index), references, leaves, names)
    elif (
        type(tree) is np.ndarray
        and type(reference) is np.ndarray
        and tree.shape == reference.shape
        and tree.dtype == reference.dtype
    ):
        references.append(reference)
        leaves.append(tree)
    elif type(reference) is not np.ndarray:
        raise TypeError(
            f"{names[0]}{_path(location)}: expected a NumPy float array, got {describe(reference)}"
        )
    else:
        raise _leaf_error(f"gradient for {names[0]}{_path(location)}", reference, tree)


def _leaf_error(where: str, param: np.ndarray, grad: Any) -> Exception:
    if type(grad) is not np.ndarray:
        return TypeError(f"{where}: expected a NumPy array, got {describe(grad)}")
    if grad.shape != param.shape:
        return ValueError(f"{where}: shape {grad.shape} differs from the parameter's {param.shape}")
    return TypeError(f"{where}: dtype {grad.dtype} differs from the parameter's {param.dtype}")


def describe(array: Any) -> str:
    """A short description of an array-like value for error messages."""
    if type(array) is np.ndarray:
        return f"array of shape {array.shape} and dtype {array.dtype}"
    if isinstance(array, np.ndarray):  # a subclass: say which, and how to get a plain array
        kind = f"{type(array).__module__}.{type(array).__qualname__}"
        return (
            f"{kind} of shape {array.shape} and dtype {array.dtype} (subclasses of numpy.ndarray "
            "are refused: their arithmetic differs; np.asarray(...) gives the plain array, of a "
            "masked array its data without the mask)"
        )
    return type(array).__name__
