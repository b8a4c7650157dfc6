"""Saving and loading state dicts (and any nested dict / list of arrays and numbers) safely.

The file is an uncompressed ``.npz`` archive: one ``.npy`` entry per array, plus a JSON
description of the structure (dicts with str or int keys, lists, tuples, arrays, NumPy scalars,
numbers, strings, None). :func:`load` reads it with its own strict parser, never NumPy's
loader and never pickle: the zip directory and every ``.npy`` header are checked against the
file's size before anything is allocated (so no entry can claim more bytes than the file holds),
every entry is read to its end so that its CRC is checked, and its length must be exactly what
its header declares. Any flaw raises :class:`CheckpointError` naming the file.

A write goes to a temporary file in the same directory (created with the mode ``open()`` gives
under the umask, or the mode of the file it replaces), is flushed and fsynced, and then renamed
over the target: a crash at any point leaves the previous file intact. A temporary file left by
a killed writer carries its host and process id in its name; the next write to the same target
removes those of writers that are no longer running.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import socket
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

FORMAT = "adadelta-checkpoint-1"
_SKELETON = "__structure__"
_ENTRY_NAME = re.compile(r"[A-Za-z0-9_]{1,64}\.npy\Z")
# The header NumPy's format 1.0 / 2.0 writes for a plain array, and nothing else.
_DIM = r"(?:0|[1-9][0-9]{0,18})"
_NPY_HEADER = re.compile(
    r"\{'descr': '(?P<descr>[<>|][a-zA-Z][0-9]{0,9}(?:\[[a-zA-Z0-9]{1,8}\])?)', "
    r"'fortran_order': (?P<fortran>True|False), "
    rf"'shape': \((?P<shape>|{_DIM},|{_DIM}(?:, {_DIM})+)\), "
    r"\} *\n\Z"
)
_NPY_MAGIC = b"\x93NUMPY"
# What zipfile, json and the structure checks can raise on a malformed file (MemoryError is
# not here: every size is bounded by the file's size before it is allocated).
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
    EOFError,
    OSError,  # a seek to a negative offset read from a corrupt directory
    ValueError,  # UnicodeDecodeError and json.JSONDecodeError included
    KeyError,
    IndexError,
    TypeError,
    RuntimeError,  # NotImplementedError and RecursionError included
    OverflowError,
)
# The deepest nesting of dicts, lists and tuples a checkpoint may hold (a state dict has 4):
# deeper trees (or cyclic ones) are refused by save and load before Python's recursion limit.
MAX_DEPTH = 100
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


class CheckpointError(ValueError):
    """A file is not a readable adadelta checkpoint (truncated, corrupt, or another format)."""


def save(path: str | os.PathLike[str], tree: Any) -> None:
    """Write ``tree`` (e.g. ``opt.state_dict()``) to ``path`` atomically.

    Nothing is written if ``tree`` holds something that cannot be stored (raises ``TypeError``),
    including dicts, lists and tuples nested more than :data:`MAX_DEPTH` deep (or in a cycle);
    a ``path`` that is a directory raises ``IsADirectoryError`` naming it.
    """
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    skeleton = {"format": FORMAT, "tree": _encode(tree, arrays, 0)}
    arrays[_SKELETON] = np.array(json.dumps(skeleton))

    def write(f: IO[bytes]) -> None:
        np.savez(f, allow_pickle=False, **arrays)

    atomic_write(Path(path), write)


def atomic_write(target: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write`` on a temporary file beside ``target``, flush and fsync it, then rename it
    over ``target``: a crash at any point leaves the previous file or the new one, never a part
    of one. On an error the temporary file is removed and ``target`` is untouched.

    The new file gets the mode of the file it replaces, else the one ``open()`` gives under the
    umask. Temporary files of earlier writers of ``target`` on this host that are no longer
    running (killed mid-write) are removed first. A ``target`` that is a directory raises
    ``IsADirectoryError`` naming it, before anything is written.
    """
    if target.is_dir():  # os.replace would fail after writing, naming the temporary file
        raise IsADirectoryError(errno.EISDIR, "cannot replace a directory", str(target))
    _remove_stale_temporaries(target)
    tmp = target.parent / f".{target.name}.{_HOST}-{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as error:  # name the target, not the temporary file
        raise type(error)(error.errno, error.strerror, str(target)) from None
    try:
        if target.exists():
            os.fchmod(fd, target.stat().st_mode & 0o777)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _remove_stale_temporaries(target: Path) -> None:
    prefix, suffix = f".{target.name}.{_HOST}-", ".tmp"
    try:
        names = os.listdir(target.parent)
    except OSError:
        return  # the write itself reports a missing or unreadable directory
    for name in names:
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        pid = name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            try:
                (target.parent / name).unlink()
            except OSError:
                pass


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def load(path: str | os.PathLike[str]) -> Any:
    """Read a file written by :func:`save`; raises :class:`CheckpointError` naming the file and
    the problem if it is truncated, corrupt or not a checkpoint (``FileNotFoundError`` if there
    is no file)."""
    with open_regular(path) as f:
        try:
            arrays = _read_entries(f, os.fstat(f.fileno()).st_size)
            skeleton_array = arrays.pop(_SKELETON, None)
            if skeleton_array is None:
                raise CheckpointError(f"not an adadelta checkpoint (no {_SKELETON!r} entry)")
            if skeleton_array.dtype.kind != "U" or skeleton_array.shape != ():
                raise CheckpointError(f"{_SKELETON!r} is not a string")
            try:
                skeleton = json.loads(str(skeleton_array))
            except RecursionError:
                raise CheckpointError(
                    f"structure nested too deeply to parse (more than {MAX_DEPTH} levels)"
                ) from None
            if not isinstance(skeleton, dict) or skeleton.get("format") != FORMAT:
                raise CheckpointError(f"not an adadelta checkpoint (no {FORMAT!r} marker)")
            unused = set(arrays)
            tree = _decode(skeleton["tree"], arrays, unused, 0)
            if unused:
                raise CheckpointError(f"entries {sorted(unused)} are not in its structure")
            return tree
        except CheckpointError as error:
            raise CheckpointError(f"{path}: {error}") from None
        except _READ_ERRORS as error:
            raise CheckpointError(
                f"{path}: corrupt or truncated checkpoint ({type(error).__name__}: {error})"
            ) from error


def open_regular(
    path: str | os.PathLike[str], error: type[Exception] = CheckpointError
) -> IO[bytes]:
    """``path`` opened for reading if it is a regular file (symlinks followed), else ``error``
    naming it: a FIFO, a device or a directory would block, never end, or fail later. Opened
    non-blocking, so that a FIFO without a writer cannot hang the check itself."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error(f"{path}: not a regular file (a directory, FIFO, socket or device)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_entries(f: IO[bytes], file_size: int) -> dict[str, np.ndarray[Any, Any]]:
    """Every entry of the archive, each checked in full (CRC, length, header) before use."""
    with zipfile.ZipFile(f) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        if len(set(names)) != len(names):
            raise CheckpointError("corrupt or truncated checkpoint (repeated entry names)")
        if sum(info.compress_size for info in infos) > file_size:
            raise CheckpointError("corrupt or truncated checkpoint (entries overlap)")
        arrays = {}
        for info in infos:
            if not _ENTRY_NAME.match(info.filename):
                raise CheckpointError(f"corrupt checkpoint (unexpected entry {info.filename!r})")
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                raise CheckpointError(
                    f"corrupt checkpoint (entry {info.filename!r} is compressed or encrypted; "
                    "checkpoints are stored plainly)"
                )
            if info.file_size != info.compress_size or not (
                0 <= info.header_offset <= info.header_offset + info.compress_size <= file_size
            ):
                raise CheckpointError(
                    f"corrupt or truncated checkpoint (entry {info.filename!r} declares "
                    f"{info.file_size} bytes, more than the file holds)"
                )
            with archive.open(info) as entry:
                data = entry.read(info.file_size)  # reading to the end checks the CRC
                if len(data) != info.file_size or entry.read(1):
                    raise CheckpointError(
                        f"corrupt or truncated checkpoint (entry {info.filename!r} is not "
                        f"{info.file_size} bytes long)"
                    )
            arrays[info.filename.removesuffix(".npy")] = _parse_npy(info.filename, data)
    return arrays


def _parse_npy(name: str, data: bytes) -> np.ndarray[Any, Any]:
    """A plain array from one ``.npy`` entry, checked strictly; never unpickles."""
    if data[:6] != _NPY_MAGIC or len(data) < 10:
        raise CheckpointError(f"corrupt checkpoint (entry {name!r} is not an .npy array)")
    version = (data[6], data[7])
    if version == (1, 0):
        (header_length,), start = struct.unpack("<H", data[8:10]), 10
    elif version in ((2, 0), (3, 0)) and len(data) >= 12:
        (header_length,), start = struct.unpack("<I", data[8:12]), 12
    else:
        raise CheckpointError(f"corrupt checkpoint (entry {name!r} has .npy version {version})")
    end = start + header_length
    header = _NPY_HEADER.match(data[start:end].decode("latin1")) if end <= len(data) else None
    if header is None:
        raise CheckpointError(f"corrupt checkpoint (entry {name!r} has a malformed .npy header)")
    dtype = np.dtype(header["descr"])
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise CheckpointError(
            f"corrupt checkpoint (entry {name!r} holds {dtype}; checkpoints hold plain arrays "
            "and Python objects are never unpickled)"
        )
    if dtype.itemsize == 0 or np.lib.format.dtype_to_descr(dtype) != header["descr"]:
        raise CheckpointError(f"corrupt checkpoint (entry {name!r} has dtype {header['descr']})")
    shape = tuple(int(n) for n in header["shape"].replace(" ", "").split(",") if n)
    count = 1
    for n in shape:
        count *= n
    if end + count * dtype.itemsize != len(data):
        raise CheckpointError(
            f"corrupt checkpoint (entry {name!r}: its header declares shape {shape} of "
            f"{dtype}, {count * dtype.itemsize} bytes, but it holds {len(data) - end})"
        )
    flat: np.ndarray[Any, Any] = (
        np.frombuffer(data, dtype, count, end) if count else np.empty(0, dtype)
    )
    if header["fortran"] == "True":
        array: np.ndarray[Any, Any] = flat.reshape(shape[::-1]).T.copy(order="F")
    else:
        array = flat.reshape(shape).copy()
    return array


def _encode(node: Any, arrays: dict[str, np.ndarray[Any, Any]], depth: int) -> Any:
    if isinstance(node, (dict, list, tuple)) and depth == MAX_DEPTH:
        raise TypeError(
            f"cannot save dicts, lists or tuples nested more than {MAX_DEPTH} deep (or in a cycle)"
        )
    if isinstance(node, dict):
        for key in node:
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"cannot save dict key {key!r}: keys must be str or int")
        return {"dict": [[key, _encode(value, arrays, depth + 1)] for key, value in node.items()]}
    if isinstance(node, (list, tuple)):
        kind = "list" if isinstance(node, list) else "tuple"
        return {kind: [_encode(value, arrays, depth + 1) for value in node]}
    if isinstance(node, (np.ndarray, np.generic)):
        array = np.asarray(node)
        if array.dtype.hasobject:
            raise TypeError("cannot save arrays of Python objects")
        if array.dtype.fields is not None or array.dtype.subdtype is not None:
            raise TypeError(f"cannot save arrays of structured dtype {array.dtype}")
        name = f"a{len(arrays)}"
        arrays[name] = array
        return {"array": name, "scalar": isinstance(node, np.generic)}
    if node is None or isinstance(node, (bool, int, float, str)):
        return {"value": node}
    raise TypeError(f"cannot save a value of type {type(node).__name__}")


def _decode(
    node: Any, arrays: dict[str, np.ndarray[Any, Any]], unused: set[str], depth: int
) -> Any:
    """The tree described by ``node``; each array entry is used once (``unused`` shrinks)."""
    if isinstance(node, dict) and len(node) == 1:
        ((kind, value),) = node.items()
        if kind in ("dict", "list", "tuple") and depth == MAX_DEPTH:
            raise CheckpointError(f"structure nested more than {MAX_DEPTH} deep")
        if kind == "dict" and isinstance(value, list):
            out = {}
            for pair in value:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise CheckpointError(f"malformed dict entry {pair!r}")
                key = pair[0]
                if isinstance(key, bool) or not isinstance(key, (str, int)) or key in out:
                    raise CheckpointError(f"malformed dict key {key!r}")
                out[key] = _decode(pair[1], arrays, unused, depth + 1)
            return out
        if kind in ("list", "tuple") and isinstance(value, list):
            items = [_decode(item, arrays, unused, depth + 1) for item in value]
            return items if kind == "list" else tuple(items)
        if kind == "value" and (value is None or isinstance(value, (bool, int, float, str))):
            return value
    if isinstance(node, dict) and set(node) == {"array", "scalar"}:
        name, scalar = node["array"], node["scalar"]
        if name not in unused or not isinstance(scalar, bool):
            raise CheckpointError(f"malformed or repeated array reference {node!r}")
        unused.remove(name)
        array = arrays[name]
        if scalar:
            if array.shape != ():
                raise CheckpointError(f"scalar {name!r} has shape {array.shape}")
            return array[()]
        return array
    raise CheckpointError(f"malformed structure entry {str(node)[:200]}")


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
