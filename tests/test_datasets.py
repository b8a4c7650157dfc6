"""The data layer: IDX decoding and validation, checksums, downloads, the decoded cache, the real
MNIST files and the embedded demo digits."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import adadelta
from adadelta.app import datasets
from adadelta.app.datasets import Dataset, DatasetError, load_embedded_digits, load_mnist, read_idx

SHARED_MNIST = Path(
    os.environ.get(
        "ADADELTA_SHARED_MNIST", Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    )
)
needs_real_mnist = pytest.mark.skipif(
    not all((SHARED_MNIST / name).is_file() for name in datasets.FILES.values()),
    reason=f"the real MNIST files are not in {SHARED_MNIST} (set ADADELTA_SHARED_MNIST)",
)
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = datasets.FILES.values()


def idx_bytes(array: np.ndarray[Any, Any]) -> bytes:
    """An IDX file written from the format's definition (not with the code under test)."""
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    code = codes[array.dtype.str[1:]]
    header = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_file(path: Path, content: bytes) -> Path:
    path.write_bytes(gzip.compress(content) if path.name.endswith(".gz") else content)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every test out of the real ~/.cache and away from proxies and $ADADELTA_DATA."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return tmp_path / "xdg-cache" / "adadelta"


class SmallMnist:
    """Four tiny valid MNIST-format files in a directory, with the checksum table patched."""

    def __init__(self, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        rng = np.random.default_rng(1)
        self.directory = directory
        self.monkeypatch = monkeypatch
        self.arrays = {
            TRAIN_IMAGES: rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
            TRAIN_LABELS: (np.arange(20) % 10).astype(np.uint8),
            TEST_IMAGES: rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
            TEST_LABELS: np.array([7, 2, 1, 0, 4, 1, 9], dtype=np.uint8),
        }
        directory.mkdir(parents=True, exist_ok=True)
        for name, array in self.arrays.items():
            self.replace(name, idx_bytes(array))

    def replace(self, name: str, content: bytes) -> Path:
        """Write a file (gzip-compressed) and make its checksum and size the known ones."""
        path = write_file(self.directory / name, content)
        self.monkeypatch.setitem(datasets.SHA256, name, sha256(path))
        self.monkeypatch.setitem(datasets.SIZES, name, path.stat().st_size)
        return path


@pytest.fixture
def small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SmallMnist:
    monkeypatch.setattr(datasets, "SHA256", dict(datasets.SHA256))
    monkeypatch.setattr(datasets, "SIZES", dict(datasets.SIZES))
    return SmallMnist(tmp_path / "data", monkeypatch)


class Server:
    """An HTTP server on 127.0.0.1 serving ``routes`` (URL path -> handler)."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[http.server.BaseHTTPRequestHandler], None]] = {}
        routes = self.routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path)
                if route is None:
                    self.send_error(404)
                else:
                    route(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def serve(self, path: str, content: bytes, *, send: int | None = None) -> None:
        """Serve ``content``; with ``send``, announce its full length but close after ``send``."""

        def route(handler: http.server.BaseHTTPRequestHandler) -> None:
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(content)))
            handler.end_headers()
            handler.wfile.write(content[:send])
            handler.close_connection = True

        self.routes[path] = route

    def serve_directory(self, prefix: str, directory: Path) -> None:
        for name in datasets.FILES.values():
            self.serve(f"{prefix}{name}", (directory / name).read_bytes())


@pytest.fixture
def server() -> Iterator[Server]:
    server = Server()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
    server.thread.join()


# --- read_idx -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, ">i2", ">i4", ">f4", ">f8"])
def test_read_idx_decodes_every_type_to_native_byte_order(
    tmp_path: Path, suffix: str, dtype: Any
) -> None:
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    path = write_file(tmp_path / f"a-idx3{suffix}", idx_bytes(array))
    decoded = read_idx(path)
    assert decoded.dtype == np.dtype(dtype).newbyteorder("=")
    assert decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, array)
    decoded[0, 0, 0] = 1  # a writable array, not a view of a bytes buffer


GOOD = idx_bytes(np.zeros((3, 28, 28), np.uint8))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "no complete header"),
        (GOOD[:3], "no complete header"),
        (GOOD[:10], "incomplete dimensions"),
        (GOOD[:-1], "truncated"),
        (GOOD + b"\x00", "trailing bytes"),
        (b"\x00\x01" + GOOD[2:], "magic number"),  # first two bytes must be zero
        (b"\x00\x00\x07" + GOOD[3:], "magic number"),  # 0x07 is no IDX type code
        (b"\x00\x00\x08\x00" + GOOD[4:], "magic number"),  # zero dimensions
        (b"\x1f\x8b\x08\x03" + GOOD[4:], "magic number"),  # a gzip file not named .gz
    ],
)
def test_read_idx_rejects_malformed_files_naming_file_and_problem(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    for path in (tmp_path / "bad-idx3-ubyte.gz", tmp_path / "bad-idx3-ubyte"):
        write_file(path, content)
        with pytest.raises(DatasetError, match=problem) as error:
            read_idx(path)
        assert str(path) in str(error.value)


def test_read_idx_rejects_bad_gzip(tmp_path: Path) -> None:
    not_gzip = tmp_path / "plain-idx3-ubyte.gz"
    not_gzip.write_bytes(GOOD)  # uncompressed bytes under a .gz name
    cut = tmp_path / "cut-idx3-ubyte.gz"
    cut.write_bytes(gzip.compress(GOOD)[:-12])  # compressed stream cut short
    flipped = bytearray(gzip.compress(GOOD))
    flipped[-6] ^= 0xFF  # damages the CRC-32 trailer
    damaged = tmp_path / "damaged-idx3-ubyte.gz"
    damaged.write_bytes(flipped)
    for path in (not_gzip, cut, damaged):
        with pytest.raises(DatasetError, match="gzip") as error:
            read_idx(path)
        assert str(path) in str(error.value)


def test_read_idx_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nothing.gz")


# --- mnist_dir ------------------------------------------------------------------------------


def test_mnist_dir_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert datasets.mnist_dir() == tmp_path / "home" / ".cache" / "adadelta" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    assert datasets.mnist_dir() == tmp_path / "home" / ".cache" / "adadelta" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.mnist_dir() == tmp_path / "xdg" / "adadelta" / "mnist"
    monkeypatch.setenv("ADADELTA_DATA", str(tmp_path / "env"))
    assert datasets.mnist_dir() == tmp_path / "env"
    assert datasets.mnist_dir(tmp_path / "given") == tmp_path / "given"
    assert datasets.mnist_dir("~/x") == tmp_path / "home" / "x"


# --- load_mnist on small files --------------------------------------------------------------


def test_load_mnist_decodes_scales_and_labels(small: SmallMnist) -> None:
    data = load_mnist(small.directory, download=False)
    assert data.name == "mnist"
    assert data.x_train.dtype == np.float32 and data.x_train.shape == (20, 784)
    assert data.x_test.dtype == np.float32 and data.x_test.shape == (7, 784)
    assert data.y_train.dtype == np.int64 and data.y_test.dtype == np.int64
    expected = small.arrays[TRAIN_IMAGES].reshape(20, 784).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(data.x_train, expected)
    np.testing.assert_array_equal(data.y_test, [7, 2, 1, 0, 4, 1, 9])
    np.testing.assert_array_equal(data.y_train, np.arange(20) % 10)

    part = data.subset(5, 3)
    assert part.x_train.shape == (5, 784) and part.y_test.shape == (3,)
    np.testing.assert_array_equal(part.x_test, data.x_test[:3])
    part.x_train[0] = -1  # a copy: the full dataset is unchanged
    assert data.x_train[0].min() >= 0
    with pytest.raises(ValueError, match="n_train=21"):
        data.subset(21, 1)
    with pytest.raises(ValueError, match="n_test=-1"):
        data.subset(1, -1)


def test_load_mnist_finds_files_through_the_environment_variable(
    small: SmallMnist, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADADELTA_DATA", str(small.directory))
    np.testing.assert_array_equal(load_mnist(download=False).y_test, [7, 2, 1, 0, 4, 1, 9])


def test_missing_files_without_download_say_which_and_how(small: SmallMnist) -> None:
    (small.directory / TEST_LABELS).unlink()
    (small.directory / TRAIN_IMAGES).unlink()
    with pytest.raises(DatasetError) as error:
        load_mnist(small.directory, download=False)
    message = str(error.value)
    assert TEST_LABELS in message and TRAIN_IMAGES in message
    assert TRAIN_LABELS not in message
    assert "--data" in message and "ADADELTA_DATA" in message and str(small.directory) in message


def test_checksum_mismatch_names_the_file(small: SmallMnist) -> None:
    path = small.directory / TEST_IMAGES
    write_file(path, idx_bytes(np.ones((7, 28, 28), np.uint8)))  # valid IDX, other content
    with pytest.raises(DatasetError, match="checksum mismatch") as error:
        load_mnist(small.directory, download=False)
    assert str(path) in str(error.value)
    assert sha256(path) in str(error.value)


@pytest.mark.parametrize(
    ("name", "array", "problem"),
    [
        (TRAIN_LABELS, (np.arange(19) % 10).astype(np.uint8), "19 labels but .* has 20 images"),
        (TRAIN_IMAGES, np.zeros((20, 27, 28), np.uint8), "28x28"),
        (TEST_IMAGES, np.zeros((7, 784), np.uint8), "28x28"),
        (TEST_IMAGES, np.zeros((7, 28, 28), np.int32), "unsigned-byte images"),
        (TEST_LABELS, np.zeros((7, 1), np.uint8), "1-d unsigned-byte label"),
        (TEST_LABELS, np.array([0, 1, 2, 3, 4, 5, 10], np.uint8), "label 10 is outside"),
    ],
)
def test_wrong_dimensions_and_contents_name_the_file(
    small: SmallMnist, name: str, array: np.ndarray[Any, Any], problem: str
) -> None:
    path = small.replace(name, idx_bytes(array))
    with pytest.raises(DatasetError, match=problem) as error:
        load_mnist(small.directory, download=False)
    assert str(path) in str(error.value)


def test_truncated_file_is_reported_through_load_mnist(small: SmallMnist) -> None:
    path = small.replace(TRAIN_IMAGES, idx_bytes(small.arrays[TRAIN_IMAGES])[:-100])
    with pytest.raises(DatasetError, match="truncated") as error:
        load_mnist(small.directory, download=False)
    assert str(path) in str(error.value)


def test_dataset_rejects_wrong_dtypes_and_shapes() -> None:
    x, y = np.zeros((3, 784), np.float32), np.zeros(3, np.int64)
    Dataset("ok", x, y, x, y)
    with pytest.raises(ValueError, match="x_train"):
        Dataset("bad", x.astype(np.float64), y, x, y)
    with pytest.raises(ValueError, match="y_test"):
        Dataset("bad", x, y, x, y[:2])


# --- the decoded cache ----------------------------------------------------------------------


def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(path: object) -> None:
        raise AssertionError(f"decoded {path} although a valid cache exists")

    monkeypatch.setattr(datasets, "read_idx", fail)


def test_second_load_comes_from_the_cache(
    small: SmallMnist, monkeypatch: pytest.MonkeyPatch, isolated_environment: Path
) -> None:
    first = load_mnist(small.directory, download=False)
    caches = list(isolated_environment.glob("mnist-*.npz"))
    assert len(caches) == 1
    assert sorted(p.name for p in small.directory.iterdir()) == sorted(small.arrays)  # untouched
    assert adadelta.load(caches[0])["arrays"]["train_images"].dtype == np.uint8  # no pickles
    forbid_decoding(monkeypatch)
    second = load_mnist(small.directory, download=False)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(second, field), getattr(first, field))
        assert getattr(second, field).dtype == getattr(first, field).dtype


def test_a_changed_source_invalidates_the_cache(small: SmallMnist) -> None:
    load_mnist(small.directory, download=False)
    new_labels = np.array([1, 1, 1, 1, 1, 1, 1], np.uint8)
    small.replace(TEST_LABELS, idx_bytes(new_labels))
    np.testing.assert_array_equal(load_mnist(small.directory, download=False).y_test, new_labels)


def corrupt_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def corrupt_garbage(path: Path) -> None:
    path.write_bytes(b"not a zip file at all")


def corrupt_labels(path: Path) -> None:
    """A well-formed cache whose labels are out of range: valid file, invalid contents."""
    tree = adadelta.load(path)
    tree["arrays"]["test_labels"] = np.full(7, 200, np.uint8)
    adadelta.save(path, tree)


def corrupt_rewritten(path: Path) -> None:
    """A well-formed cache of the right sources with other (valid-looking) labels."""
    tree = adadelta.load(path)
    tree["arrays"]["test_labels"] = np.zeros(7, np.uint8)
    adadelta.save(path, tree)


def corrupt_sources(path: Path) -> None:
    """A cache that claims other source files (e.g. a hand-copied file under this name)."""
    tree = adadelta.load(path)
    tree["sources"] = ["0" * 64] * 4
    tree["arrays"]["test_labels"] = np.zeros(7, np.uint8)
    adadelta.save(path, tree)


def corrupt_old_format(path: Path) -> None:
    """The cache format before adadelta.save: a plain .npz with a "sources" entry."""
    np.savez(path, format=np.array("adadelta-mnist-1"), sources=np.array(["0" * 64] * 4))


@pytest.mark.parametrize(
    "corrupt",
    [
        corrupt_truncate,
        corrupt_garbage,
        corrupt_labels,
        corrupt_rewritten,
        corrupt_sources,
        corrupt_old_format,
    ],
)
def test_a_corrupt_or_stale_cache_is_rebuilt_not_trusted(
    small: SmallMnist, isolated_environment: Path, corrupt: Callable[[Path], None]
) -> None:
    load_mnist(small.directory, download=False)
    (cache,) = isolated_environment.glob("mnist-*.npz")
    corrupt(cache)
    data = load_mnist(small.directory, download=False)
    np.testing.assert_array_equal(data.y_test, [7, 2, 1, 0, 4, 1, 9])
    assert datasets._read_cache(cache, _digests(small)) is not None  # rewritten, valid again


def _digests(small: SmallMnist) -> dict[str, str]:
    return {key: sha256(small.directory / name) for key, name in datasets.FILES.items()}


def test_an_unwritable_cache_only_costs_speed(
    small: SmallMnist, isolated_environment: Path
) -> None:
    isolated_environment.parent.mkdir(parents=True)
    isolated_environment.write_text("a file where the cache directory should be")
    data = load_mnist(small.directory, download=False)
    np.testing.assert_array_equal(data.y_test, [7, 2, 1, 0, 4, 1, 9])


# --- downloads ------------------------------------------------------------------------------


def test_download_fills_the_cache_directory_with_verified_files(
    small: SmallMnist, server: Server, tmp_path: Path, isolated_environment: Path
) -> None:
    server.serve_directory("/mnist/", small.directory)
    data = load_mnist(mirrors=[server.url + "/mnist/"], progress=False)
    np.testing.assert_array_equal(data.y_test, [7, 2, 1, 0, 4, 1, 9])
    target = isolated_environment / "mnist"
    assert sorted(p.name for p in target.iterdir()) == sorted(small.arrays)  # no leftovers
    for name in small.arrays:
        assert sha256(target / name) == datasets.SHA256[name]


def test_download_only_fetches_missing_files_and_shows_progress(
    small: SmallMnist, server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "partial"
    target.mkdir()
    for name in (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES):
        (target / name).write_bytes((small.directory / name).read_bytes())
    server.serve("/m/" + TEST_LABELS, (small.directory / TEST_LABELS).read_bytes())  # only this
    data = load_mnist(target, mirrors=[server.url + "/m"])  # base URL without trailing slash
    np.testing.assert_array_equal(data.y_test, [7, 2, 1, 0, 4, 1, 9])
    assert TEST_LABELS in capsys.readouterr().err  # the tqdm bar names the file


def test_download_falls_over_to_the_next_mirror(
    small: SmallMnist, server: Server, tmp_path: Path
) -> None:
    server.serve_directory("/good/", small.directory)
    mirrors = [server.url + "/missing/", "http://127.0.0.1:1/refused/", server.url + "/good/"]
    data = load_mnist(tmp_path / "dl", mirrors=mirrors, progress=False)
    np.testing.assert_array_equal(data.y_train, np.arange(20) % 10)


def assert_nothing_passes_for_complete(directory: Path) -> None:
    left = list(directory.iterdir()) if directory.exists() else []
    assert left == [], f"left behind: {left}"


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda b: b[:-10], "announces 29 bytes, the file has 39"),  # honest length
        (lambda b: b[:5] + bytes([b[5] ^ 1]) + b[6:], "checksum mismatch"),  # one bit flipped
    ],
)
def test_a_corrupt_download_is_rejected_and_not_kept(
    small: SmallMnist,
    server: Server,
    tmp_path: Path,
    damage: Callable[[bytes], bytes],
    problem: str,
) -> None:
    server.serve_directory("/m/", small.directory)
    server.serve("/m/" + TRAIN_LABELS, damage((small.directory / TRAIN_LABELS).read_bytes()))
    target = tmp_path / "dl"
    with pytest.raises(DatasetError, match=problem) as error:
        load_mnist(target, mirrors=[server.url + "/m/"], progress=False)
    assert TRAIN_LABELS in str(error.value) and server.url in str(error.value)
    assert not (target / TRAIN_LABELS).exists()
    assert not list(target.glob(f"*{TRAIN_LABELS}*"))


def test_an_interrupted_download_leaves_nothing_behind(
    small: SmallMnist, server: Server, tmp_path: Path
) -> None:
    content = (small.directory / TRAIN_IMAGES).read_bytes()
    server.serve("/m/" + TRAIN_IMAGES, content, send=len(content) // 2)  # then hangs up
    target = tmp_path / "dl"
    with pytest.raises(DatasetError, match=f"closed after {len(content) // 2} of {len(content)}"):
        load_mnist(target, mirrors=[server.url + "/m/"], progress=False)
    assert_nothing_passes_for_complete(target)


def test_a_download_interrupted_by_the_user_leaves_nothing_behind(
    small: SmallMnist, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.serve_directory("/m/", small.directory)

    class InterruptedBar:
        def __init__(self, **kwargs: Any) -> None:
            pass

        def __enter__(self) -> InterruptedBar:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def update(self, n: int) -> None:
            raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "tqdm", InterruptedBar)
    target = tmp_path / "dl"
    with pytest.raises(KeyboardInterrupt):
        load_mnist(target, mirrors=[server.url + "/m/"])
    assert_nothing_passes_for_complete(target)


def test_all_mirrors_failing_is_one_clear_error(server: Server, tmp_path: Path) -> None:
    mirrors = [server.url + "/a/", server.url + "/b/"]
    with pytest.raises(DatasetError, match="could not download") as error:
        load_mnist(tmp_path / "dl", mirrors=mirrors, progress=False)
    message = str(error.value)
    assert f"{server.url}/a/{TRAIN_IMAGES}" in message and f"{server.url}/b/" in message
    assert "404" in message
    with pytest.raises(DatasetError, match="no download mirrors"):
        load_mnist(tmp_path / "dl", mirrors=[], progress=False)


# --- the real MNIST files -------------------------------------------------------------------

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def check_real_mnist(data: Dataset) -> None:
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert data.y_train[0] == 5 and data.y_test[0] == 7
    np.testing.assert_array_equal(np.bincount(data.y_train), TRAIN_COUNTS)
    np.testing.assert_array_equal(np.bincount(data.y_test), TEST_COUNTS)
    # the first training image (a 5): 166 nonzero pixels, the top rows blank
    assert np.count_nonzero(data.x_train[0]) == 166
    assert not data.x_train[0, : 28 * 5].any()


@needs_real_mnist
def test_real_mnist_files_and_their_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "real"  # links, so that nothing is ever written next to the originals
    data_dir.mkdir()
    for name in datasets.FILES.values():
        (data_dir / name).symlink_to(SHARED_MNIST / name)
    check_real_mnist(load_mnist(data_dir, download=False))
    forbid_decoding(monkeypatch)
    check_real_mnist(load_mnist(data_dir, download=False))


@needs_real_mnist
def test_download_of_the_real_files(server: Server, tmp_path: Path) -> None:
    server.serve_directory("/ossci/", SHARED_MNIST)
    target = tmp_path / "cache"
    data = load_mnist(target, mirrors=[server.url + "/ossci/"], progress=False)
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert set(np.unique(data.y_train)) == set(range(10)) == set(np.unique(data.y_test))
    for name in datasets.FILES.values():
        assert sha256(target / name) == datasets.SHA256[name]


# --- the embedded sample --------------------------------------------------------------------

EMBEDDED = Path(datasets.__file__).with_name("data") / datasets.EMBEDDED_FILE
REPO = Path(__file__).resolve().parents[1]


def test_embedded_digits() -> None:
    data = load_embedded_digits()
    assert data.x_train.shape == (10000, 784) and data.x_test.shape == (2000, 784)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert np.all(data.x_test >= 0) and np.all(data.x_test <= 1)
    np.testing.assert_array_equal(np.bincount(data.y_train), [1000] * 10)  # class-balanced
    np.testing.assert_array_equal(np.bincount(data.y_test), [200] * 10)
    assert len({row.tobytes() for row in data.x_train}) == 10000  # no image twice
    assert len(set(data.y_train[:20].tolist())) > 5  # shuffled, not sorted by label
    pixels = np.round(data.x_train * 255)
    np.testing.assert_array_equal(pixels / np.float32(255), data.x_train)  # k / 255 exactly
    again = load_embedded_digits()
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(again, field), getattr(data, field))


def test_embedded_digits_are_a_small_plain_npz_whose_checksum_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert EMBEDDED.stat().st_size < 3_000_000
    assert sha256(EMBEDDED) == datasets.EMBEDDED_SHA256
    with np.load(EMBEDDED, allow_pickle=False) as archive:  # no object arrays
        assert sorted(archive.files) == sorted(
            ["x_train", "y_train", "train_index", "x_test", "y_test", "test_index"]
        )
        assert {archive[key].dtype.kind for key in archive.files} == {"u"}
    monkeypatch.setattr(datasets, "EMBEDDED_SHA256", "0" * 64)
    with pytest.raises(DatasetError, match=r"mnist_subset\.npz: SHA-256 checksum mismatch"):
        load_embedded_digits()


@needs_real_mnist
def test_embedded_digits_are_the_recorded_mnist_images() -> None:
    with np.load(EMBEDDED, allow_pickle=False) as archive:
        stored = {key: archive[key] for key in archive.files}
    for split, images, labels in (
        ("train", TRAIN_IMAGES, TRAIN_LABELS),
        ("test", TEST_IMAGES, TEST_LABELS),
    ):
        index = stored[f"{split}_index"].astype(np.int64)
        source = read_idx(SHARED_MNIST / images).reshape(-1, 784)
        np.testing.assert_array_equal(stored[f"x_{split}"], source[index])
        np.testing.assert_array_equal(stored[f"y_{split}"], read_idx(SHARED_MNIST / labels)[index])


@needs_real_mnist
def test_the_build_script_rebuilds_the_file_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "subset.npz"
    script = REPO / "scripts" / "build_demo_digits.py"
    result = subprocess.run(
        [sys.executable, str(script), "--mnist", str(SHARED_MNIST), "--out", str(out)],
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == EMBEDDED.read_bytes()
    assert f"SHA-256 {datasets.EMBEDDED_SHA256}" in result.stdout
