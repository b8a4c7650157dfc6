"""Saving and loading state dicts (and any nested dict / list of arrays and numbers) safely.

The file is a ``.npz`` archive: one entry per array, plus a JSON description of the structure
(dicts with str or int keys, lists, tuples, arrays, NumPy scalars, numbers, strings, None).
It is read with ``allow_pickle=False``, so loading a file never runs code from it, and every
entry's CRC is checked. A write goes to a temporary file in the same directory, is flushed and
fsynced, and then renamed over the target: a crash at any point leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

FORMAT = "adadelta-checkpoint-1"
_SKELETON = "__structure__"
# What a corrupt file can raise while being read; RuntimeError covers zipfile's "encrypted"
# and "compression method not supported" (a flipped flag bit).
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    OSError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    RuntimeError,
)


class CheckpointError(ValueError):
    """A file is not a readable adadelta checkpoint (truncated, corrupt, or another format)."""


def save(path: str | os.PathLike[str], tree: Any) -> None:
    """Write ``tree`` (e.g. ``opt.state_dict()``) to ``path`` atomically.

    Nothing is written if ``tree`` holds something that cannot be stored (raises ``TypeError``).
    """
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    skeleton = {"format": FORMAT, "tree": _encode(tree, arrays)}
    arrays[_SKELETON] = np.array(json.dumps(skeleton))

    def write(f: IO[bytes]) -> None:
        np.savez(f, allow_pickle=False, **arrays)

    atomic_write(Path(path), write)


def atomic_write(target: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write`` on a temporary file beside ``target``, flush and fsync it, then rename it
    over ``target``: a crash at any point leaves the previous file or the new one, never a part
    of one. On an error the temporary file is removed and ``target`` is untouched."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, target.stat().st_mode & 0o777 if target.exists() else 0o644)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def load(path: str | os.PathLike[str]) -> Any:
    """Read a file written by :func:`save`; raises :class:`CheckpointError` naming the file and
    the problem if it is truncated, corrupt or not a checkpoint."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}  # reads and CRC-checks all
        skeleton = json.loads(str(arrays.pop(_SKELETON)))
        if not isinstance(skeleton, dict) or skeleton.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not an adadelta checkpoint (no {FORMAT!r} marker)")
        return _decode(skeleton["tree"], arrays)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise
    except _READ_ERRORS as error:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({error})") from error


def _encode(node: Any, arrays: dict[str, np.ndarray[Any, Any]]) -> Any:
    if isinstance(node, dict):
        for key in node:
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"cannot save dict key {key!r}: keys must be str or int")
        return {"dict": [[key, _encode(value, arrays)] for key, value in node.items()]}
    if isinstance(node, (list, tuple)):
        kind = "list" if isinstance(node, list) else "tuple"
        return {kind: [_encode(value, arrays) for value in node]}
    if isinstance(node, (np.ndarray, np.generic)):
        array = np.asarray(node)
        if array.dtype.hasobject:
            raise TypeError("cannot save arrays of Python objects")
        name = f"a{len(arrays)}"
        arrays[name] = array
        return {"array": name, "scalar": isinstance(node, np.generic)}
    if node is None or isinstance(node, (bool, int, float, str)):
        return {"value": node}
    raise TypeError(f"cannot save a value of type {type(node).__name__}")


def _decode(node: Any, arrays: dict[str, np.ndarray[Any, Any]]) -> Any:
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise ValueError(f"malformed structure entry {node!r}")
    if "dict" in node:
        return {key: _decode(value, arrays) for key, value in node["dict"]}
    if "list" in node:
        return [_decode(value, arrays) for value in node["list"]]
    if "tuple" in node:
        return tuple(_decode(value, arrays) for value in node["tuple"])
    if "array" in node:
        array = arrays[node["array"]]
        return array[()] if node.get("scalar") else array
    return node["value"]


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
