"""MNIST for the paper's experiments, and a small embedded MNIST sample for offline demos.

:func:`load_mnist` reads the four standard IDX ``.gz`` files from :func:`mnist_dir` (the given
directory, else ``$ADADELTA_DATA``, else ``$XDG_CACHE_HOME/adadelta/mnist`` or
``~/.cache/adadelta/mnist``), downloading missing ones from :data:`MIRRORS`. Every file is checked
against its known SHA-256 (:data:`SHA256`); every IDX header, size and
shape is validated before anything is allocated for the data, and any problem raises
:class:`DatasetError` naming the file. Decoded arrays are cached in the per-user cache directory
as an :func:`adadelta.save` file (never unpickled), bound to the source files' checksums and to
a SHA-256 of the arrays themselves (for the standard files, a known one): a cache that is
damaged, rewritten or stale is decoded again from the verified files and rewritten. A given
data directory is only written to by downloads. A download stops at the file's known size
(:data:`SIZES`);
downloads and cache writes go to a temporary file in the target directory and are renamed into
place only when complete (and, for downloads, verified).

:func:`load_embedded_digits` needs no files and no network: a fixed subset of the real MNIST
digits (10,000 training and 2,000 test images) that ships inside the package.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import math
import os
import struct
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import IO, Any

import numpy as np
from tqdm import tqdm  # type: ignore[import-untyped]

from adadelta.checkpoint import CheckpointError, atomic_write, load, open_regular, save

__all__ = [
    "EMBEDDED_FILE",
    "EMBEDDED_SHA256",
    "ENV_VAR",
    "FILES",
    "MIRRORS",
    "SHA256",
    "SIZES",
    "Dataset",
    "DatasetError",
    "load_embedded_digits",
    "load_mnist",
    "mnist_dir",
    "read_idx",
]

ENV_VAR = "ADADELTA_DATA"

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# SHA-256 of the standard files (as served by the mirrors); tests may swap this table.
SHA256: Mapping[str, str] = {
    FILES["train_images"]: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    FILES["train_labels"]: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    FILES["test_images"]: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    FILES["test_labels"]: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

# The demo's digits (package data), built by scripts/build_demo_digits.py.
EMBEDDED_FILE = "mnist_subset.npz"
EMBEDDED_SHA256 = "2db4b6194996070299ec9f2054bb0f21d3f5d5f8b55fbbe6e4b95d6e2b481673"

# Sizes in bytes of the standard files; a download stops there. Tests may swap this table.
SIZES: Mapping[str, int] = {
    FILES["train_images"]: 9912422,
    FILES["train_labels"]: 28881,
    FILES["test_images"]: 1648877,
    FILES["test_labels"]: 4542,
}

# IDX type codes (third byte of the magic number) -> big-endian dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CACHE_FORMAT = "adadelta-mnist-2"
_CHUNK = 1 << 16
_MAX_DEFLATE_RATIO = 1032  # no deflate stream inflates more than this (RFC 1951's longest match)
_IMAGE_SIDE = 28


_DECODED_SHA256 = {  # combined source digest -> SHA-256 of the decoded arrays (_arrays_digest)
    hashlib.sha256("".join(SHA256[name] for name in FILES.values()).encode()).hexdigest(): (
        "e6f233692f7f7a7f426d63e1e9c9a2a32d87e726073fc55ae4df744fe4352f99"
    )
}


class DatasetError(ValueError):
    """A data file is missing, corrupt, truncated, or not what it claims to be."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Flattened images scaled to [0, 1] (float32, ``(n, 784)``) and labels 0..9 (int64)."""

    name: str
    x_train: np.ndarray[Any, np.dtype[np.float32]]
    y_train: np.ndarray[Any, np.dtype[np.int64]]
    x_test: np.ndarray[Any, np.dtype[np.float32]]
    y_test: np.ndarray[Any, np.dtype[np.int64]]

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != np.float32 or x.ndim != 2:
                raise ValueError(f"x_{split} must be a 2-d float32 array, got {x.dtype} {x.shape}")
            if y.dtype != np.int64 or y.shape != (x.shape[0],):
                raise ValueError(
                    f"y_{split} must be int64 of shape ({x.shape[0]},), got {y.dtype} {y.shape}"
                )

    def subset(self, n_train: int, n_test: int) -> Dataset:
        """The first ``n_train`` training and ``n_test`` test examples (copies)."""
        for label, n, available in (
            ("n_train", n_train, len(self.y_train)),
            ("n_test", n_test, len(self.y_test)),
        ):
            if not 0 <= n <= available:
                raise ValueError(f"{label}={n} is outside 0..{available}")
        return Dataset(
            self.name,
            self.x_train[:n_train].copy(),
            self.y_train[:n_train].copy(),
            self.x_test[:n_test].copy(),
            self.y_test[:n_test].copy(),
        )


def mnist_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the MNIST files are looked for: ``data_dir``, else ``$ADADELTA_DATA``, else
    ``$XDG_CACHE_HOME/adadelta/mnist`` (``~/.cache/adadelta/mnist``)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return _cache_root() / "mnist"


def read_idx(path: str | os.PathLike[str]) -> np.ndarray[Any, Any]:
    """Decode one IDX file (gzip-compressed if its name ends in ``.gz``) into a native array.

    Raises :class:`DatasetError` naming the file if the gzip stream is corrupt, the magic number
    is wrong, or the data is shorter or longer than the header says.
    """
    path = Path(path)
    with open_regular(path, DatasetError) as raw:
        size = os.fstat(raw.fileno()).st_size
        if not path.name.endswith(".gz"):
            data, shape, dtype = _read_idx_stream(path, raw, limit=size)
        else:
            try:
                data, shape, dtype = _read_idx_stream(
                    path, gzip.GzipFile(fileobj=raw), limit=_MAX_DEFLATE_RATIO * size
                )
            except (OSError, EOFError, zlib.error) as error:  # gzip's errors for bad streams
                raise DatasetError(f"{path}: corrupt or truncated gzip data ({error})") from error
    return np.frombuffer(data, dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _read_idx_stream(
    path: Path, f: IO[bytes] | io.BufferedIOBase, *, limit: int
) -> tuple[bytes, tuple[int, ...], np.dtype[Any]]:
    """Header, then data read in chunks: a header can make nothing larger than ``limit`` bytes
    (what the file can hold) be allocated."""
    magic = f.read(4)
    if len(magic) < 4:
        raise DatasetError(f"{path}: truncated IDX file (no complete header)")
    zeros, code, ndim = struct.unpack(">HBB", magic)
    if zeros != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise DatasetError(f"{path}: not an IDX file (bad magic number 0x{magic.hex()})")
    header = f.read(4 * ndim)
    if len(header) < 4 * ndim:
        raise DatasetError(f"{path}: truncated IDX file (incomplete dimensions)")
    shape: tuple[int, ...] = struct.unpack(f">{ndim}I", header)
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = dtype.itemsize * math.prod(shape)
    if 4 + 4 * ndim + expected > limit:
        raise DatasetError(
            f"{path}: truncated IDX file or corrupt header (header says shape {shape}, "
            f"{expected} data bytes, more than the file can hold)"
        )
    chunks, remaining = [], expected
    while remaining and (chunk := f.read(min(remaining, 1 << 22))):
        chunks.append(chunk)
        remaining -= len(chunk)
    data = b"".join(chunks)
    if len(data) < expected:
        raise DatasetError(
            f"{path}: truncated IDX file (header says shape {shape}, {expected} data bytes; "
            f"found {len(data)})"
        )
    if f.read(1):
        raise DatasetError(f"{path}: trailing bytes after the {expected} data bytes of {shape}")
    return data, shape, dtype


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    mirrors: Sequence[str] = MIRRORS,
    progress: bool = True,
) -> Dataset:
    """MNIST: 60,000 training and 10,000 test images, checksum-verified.

    Files missing from :func:`mnist_dir` are downloaded into it from ``mirrors`` (base URLs,
    tried in order) unless ``download`` is false. The decoded arrays are cached, so a second
    load skips the gzip decoding.
    """
    directory = mnist_dir(data_dir)
    if directory.exists() and not directory.is_dir():
        origin = f" (from ${ENV_VAR})" if data_dir is None and os.environ.get(ENV_VAR) else ""
        raise DatasetError(
            f"{directory}{origin} is not a directory: point it at the directory that holds (or "
            "should hold) the four MNIST .gz files"
        )
    paths = {key: directory / name for key, name in FILES.items()}
    missing = [path for path in paths.values() if not path.is_file()]
    if missing and not download:
        names = ", ".join(path.name for path in missing)
        raise DatasetError(
            f"MNIST files missing from {directory}: {names}. Put the four MNIST .gz files in a "
            f"directory and pass it (--data DIR / data_dir=...) or set ${ENV_VAR}, or allow "
            "download=True to fetch them"
        )
    new = [d for d in (directory, *directory.parents) if not d.exists()]  # deepest first
    try:
        for path in missing:
            _download(path, mirrors, progress=progress)
    except BaseException:
        for folder in new:  # made for the download: removed again, if still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    digests = {key: _verify_checksum(path) for key, path in paths.items()}
    cache = _cache_root() / f"mnist-{_combined_digest(digests)[:16]}.npz"
    arrays = _read_cache(cache, digests)
    if arrays is None:
        arrays = _decode_mnist(paths)
        _write_cache(cache, arrays, digests)
    return Dataset(
        "mnist",
        _scale(arrays["train_images"]),
        arrays["train_labels"].astype(np.int64),
        _scale(arrays["test_images"]),
        arrays["test_labels"].astype(np.int64),
    )


def _decode_mnist(paths: Mapping[str, Path]) -> dict[str, np.ndarray[Any, Any]]:
    """Decode and validate the four files; images flattened to ``(n, 784)`` uint8."""
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        _check_mnist_pair(paths[f"{split}_images"], paths[f"{split}_labels"], arrays, split)
    for split in ("train", "test"):
        images = arrays[f"{split}_images"]
        arrays[f"{split}_images"] = images.reshape(len(images), _IMAGE_SIDE**2)
    return arrays


def load_embedded_digits() -> Dataset:
    """The demo's digits, shipped inside the package: no files to fetch, no network.

    A fixed, class-balanced subset of the real MNIST digits (CC BY-SA 3.0; see
    ``adadelta/app/data/README.md``): 10,000 training images drawn from MNIST's training set and
    2,000 test images from its test set, 1,000 and 200 of each digit, in a seeded random order,
    built by ``scripts/build_demo_digits.py``. The file's SHA-256 is checked against
    :data:`EMBEDDED_SHA256` and it is read with ``allow_pickle=False``.
    """
    source = resources.files("adadelta.app") / "data" / EMBEDDED_FILE
    try:
        content = source.read_bytes()
    except OSError as error:
        raise DatasetError(
            f"the embedded digits {EMBEDDED_FILE} are unreadable ({error})"
        ) from error
    digest = hashlib.sha256(content).hexdigest()
    if digest != EMBEDDED_SHA256:
        raise DatasetError(
            f"{EMBEDDED_FILE}: SHA-256 checksum mismatch (expected {EMBEDDED_SHA256}, got "
            f"{digest}); the installed package is damaged: reinstall it"
        )
    with np.load(io.BytesIO(content), allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    return Dataset(
        "mnist-demo",
        _scale(arrays["x_train"]),
        arrays["y_train"].astype(np.int64),
        _scale(arrays["x_test"]),
        arrays["y_test"].astype(np.int64),
    )


def _cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "adadelta"


def _scale(images: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    scaled = images.astype(np.float32)
    scaled /= np.float32(255)
    return scaled


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path, DatasetError) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_checksum(path: Path) -> str:
    expected, actual = SHA256[path.name], _sha256(path)
    if actual != expected:
        raise DatasetError(
            f"{path}: SHA-256 checksum mismatch (expected {expected}, got {actual}); the file is "
            "corrupt or not the standard MNIST file (delete it to download it again)"
        )
    return actual


def _combined_digest(digests: Mapping[str, str]) -> str:
    return hashlib.sha256("".join(digests[key] for key in FILES).encode()).hexdigest()


def _check_mnist_pair(
    images_path: Path, labels_path: Path, arrays: Mapping[str, np.ndarray[Any, Any]], split: str
) -> None:
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    side = _IMAGE_SIDE
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (side, side):
        raise DatasetError(
            f"{images_path}: expected unsigned-byte images of {side}x{side} pixels, got "
            f"{images.dtype} with shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(
            f"{labels_path}: expected a 1-d unsigned-byte label array, got {labels.dtype} "
            f"with shape {labels.shape}"
        )
    if len(labels) != len(images):
        raise DatasetError(
            f"{labels_path}: {len(labels)} labels but {images_path.name} has {len(images)} images"
        )
    if len(labels) and labels.max() > 9:
        raise DatasetError(f"{labels_path}: label {labels.max()} is outside 0..9")


def _read_cache(file: Path, digests: Mapping[str, str]) -> dict[str, np.ndarray[Any, Any]] | None:
    """The cached arrays if ``file`` is an intact cache of exactly these sources, else None."""
    try:
        tree = load(file)
    except (OSError, CheckpointError):
        return None  # absent, unreadable, truncated, corrupt, or not our format
    if not isinstance(tree, dict) or set(tree) != {"format", "sources", "sha256", "arrays"}:
        return None
    arrays = tree["arrays"]
    if (
        tree["format"] != _CACHE_FORMAT
        or tree["sources"] != [digests[key] for key in FILES]
        or not isinstance(arrays, dict)
        or set(arrays) != set(FILES)
        or not all(isinstance(a, np.ndarray) for a in arrays.values())
    ):
        return None
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if (
            images.dtype != np.uint8
            or images.ndim != 2
            or images.shape[1:] != (_IMAGE_SIDE**2,)
            or labels.dtype != np.uint8
            or labels.shape != (len(images),)
        ):
            return None
    digest = _arrays_digest(arrays)
    known = _DECODED_SHA256.get(_combined_digest(digests), digest)
    if tree["sha256"] != digest or digest != known:
        return None  # damaged or rewritten
    return {key: arrays[key] for key in FILES}


def _arrays_digest(arrays: Mapping[str, np.ndarray[Any, Any]]) -> str:
    digest = hashlib.sha256()
    for key in FILES:
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key} {array.dtype.str} {array.shape}\n".encode())
        digest.update(array.data)
    return digest.hexdigest()


def _write_cache(
    file: Path, arrays: Mapping[str, np.ndarray[Any, Any]], digests: Mapping[str, str]
) -> None:
    """Write the decoded cache atomically; skipped (nothing written) where that is impossible."""
    tree = {
        "format": _CACHE_FORMAT,
        "sources": [digests[key] for key in FILES],
        "sha256": _arrays_digest(arrays),
        "arrays": dict(arrays),
    }
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        save(file, tree)
    except OSError:  # a read-only cache only costs speed
        pass


def _download(target: Path, mirrors: Sequence[str], *, progress: bool) -> None:
    """Fetch ``target.name`` from the first mirror that serves it with the right checksum."""
    if not mirrors:
        raise DatasetError(f"{target}: missing, and no download mirrors were given")
    target.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + target.name
        try:
            fetch = partial(
                _fetch, url, size=SIZES[target.name], sha256=SHA256[target.name], progress=progress
            )
            atomic_write(target, fetch)
            return
        except (OSError, http.client.HTTPException, ValueError) as error:
            failures.append(f"  {url}: {error}")
    raise DatasetError(
        f"{target}: could not download {target.name} from any mirror (or put the file there "
        "yourself):\n" + "\n".join(failures)
    )


def _fetch(url: str, out: IO[bytes], *, size: int, sha256: str, progress: bool) -> None:
    """Stream ``url`` into ``out``, reading at most one byte more than the known ``size``."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total != size:
            raise DatasetError(f"the server announces {total} bytes, the file has {size}")
        received = 0
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=url.rsplit("/", 1)[-1],
            disable=not progress,
        ) as bar:
            while chunk := response.read(min(_CHUNK, size + 1 - received)):
                if received + len(chunk) > size:
                    raise DatasetError(f"the server sent more than the file's {size} bytes")
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if received != size:
        raise DatasetError(f"connection closed after {received} of {size} bytes")
    if digest.hexdigest() != sha256:
        raise DatasetError(
            f"SHA-256 checksum mismatch (expected {sha256}, got {digest.hexdigest()})"
        )
