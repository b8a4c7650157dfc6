"""Files under attack: checkpoints, IDX files, the MNIST cache and downloads, and the runs of
``reproduce``, corrupted bit by bit, truncated, inflated, killed mid-write and written by two
processes at once. Each refusal must be the documented error (``CheckpointError``,
``DatasetError``, ``RunMismatchError``, ``OutputLockedError``) naming the file, raised before
any large allocation, with every file byte for byte as before."""

from __future__ import annotations

import gzip
import http.server
import io
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adadelta
from adadelta import CheckpointError
from adadelta.app import datasets, experiments
from adadelta.app.datasets import DatasetError, load_mnist, read_idx
from adadelta.app.trainer import METRICS, RunMismatchError, read_metrics
from optimizer_matrix import assert_identical
from test_datasets import (
    SHARED_MNIST,
    TEST_LABELS,
    TRAIN_LABELS,
    Server,
    SmallMnist,
    idx_bytes,
    isolated_environment,  # noqa: F401 (the fixture, autouse here too)
    needs_real_mnist,
    write_file,
)
from test_experiments import tiny_data

SRC = Path(__file__).resolve().parents[1] / "src"
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
needs_sigkill = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")


@pytest.fixture(autouse=True)
def cache_dir(isolated_environment: Path) -> Path:  # noqa: F811 (the fixture imported above)
    """Every test kept out of the real ~/.cache, away from proxies and $ADADELTA_DATA (the
    data tests' own fixture); the cache directory it points to."""
    return isolated_environment


@pytest.fixture
def mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SmallMnist:
    """Four tiny MNIST-format files, with the checksum and size tables patched to match."""
    monkeypatch.setattr(datasets, "SHA256", dict(datasets.SHA256))
    monkeypatch.setattr(datasets, "SIZES", dict(datasets.SIZES))
    return SmallMnist(tmp_path / "data", monkeypatch)


@pytest.fixture
def mirror() -> Iterator[Server]:
    """An HTTP server on 127.0.0.1 only."""
    server = Server()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
    server.thread.join()


def _python(code: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{Path(__file__).parent}"}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, text=True, **kwargs)


def _flip(data: bytes, offset: int, bit: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ (1 << bit)]) + data[offset + 1 :]


# === checkpoints ================================================================================


def _small_checkpoint() -> tuple[Any, bytes]:
    tree = {"a": np.arange(6.0).reshape(2, 3), "b": [1, None]}
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "mnist.npz"
        adadelta.save(path, tree)
        return tree, path.read_bytes()


SMALL_TREE, SMALL_FILE = _small_checkpoint()


def _load_refused_or_identical(path: Path, content: bytes, tree: Any) -> bool:
    """Load ``content``: either exactly ``tree`` or CheckpointError naming the file, and the
    file unchanged either way. True if refused."""
    path.write_bytes(content)
    try:
        loaded = adadelta.load(path)
    except CheckpointError as error:
        assert str(path) in str(error)
        assert "allow_pickle" not in str(error)
        refused = True
    else:
        assert_identical(loaded, tree)
        refused = False
    assert path.read_bytes() == content
    return refused


@FUZZ
@given(offset=st.integers(0, len(SMALL_FILE) - 1), bit=st.integers(0, 7))
def test_fuzz_load_bit_flips(tmp_path: Path, offset: int, bit: int) -> None:
    _load_refused_or_identical(tmp_path / "flipped.npz", _flip(SMALL_FILE, offset, bit), SMALL_TREE)


def test_fuzz_load_every_truncation(tmp_path: Path) -> None:
    for length in range(len(SMALL_FILE)):
        assert _load_refused_or_identical(tmp_path / "cut.npz", SMALL_FILE[:length], SMALL_TREE)


def test_a_flipped_bit_in_a_shape_is_refused_not_read_short(tmp_path: Path) -> None:
    """The finding: a bit flip turning shape (1000,) into (0000,) made load return an empty
    array, because NumPy read only the header and the entry's CRC was never checked."""
    path = tmp_path / "big.npz"
    adadelta.save(path, {"w": np.arange(1000.0)})
    data = path.read_bytes()
    at = data.index(b"'shape': (1000,)") + len(b"'shape': (")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(_flip(data, at, 0))  # "1" -> "0"
    with pytest.raises(CheckpointError, match=r"bad\.npz"):
        adadelta.load(bad)


def _checkpoint_with_entry(path: Path, npy: bytes, *, compress: bool = False) -> Path:
    """A checkpoint whose one array entry is ``npy`` (with a valid CRC), e.g. a crafted header."""
    skeleton = json.dumps(
        {"format": "adadelta-checkpoint-1", "tree": {"array": "a0", "scalar": False}}
    )
    buffer = io.BytesIO()
    np.save(buffer, np.array(skeleton), allow_pickle=False)
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("a0.npy", npy)
        archive.writestr("__structure__.npy", buffer.getvalue())
    return path


def _npy(header: str, data: bytes = b"") -> bytes:
    text = header.encode("latin1")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


def test_a_crafted_checkpoint_entry_is_read_strictly(tmp_path: Path) -> None:
    good = _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", bytes(24))
    assert adadelta.load(_checkpoint_with_entry(tmp_path / "good.npz", good)).shape == (3,)


@pytest.mark.parametrize(
    "npy",
    [
        # header flips that made NumPy's parser raise TokenError / SyntaxError
        _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), ", bytes(24)),
        _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }'", bytes(24)),
        _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,)), }", bytes(24)),
        _npy("{'descr': '<f8', 'fortran_order': Fal\x00e, 'shape': (3,), }", bytes(24)),
        _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), 'x': [[[[[[[[", bytes(24)),
        # a header declaring 10**13 elements (80 TB): MemoryError in NumPy
        _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (10000000000000,), }", bytes(24)),
        _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"),
        # more or less data than declared
        _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", bytes(25)),
        _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", bytes(23)),
        _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (0,), }", bytes(24)),
        # dtypes a checkpoint never holds
        _npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", bytes(8)),
        _npy("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }", bytes(8)),
        _npy("{'descr': '<f8', 'fortran_order': 1, 'shape': (3,), }", bytes(24)),
        _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (-3,), }", bytes(24)),
        b"\x93NUMPY\x09\x00" + bytes(30),
        b"not an npy entry",
    ],
)
def test_a_malformed_npy_header_is_a_checkpoint_error(tmp_path: Path, npy: bytes) -> None:
    path = _checkpoint_with_entry(tmp_path / "crafted.npz", npy)
    content = path.read_bytes()
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"crafted\.npz") as error:
            adadelta.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # nothing large allocated
    assert "allow_pickle" not in str(error.value)
    assert path.read_bytes() == content


def test_a_zip_bomb_is_refused_before_inflating(tmp_path: Path) -> None:
    """64 MB of zeros deflate to 64 kB; a checkpoint is never inflated (save stores entries
    plainly), so the entry is refused before a byte of it is decompressed."""
    n = 8 << 20
    header = _npy(f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({n},), }}")
    path = tmp_path / "bomb.npz"
    _checkpoint_with_entry(path, b"", compress=True)  # the skeleton, then the bomb replaces a0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("a0.npy", "w", force_zip64=True) as entry:
            entry.write(header)
            zeros = bytes(1 << 20)
            for _ in range(64):
                entry.write(zeros)
        skeleton = json.dumps(
            {"format": "adadelta-checkpoint-1", "tree": {"array": "a0", "scalar": False}}
        )
        buffer = io.BytesIO()
        np.save(buffer, np.array(skeleton), allow_pickle=False)
        archive.writestr("__structure__.npy", buffer.getvalue())
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"bomb\.npz"):
            adadelta.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_loading_garbage_gives_no_pickle_advice(tmp_path: Path) -> None:
    for content in (b"\x80\x04K\x01.", b"\x93NUMPY\x01\x00", b"PK\x03\x04" + bytes(40)):
        path = tmp_path / "garbage.npz"
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match=r"garbage\.npz") as error:
            adadelta.load(path)
        assert "allow_pickle" not in str(error.value)


def test_save_into_a_missing_folder_names_the_target(tmp_path: Path) -> None:
    target = tmp_path / "no-such-folder" / "ckpt.npz"
    with pytest.raises(FileNotFoundError) as error:
        adadelta.save(target, {"w": np.ones(2)})
    assert str(target) in str(error.value)
    assert ".tmp" not in str(error.value)


def test_save_onto_a_directory_names_the_target_and_leaves_nothing(tmp_path: Path) -> None:
    # was: IsADirectoryError naming the temporary file, raised after writing it
    target = tmp_path / "ckpt.npz"
    (target / "inside").mkdir(parents=True)
    with pytest.raises(IsADirectoryError) as error:
        adadelta.save(target, {"w": np.ones(2)})
    assert error.value.filename == str(target)
    assert ".tmp" not in str(error.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ckpt.npz", "inside"]


def _nested(depth: int) -> Any:
    tree: Any = np.ones(2)
    for i in range(depth):
        tree = [tree] if i % 3 == 0 else ({"k": tree} if i % 3 == 1 else (tree,))
    return tree


def test_a_tree_nested_too_deeply_is_refused_by_save_before_writing(tmp_path: Path) -> None:
    # was: RecursionError from deep inside the encoder (a cyclic list did the same)
    target = tmp_path / "ckpt.npz"
    adadelta.save(target, _nested(adadelta.checkpoint.MAX_DEPTH))  # the deepest allowed
    assert_identical(adadelta.load(target), _nested(adadelta.checkpoint.MAX_DEPTH))
    before = target.read_bytes()
    cyclic: list[Any] = [np.ones(2)]
    cyclic.append(cyclic)
    for tree in (_nested(adadelta.checkpoint.MAX_DEPTH + 1), _nested(5000), cyclic):
        with pytest.raises(TypeError, match="nested more than 100 deep"):
            adadelta.save(target, tree)
        assert target.read_bytes() == before
        assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


@pytest.mark.parametrize("depth", [101, 400, 100_000])
def test_a_checkpoint_nested_too_deeply_is_a_checkpoint_error(tmp_path: Path, depth: int) -> None:
    # was: RecursionError (JSON parsed, then decoded, one Python frame per level)
    path = tmp_path / "deep.npz"
    tree = '{"list": [' * depth + '{"value": 1}' + "]}" * depth
    skeleton = f'{{"format": "{adadelta.checkpoint.FORMAT}", "tree": {tree}}}'
    np.savez(path, __structure__=np.array(skeleton))
    with pytest.raises(CheckpointError, match="nested") as error:
        adadelta.load(path)
    assert str(path) in str(error.value)
    assert not isinstance(error.value.__cause__, RecursionError)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o027, 0o077])
def test_new_files_get_the_mode_open_gives_under_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        adadelta.save(tmp_path / "ckpt.npz", 1)
        (tmp_path / "plain").write_bytes(b"")
    finally:
        os.umask(old)
    assert (tmp_path / "ckpt.npz").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "plain").stat().st_mode & 0o777 == 0o666 & ~umask


_SLOW_SAVER = """
import sys, time
import numpy as np
import adadelta

real_savez = np.savez
def savez_slowly(file, *args, **kwargs):
    file.write(b"part of a checkpoint")
    file.flush()
    print("writing", flush=True)
    time.sleep(60)
np.savez = savez_slowly
adadelta.save(sys.argv[1], {"version": 2})
"""


@needs_sigkill
def test_a_killed_save_leaves_no_temporary_file_after_the_next_save(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.npz"
    adadelta.save(path, {"version": 1})
    previous = path.read_bytes()
    writer = _python(_SLOW_SAVER, str(path), stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "writing"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert path.read_bytes() == previous
    strays = [p.name for p in tmp_path.iterdir() if p.name != "ckpt.npz"]
    assert len(strays) == 1  # the killed writer's temporary file
    (tmp_path / "other.npz").write_bytes(b"")  # files of other targets are not touched
    adadelta.save(path, {"version": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz", "other.npz"]
    assert adadelta.load(path) == {"version": 3}


_WRITER = """
import sys
import numpy as np
import adadelta

path, tag = sys.argv[1], int(sys.argv[2])
n = 0
while True:
    n += 1
    adadelta.save(path, {"tag": tag, "n": n, "data": np.full(50_000, tag * 1e6 + n)})
    if n == 1:
        print("saved", flush=True)
"""


@needs_sigkill
def test_two_concurrent_writers_never_leave_a_torn_file(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.npz"
    writers = [_python(_WRITER, str(path), str(tag), stdout=subprocess.PIPE) for tag in (1, 2)]
    try:
        for writer in writers:
            assert writer.stdout is not None and writer.stdout.readline().strip() == "saved"
        tags = set()
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            tree = adadelta.load(path)  # always one complete file of one writer
            np.testing.assert_array_equal(
                tree["data"], np.full(50_000, tree["tag"] * 1e6 + tree["n"])
            )
            tags.add(tree["tag"])
    finally:
        for writer in writers:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
    assert tags <= {1, 2}
    adadelta.save(path, {"tag": 0})
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]


# === IDX files and the MNIST cache ==============================================================

IDX_ARRAY = (np.arange(2 * 3 * 4) % 256).astype(np.uint8).reshape(2, 3, 4)
IDX_RAW = idx_bytes(IDX_ARRAY)
IDX_GZ = gzip.compress(IDX_RAW, mtime=0)


def _read_idx_refused_or_identical(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    try:
        array = read_idx(path)
    except DatasetError as error:
        assert str(path) in str(error)
    else:
        # a flip in the gzip header's unchecked fields (mtime, flags, OS) changes nothing
        np.testing.assert_array_equal(array, IDX_ARRAY)
    assert path.read_bytes() == content


@FUZZ
@given(compressed=st.booleans(), offset=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_fuzz_read_idx_bit_flips(tmp_path: Path, compressed: bool, offset: int, bit: int) -> None:
    content = IDX_GZ if compressed else IDX_RAW
    name = "flip-idx3-ubyte" + (".gz" if compressed else "")
    at = offset % len(content)
    if not compressed and at >= 16:
        return  # a flipped pixel of a raw file is a valid file with another pixel
    _read_idx_refused_or_identical(tmp_path / name, _flip(content, at, bit))


def test_fuzz_read_idx_every_truncation(tmp_path: Path) -> None:
    for content, name in ((IDX_RAW, "cut-idx3-ubyte"), (IDX_GZ, "cut-idx3-ubyte.gz")):
        for length in range(len(content)):
            path = tmp_path / name
            path.write_bytes(content[:length])
            with pytest.raises(DatasetError, match=name):
                read_idx(path)
            assert path.read_bytes() == content[:length]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "shape", [(2**32 - 1,) * 3, (2**31, 2**31), (10**9, 28, 28), (2**32 - 1,) * 255]
)
def test_read_idx_on_a_huge_header_is_a_dataset_error(
    tmp_path: Path, suffix: str, shape: tuple[int, ...]
) -> None:
    """The finding: OverflowError (or MemoryError) from a header declaring more data than any
    file holds; now a DatasetError before anything is allocated for it."""
    path = write_file(
        tmp_path / f"huge-idx3-ubyte{suffix}",
        struct.pack(f">HBB{len(shape)}I", 0, 0x08, len(shape), *shape) + bytes(100),
    )
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="huge-idx3-ubyte"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def _central_directory_entries(data: bytes) -> list[int]:
    offsets, at = [], data.find(b"PK\x01\x02")
    while at >= 0:
        offsets.append(at)
        at = data.find(b"PK\x01\x02", at + 1)
    return offsets


def _damage_flag_encrypted(data: bytes) -> bytes:
    at = _central_directory_entries(data)[0] + 8  # general purpose flags: bit 0 = encrypted
    return _flip(data, at, 0)


def _damage_compression_method(data: bytes) -> bytes:
    at = _central_directory_entries(data)[-1] + 10  # compression method
    return data[:at] + struct.pack("<H", 99) + data[at + 2 :]


def _damage_sizes(data: bytes) -> bytes:
    at = _central_directory_entries(data)[-1] + 24  # uncompressed size
    return data[:at] + struct.pack("<I", 0xFFFFFFF0) + data[at + 4 :]


def _damage_flip_late(data: bytes) -> bytes:
    return _flip(data, len(data) - 300, 3)


@pytest.mark.parametrize(
    "damage",
    [_damage_flag_encrypted, _damage_compression_method, _damage_sizes, _damage_flip_late],
)
def test_a_damaged_cache_is_rebuilt(mnist: SmallMnist, cache_dir: Path, damage: Any) -> None:
    """The finding: a damaged cache crashed every later load_mnist (RuntimeError for an
    'encrypted' entry, NotImplementedError for an unknown compression method, TypeError...)."""
    first = load_mnist(mnist.directory, download=False, progress=False)
    (cache,) = cache_dir.glob("mnist-*.npz")
    cache.write_bytes(damage(cache.read_bytes()))
    again = load_mnist(mnist.directory, download=False, progress=False)
    np.testing.assert_array_equal(again.x_train, first.x_train)
    np.testing.assert_array_equal(again.y_test, first.y_test)
    second = load_mnist(mnist.directory, download=False, progress=False)  # the rebuilt cache
    np.testing.assert_array_equal(second.y_test, first.y_test)


@settings(FUZZ, max_examples=50)
@given(offset=st.integers(0, 10**6), bit=st.integers(0, 7))
def test_fuzz_cache_bit_flips_are_repaired(
    mnist: SmallMnist, cache_dir: Path, offset: int, bit: int
) -> None:
    truth = mnist.arrays[TEST_LABELS].astype(np.int64)
    caches = list(cache_dir.glob("mnist-*.npz"))
    if not caches:
        load_mnist(mnist.directory, download=False, progress=False)
        caches = list(cache_dir.glob("mnist-*.npz"))
    (cache,) = caches
    data = cache.read_bytes()
    cache.write_bytes(_flip(data, offset % len(data), bit))
    np.testing.assert_array_equal(load_mnist(mnist.directory, download=False).y_test, truth)


def _rewrite_cache_labels(cache: Path, labels: np.ndarray[Any, Any], *, fix_digest: bool) -> None:
    """Rewrite a cache as a well-formed file of the same sources with other test labels."""
    try:
        tree = adadelta.load(cache)
    except CheckpointError:  # the format before adadelta.save: a plain .npz
        with np.load(cache, allow_pickle=False) as archive:
            entries = {name: archive[name] for name in archive.files}
        entries["test_labels"] = labels
        np.savez(cache, **entries)
        return
    tree["arrays"]["test_labels"] = labels
    if fix_digest:
        tree["sha256"] = datasets._arrays_digest(tree["arrays"])
    adadelta.save(cache, tree)


def test_a_rewritten_well_formed_cache_is_not_trusted(mnist: SmallMnist, cache_dir: Path) -> None:
    load_mnist(mnist.directory, download=False)
    (cache,) = cache_dir.glob("mnist-*.npz")
    _rewrite_cache_labels(cache, np.zeros(7, np.uint8), fix_digest=False)
    data = load_mnist(mnist.directory, download=False)
    np.testing.assert_array_equal(data.y_test, mnist.arrays[TEST_LABELS])


@pytest.mark.slow
@needs_real_mnist
def test_a_rewritten_cache_of_the_real_files_is_not_trusted_even_with_its_digest(
    tmp_path: Path, cache_dir: Path
) -> None:
    """For the standard files the decoded arrays' SHA-256 is known: even a cache rewritten
    with a matching self-digest is decoded again."""
    data_dir = tmp_path / "real"
    data_dir.mkdir()
    for name in datasets.FILES.values():
        (data_dir / name).symlink_to(SHARED_MNIST / name)
    truth = load_mnist(data_dir, download=False, progress=False).y_test
    (cache,) = cache_dir.glob("mnist-*.npz")
    _rewrite_cache_labels(cache, np.zeros(10_000, np.uint8), fix_digest=True)
    np.testing.assert_array_equal(
        load_mnist(data_dir, download=False, progress=False).y_test, truth
    )


@settings(FUZZ, max_examples=40)
@given(
    name=st.sampled_from([TRAIN_LABELS, TEST_LABELS]),
    offset=st.integers(0, 10**4),
    bit=st.integers(0, 7),
)
def test_fuzz_load_mnist_source_bit_flips(
    mnist: SmallMnist, name: str, offset: int, bit: int
) -> None:
    path = mnist.directory / name
    original = path.read_bytes()
    content = _flip(original, offset % len(original), bit)
    path.write_bytes(content)
    try:
        with pytest.raises(DatasetError, match=name):
            load_mnist(mnist.directory, download=False)
        assert path.read_bytes() == content
    finally:
        path.write_bytes(original)


def test_adadelta_data_pointing_at_a_file_is_a_dataset_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "mnist.tar"
    a_file.write_bytes(b"not a directory")
    monkeypatch.setenv(datasets.ENV_VAR, str(a_file))
    with pytest.raises(DatasetError, match="ADADELTA_DATA") as error:
        load_mnist(progress=False)
    assert str(a_file) in str(error.value)
    with pytest.raises(DatasetError, match="not a directory"):
        load_mnist(a_file, download=False)
    assert a_file.read_bytes() == b"not a directory"


def test_a_mirror_serving_endless_bytes_is_cut_at_the_known_size(
    mnist: SmallMnist, mirror: Server, tmp_path: Path
) -> None:
    served = [0]

    def endless(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)  # no Content-Length: bytes until the client hangs up
        handler.end_headers()
        chunk = bytes(1 << 16)
        try:
            while served[0] < 64 << 20:
                handler.wfile.write(chunk)
                served[0] += len(chunk)
        except OSError:
            pass
        handler.close_connection = True

    mirror.serve_directory("/m/", mnist.directory)
    mirror.routes["/m/" + TRAIN_LABELS] = endless
    with pytest.raises(DatasetError) as error:
        load_mnist(tmp_path / "dl", mirrors=[mirror.url + "/m/"], progress=False)
    assert served[0] < 16 << 20  # cut off (the kernel's socket buffers hold the rest)
    assert TRAIN_LABELS in str(error.value) and "more than the file's" in str(error.value)
    assert not (tmp_path / "dl" / TRAIN_LABELS).exists()
    assert [p.name for p in (tmp_path / "dl").iterdir() if p.name.endswith(".tmp")] == []


def test_a_mirror_announcing_too_many_bytes_is_refused_before_reading(
    mnist: SmallMnist, mirror: Server, tmp_path: Path
) -> None:
    mirror.serve_directory("/m/", mnist.directory)
    mirror.serve("/m/" + TRAIN_LABELS, bytes(10_000_000), send=100)
    with pytest.raises(DatasetError, match="announces 10000000 bytes"):
        load_mnist(tmp_path / "dl", mirrors=[mirror.url + "/m/"], progress=False)


# === reproduce: run reuse, locks, atomic files, interruptions ====================================


def _ctx(out: Path, data: datasets.Dataset, epochs: int = 2) -> experiments.Context:
    return experiments.Context(data, out, progress=False, epochs=epochs)


def _tanh_errors(out: Path) -> list[float]:
    document = json.loads((out / "tanh.json").read_text())
    errors: list[float] = document["runs"][0]["test_error"]
    return errors


def test_a_run_is_not_reused_for_another_subset(tmp_path: Path) -> None:
    """The finding: ``reproduce tanh --subset 700,200`` then ``--subset 300,100`` on one --out
    reported the first run's numbers as the second's."""
    full = tiny_data(200, 100)
    experiments.reproduce(["tanh"], _ctx(tmp_path / "out", full.subset(200, 100)))
    experiments.reproduce(["tanh"], _ctx(tmp_path / "out", full.subset(100, 50)))
    experiments.reproduce(["tanh"], _ctx(tmp_path / "fresh", full.subset(100, 50)))
    assert _tanh_errors(tmp_path / "out") == _tanh_errors(tmp_path / "fresh")


def test_a_run_is_not_reused_for_other_data_of_the_same_name_and_size(tmp_path: Path) -> None:
    experiments.reproduce(["tanh"], _ctx(tmp_path / "out", tiny_data(100, 50, seed=0)))
    experiments.reproduce(["tanh"], _ctx(tmp_path / "out", tiny_data(100, 50, seed=1)))
    experiments.reproduce(["tanh"], _ctx(tmp_path / "fresh", tiny_data(100, 50, seed=1)))
    assert _tanh_errors(tmp_path / "out") == _tanh_errors(tmp_path / "fresh")


def test_a_run_directory_of_another_configuration_is_refused(tmp_path: Path) -> None:
    """A run directory copied by hand under another run's name is refused, not reused."""
    spec = experiments.RunSpec.of("ADADELTA", {"rho": 0.95, "eps": 1e-6}, "tanh", 0)
    a = experiments.run(spec, 2, _ctx(tmp_path / "a", tiny_data(100, 50, seed=0)))
    b = experiments.run(spec, 1, _ctx(tmp_path / "b", tiny_data(100, 50, seed=1)))
    assert a.directory is not None and b.directory is not None
    assert a.directory.name != b.directory.name  # the data is part of the run's identity
    for file in ("checkpoint.npz", "metrics.jsonl"):
        (b.directory / file).write_bytes((a.directory / file).read_bytes())
    ctx_b = _ctx(tmp_path / "b", tiny_data(100, 50, seed=1))
    with pytest.raises(RunMismatchError, match=r"data\.sha256"):
        experiments.run(spec, 2, ctx_b)
    with pytest.raises(RunMismatchError, match=r"data\.sha256"):
        experiments.run(spec, 1, ctx_b)  # reuse checks too


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b'{"epoch": 1', CheckpointError),
        (b"[]", CheckpointError),
        (b'{"epoch": 1, "config": {}}', RunMismatchError),
    ],
)
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_a_damaged_divergence_record_is_a_named_error(
    tmp_path: Path, content: bytes, error: type[Exception]
) -> None:
    spec = experiments.RunSpec.of("SGD", {"lr": 1e12}, "relu", 0)  # diverges at once
    ctx = _ctx(tmp_path, tiny_data(), epochs=2)
    result = experiments.run(spec, 2, ctx)
    assert result.diverged_at_epoch == 1 and result.directory is not None
    assert experiments.run(spec, 2, ctx).test_error == [None, None]  # reused
    (result.directory / "diverged.json").write_bytes(content)
    with pytest.raises(error, match="diverged"):
        experiments.run(spec, 2, ctx)


@pytest.mark.parametrize("kind", ["fifo", "directory"])
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_a_planted_fifo_or_directory_in_a_run_is_refused_without_blocking(
    tmp_path: Path, kind: str
) -> None:
    # was: read_metrics and run()'s read of diverged.json opened a FIFO and waited for a
    # writer for ever; a directory gave IsADirectoryError
    diverging = experiments.RunSpec.of("SGD", {"lr": 1e12}, "relu", 0)
    ctx = _ctx(tmp_path, tiny_data(), epochs=1)
    result = experiments.run(diverging, 1, ctx)
    assert result.diverged_at_epoch == 1 and result.directory is not None
    planted = [result.directory / "diverged.json", tmp_path / "other-run" / METRICS]
    for path in planted:
        path.unlink(missing_ok=True)
        path.parent.mkdir(exist_ok=True)
        os.mkfifo(path) if kind == "fifo" else path.mkdir()
    previous = signal.signal(signal.SIGALRM, _hang_guard)
    signal.alarm(10)
    try:
        with pytest.raises(CheckpointError, match="not a regular file") as error:
            experiments.run(diverging, 1, ctx)
        assert str(planted[0]) in str(error.value)
        with pytest.raises(CheckpointError, match="not a regular file") as error:
            read_metrics(planted[1].parent)
        assert str(planted[1]) in str(error.value)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("content", [b'{"epoch": 1', b"[1]\n", b"\xff\n", b"[" * 100_000])
def test_damaged_metrics_are_a_checkpoint_error_naming_the_file(
    tmp_path: Path, content: bytes
) -> None:
    (tmp_path / METRICS).write_bytes(content)
    with pytest.raises(CheckpointError, match="corrupt metrics") as error:
        read_metrics(tmp_path)
    assert str(tmp_path / METRICS) in str(error.value)


def test_every_file_of_a_run_is_written_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file under --out is put in place by a rename of a complete temporary file."""
    replaced: set[Path] = set()
    real_replace = os.replace

    def recording_replace(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        replaced.add(Path(dst))

    monkeypatch.setattr(os, "replace", recording_replace)
    out = tmp_path / "out"
    ctx = experiments.Context(tiny_data(100, 50), out, progress=False, epochs=1)
    experiments.reproduce(["tanh", "figure1"], ctx)
    written = {p for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert {p.name for p in written} >= {"tanh.json", "tanh.md", "figure1.png", "checkpoint.npz"}
    assert written <= replaced, sorted(str(p) for p in written - replaced)


def test_one_reproduce_per_out_in_one_process(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with experiments.locked(out):
        with pytest.raises(experiments.OutputLockedError, match=f"pid {os.getpid()}") as error:
            experiments.reproduce(["tanh"], _ctx(out, tiny_data(100, 50)))
    assert str(out / ".lock") in str(error.value)
    assert not (out / "tanh.json").exists()
    experiments.reproduce(["tanh"], _ctx(out, tiny_data(100, 50), epochs=1))  # free again
    assert (out / "tanh.json").is_file()


_REPRODUCE = """
import sys
from pathlib import Path
from adadelta.app import experiments
from test_experiments import tiny_data

out, epochs = Path(sys.argv[1]), int(sys.argv[2])
if sys.argv[3] == "hold":
    with experiments.locked(out):
        print("locked", flush=True)
        sys.stdin.readline()
else:
    ctx = experiments.Context(tiny_data(), out, progress=False, epochs=epochs)
    experiments.reproduce(["tanh"], ctx)
    print("done", flush=True)
"""


@needs_sigkill
def test_a_second_reproduce_process_on_one_out_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = _python(
        _REPRODUCE, str(out), "1", "hold", stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(experiments.OutputLockedError, match=f"pid {holder.pid}"):
            experiments.reproduce(["tanh"], _ctx(out, tiny_data(100, 50)))
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed holder releases the lock
        holder.wait()
    experiments.reproduce(["tanh"], _ctx(out, tiny_data(100, 50), epochs=1))
    assert (out / "tanh.json").is_file()


def _snapshot(out: Path) -> dict[str, Any]:
    """The bits that a reproduce leaves: reports and every run's checkpoint."""
    runs = {p.parent.name: adadelta.load(p) for p in (out / "runs").glob("*/checkpoint.npz")}
    for tree in runs.values():
        for record in tree["history"]:
            record.pop("seconds")  # wall time, the only thing allowed to differ
    return {"errors": _tanh_errors(out), "runs": runs}


def _checkpointed_epochs(out: Path) -> int:
    metrics = list(out.glob("runs/*/metrics.jsonl"))
    return len(metrics[0].read_text().splitlines()) if metrics else 0


@pytest.mark.slow
@needs_sigkill
def test_reproduce_killed_at_random_moments_resumes_to_the_same_bits(tmp_path: Path) -> None:
    epochs = 4
    reference = _python(
        _REPRODUCE, str(tmp_path / "reference"), str(epochs), "run", stdout=subprocess.PIPE
    )
    assert reference.communicate(timeout=120)[0].strip() == "done"
    out = tmp_path / "killed"
    rng = np.random.default_rng(3)
    for kill in range(1, 3):  # killed once after each of the first two epochs, at random
        process = _python(_REPRODUCE, str(out), str(epochs), "run", stdout=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while _checkpointed_epochs(out) < kill and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, "finished before it was killed"
    final = _python(_REPRODUCE, str(out), str(epochs), "run", stdout=subprocess.PIPE)
    assert final.communicate(timeout=120)[0].strip() == "done"
    assert_identical(_snapshot(out), _snapshot(tmp_path / "reference"))
    strays = [p for p in out.rglob("*.tmp")]
    assert strays == []


# --- found by the review of issue 12 ---


def _hang_guard(signum: int, frame: Any) -> None:
    raise TimeoutError("blocked on a file that is not a regular file")


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_files_that_are_not_regular_are_refused_without_blocking(tmp_path: Path, kind: str) -> None:
    # was: load and read_idx on a FIFO blocked for ever (open waits for a writer); on a
    # directory, IsADirectoryError
    paths = {"load": tmp_path / "ckpt", "read_idx": tmp_path / "data-idx1-ubyte.gz"}
    for path in paths.values():
        os.mkfifo(path) if kind == "fifo" else path.mkdir()
    previous = signal.signal(signal.SIGALRM, _hang_guard)
    signal.alarm(10)
    try:
        with pytest.raises(CheckpointError, match="not a regular file") as error:
            adadelta.load(paths["load"])
        assert str(paths["load"]) in str(error.value)
        with pytest.raises(DatasetError, match="not a regular file") as error2:
            read_idx(paths["read_idx"])
        assert str(paths["read_idx"]) in str(error2.value)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_checkpoint_that_is_a_device_is_refused_before_reading_it(tmp_path: Path) -> None:
    # was: load of a symlink to /dev/zero read until memory ran out (MemoryError, or the OOM
    # killer); run in a child with 3 GB of address space so a regression cannot take the host
    link = tmp_path / "ckpt"
    link.symlink_to("/dev/zero")
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
        "import adadelta\n"
        "try:\n"
        "    adadelta.load(sys.argv[1])\n"
        "except adadelta.CheckpointError as e:\n"
        "    print(e)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, str(link)],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr[-500:]
    assert f"{link}: not a regular file" in child.stdout


def test_an_out_that_is_not_a_directory_or_a_planted_lock_file_is_refused(tmp_path: Path) -> None:
    # was: --out naming a file gave a bare FileExistsError; OUT/.lock as a symlink had its
    # target truncated and overwritten with the process id; a directory or a FIFO there gave
    # IsADirectoryError or OSError(EINVAL)
    a_file = tmp_path / "results.txt"
    a_file.write_text("mine")
    with pytest.raises(NotADirectoryError, match="must be a directory") as error:
        with experiments.locked(a_file):
            pass
    assert str(a_file) in str(error.value) and a_file.read_text() == "mine"
    victim = tmp_path / "precious"
    victim.write_text("precious")
    for kind in ("symlink", "directory", "fifo"):
        out = tmp_path / kind
        out.mkdir()
        lock = out / ".lock"
        if kind == "symlink":
            lock.symlink_to(victim)
        elif kind == "directory":
            lock.mkdir()
        else:
            os.mkfifo(lock)
        with pytest.raises(experiments.OutputLockedError, match="cannot be the lock file"):
            with experiments.locked(out):
                pass
    assert victim.read_text() == "precious"
    stale = tmp_path / "stale"  # a lock file left by a killed process does not block
    stale.mkdir()
    (stale / ".lock").write_text("pid 999999999 on elsewhere\n")
    with experiments.locked(stale):
        assert (stale / ".lock").read_text().startswith(f"pid {os.getpid()} ")
