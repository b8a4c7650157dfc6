"""adadelta.save / adadelta.load: exact round trips, refusals that write nothing, corrupt files
refused without unpickling anything, and atomic replacement (a crash never leaves a half-written
checkpoint at the path)."""

from __future__ import annotations

import io
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import adadelta
from adadelta import CheckpointError
from optimizer_matrix import assert_identical


def nested_tree() -> dict[Any, Any]:
    return {
        "floats": np.linspace(-1, 1, 12).reshape(3, 4),
        "float32": np.arange(5, dtype=np.float32) / 3,
        "ints": np.arange(-3, 3, dtype=np.int8),
        "uint64": np.array([2**64 - 1], dtype=np.uint64),
        "bools": np.array([True, False]),
        "complex": np.array([1 + 2j, -0.5j]),
        "zero-d": np.array(2.5),
        "empty": np.zeros((0, 3)),
        "non-finite": np.array([np.nan, np.inf, -np.inf, -0.0]),
        "strings": np.array(["a", "bc"]),
        "scalars": [np.float32(1.5), np.int64(-7), np.bool_(True), np.float64(np.nan)],
        0: "int key",
        7: {"nested": ({"deeper": [None, True, False]}, ())},
        "python": [0, -(2**70), 1.25, float("nan"), float("inf"), float("-inf"), -0.0, "", "é"],
        "tuple": (1, "two", np.array([3.0])),
        "empty-containers": [[], {}, ()],
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "none": None,
    }


def test_round_trip_is_exact(tmp_path: Path) -> None:
    tree = nested_tree()
    path = tmp_path / "tree.npz"
    adadelta.save(path, tree)
    loaded = adadelta.load(path)
    assert_identical(loaded, tree)
    assert np.signbit(loaded["python"][6])  # -0.0 stays negative
    assert isinstance(loaded["scalars"][0], np.float32)  # NumPy scalars stay scalars
    assert isinstance(loaded["zero-d"], np.ndarray) and loaded["zero-d"].shape == ()
    assert loaded["floats"].flags.writeable  # usable as parameters again


@pytest.mark.parametrize(
    "tree", [np.arange(3.0), [], {}, None, 3, "text", (np.float32(2),)], ids=repr
)
def test_round_trip_of_top_level_values(tmp_path: Path, tree: Any) -> None:
    adadelta.save(tmp_path / "x.npz", tree)
    assert_identical(adadelta.load(tmp_path / "x.npz"), tree)


def test_round_trip_of_an_optimizer_state_dict(tmp_path: Path) -> None:
    params = {"w": np.ones((2, 2), np.float32), "b": [np.zeros(3), np.array(1.0)]}
    opt = adadelta.Adam(params, betas=(0.8, 0.9), amsgrad=True)
    opt.step({"w": np.ones((2, 2), np.float32), "b": [np.ones(3), np.array(2.0)]})
    adadelta.save(str(tmp_path / "opt.npz"), opt.state_dict())  # str paths work too
    assert_identical(adadelta.load(tmp_path / "opt.npz"), opt.state_dict())


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


unsavable = [
    pytest.param(
        {"f": lambda: 0}, TypeError, "cannot save a value of type function", id="function"
    ),
    pytest.param([object()], TypeError, "cannot save a value of type object", id="object"),
    pytest.param({"s": {1, 2}}, TypeError, "cannot save a value of type set", id="set"),
    pytest.param(
        {"a": np.array([1, "x", None], dtype=object)},
        TypeError,
        "cannot save arrays of Python objects",
        id="object-array",
    ),
    pytest.param(
        [np.array([(1, [2])], dtype=[("a", int), ("b", object)])],
        TypeError,
        "cannot save arrays of Python objects",
        id="structured-with-object",
    ),
    pytest.param({(1, 2): 3}, TypeError, "cannot save dict key (1, 2)", id="tuple-key"),
    pytest.param({1.5: 3}, TypeError, "cannot save dict key 1.5", id="float-key"),
    pytest.param({True: 3}, TypeError, "cannot save dict key True", id="bool-key"),
    pytest.param({None: 3}, TypeError, "cannot save dict key None", id="None-key"),
    pytest.param({"deep": [{"ok": 1}, {"bad": b"bytes"}]}, TypeError, "type bytes", id="bytes"),
]


@pytest.mark.parametrize(("tree", "error_type", "message"), unsavable)
def test_refuses_to_save_and_writes_nothing(
    tmp_path: Path, tree: Any, error_type: type[Exception], message: str
) -> None:
    path = tmp_path / "ckpt.npz"
    with pytest.raises(error_type, match=message.replace("(", r"\(").replace(")", r"\)")):
        adadelta.save(path, tree)
    assert _files(tmp_path) == []
    adadelta.save(path, {"version": 1})
    with pytest.raises(error_type):
        adadelta.save(path, tree)
    assert _files(tmp_path) == ["ckpt.npz"]
    assert adadelta.load(path) == {"version": 1}


# --- corrupt files: CheckpointError naming the file, and nothing unpickled ---


def _refused(path: Path, match: str | None = None) -> CheckpointError:
    with pytest.raises(CheckpointError, match=match) as info:
        adadelta.load(path)
    assert str(path) in str(info.value)
    return info.value


def _sample(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "good.npz"
    adadelta.save(path, {"a": np.arange(1000.0), "b": [1, "x"], "c": np.float32(2)})
    return path, path.read_bytes()


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_refused(tmp_path: Path, fraction: float) -> None:
    _, data = _sample(tmp_path)
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: int(len(data) * fraction)])
    _refused(bad, "corrupt or truncated checkpoint")


def test_flipped_byte_in_the_data_fails_the_crc(tmp_path: Path) -> None:
    _, data = _sample(tmp_path)
    start = data.index(np.float64(500.0).tobytes())  # inside the data of "a"
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(data[:start] + bytes([data[start] ^ 0x10]) + data[start + 1 :])
    _refused(bad, "CRC")


def test_every_single_bit_flip_is_refused_or_harmless(tmp_path: Path) -> None:
    """A flipped bit anywhere either makes the file refused with CheckpointError or falls in a
    byte that does not matter (a timestamp, say); it never gives different contents or another
    exception."""
    path = tmp_path / "small.npz"
    tree = {"a": np.arange(2.0), "b": [1, None]}
    adadelta.save(path, tree)
    data = path.read_bytes()
    bad = tmp_path / "bad.npz"
    refused = 0
    for i in range(len(data)):
        corrupt = bytearray(data)
        corrupt[i] ^= 1 << (i % 8)
        bad.write_bytes(corrupt)
        try:
            loaded = adadelta.load(bad)
        except CheckpointError as error:
            assert str(bad) in str(error)
            refused += 1
        else:
            assert_identical(loaded, tree)
    assert refused > len(data) // 2  # most flips are caught


def test_a_file_that_is_not_a_zip_archive(tmp_path: Path) -> None:
    bad = tmp_path / "text.npz"
    bad.write_text("just some text, not a checkpoint\n")
    _refused(bad)
    np.save(tmp_path / "array.npy", np.arange(3.0))
    _refused(tmp_path / "array.npy")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    _refused(empty)


class _Exploit:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch EXPLOITED",))


def test_a_pickle_is_never_unpickled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "pickle.npz"
    bad.write_bytes(pickle.dumps({"state": _Exploit()}))
    _refused(bad)
    assert not (tmp_path / "EXPLOITED").exists()


def test_an_npz_holding_a_pickled_object_array_is_refused_unpickled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path, _ = _sample(tmp_path)
    # a real checkpoint with one entry swapped for a pickled object array
    buffer = io.BytesIO()
    np.save(buffer, np.array([_Exploit()], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path) as original:
        entries = {name: original.read(name) for name in original.namelist()}
    entries["a0.npy"] = buffer.getvalue()
    bad = tmp_path / "object.npz"
    with zipfile.ZipFile(bad, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    error = _refused(bad, "never unpickled")
    assert "allow_pickle" not in str(error)  # no advice to turn unpickling on
    assert not (tmp_path / "EXPLOITED").exists()


def test_an_npz_without_the_marker_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.arange(3.0))
    _refused(plain)
    wrong_format = tmp_path / "other.npz"
    np.savez(wrong_format, __structure__=np.array('{"format": "something-else", "tree": null}'))
    _refused(wrong_format, "not an adadelta checkpoint")
    not_json = tmp_path / "not-json.npz"
    np.savez(not_json, __structure__=np.array("{not json"))
    _refused(not_json)
    malformed = tmp_path / "malformed.npz"
    skeleton = '{"format": "adadelta-checkpoint-1", "tree": {"array": "missing"}}'
    np.savez(malformed, __structure__=np.array(skeleton))
    _refused(malformed)


def test_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        adadelta.load(tmp_path / "nothing-here.npz")


# --- atomic replacement ---


def test_interrupted_write_leaves_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ckpt.npz"
    adadelta.save(path, {"version": 1, "w": np.ones(3)})
    previous = path.read_bytes()
    real_savez = np.savez

    def savez_then_crash(file: Any, *args: Any, **kwargs: Any) -> None:
        real_savez(file, *args, **kwargs)
        file.write(b"half of something more")
        raise KeyboardInterrupt  # not even an Exception

    monkeypatch.setattr(np, "savez", savez_then_crash)
    with pytest.raises(KeyboardInterrupt):
        adadelta.save(path, {"version": 2, "w": np.zeros(3)})
    assert path.read_bytes() == previous
    assert _files(tmp_path) == ["ckpt.npz"]  # no temporary file left behind


def test_failed_rename_leaves_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ckpt.npz"
    adadelta.save(path, {"version": 1})
    previous = path.read_bytes()

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk on fire"):
        adadelta.save(path, {"version": 2})
    assert path.read_bytes() == previous
    assert _files(tmp_path) == ["ckpt.npz"]
    monkeypatch.undo()
    adadelta.save(path, {"version": 2})
    assert adadelta.load(path) == {"version": 2}


def test_save_keeps_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.npz"
    adadelta.save(path, 1)
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o600)
    adadelta.save(path, 2)
    assert path.stat().st_mode & 0o777 == 0o600


_WRITER = """
import sys
import numpy as np
import adadelta

path, size = sys.argv[1], int(sys.argv[2])
base = np.arange(size, dtype=np.float64)
version = 0
while True:
    version += 1
    adadelta.save(path, {"version": version, "data": base + version, "tail": [np.full(7, version)]})
    print(version, flush=True)
"""


def _check_version(tree: Any, size: int) -> int:
    version = tree["version"]
    assert isinstance(version, int) and version >= 1
    np.testing.assert_array_equal(tree["data"], np.arange(size, dtype=np.float64) + version)
    np.testing.assert_array_equal(tree["tail"][0], np.full(7, version))
    return version


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_sigkill_mid_write_leaves_a_complete_checkpoint(tmp_path: Path) -> None:
    """A process that keeps overwriting a 4 MB checkpoint is killed at random moments; the file
    at the path is each time one complete version, never a mixture or a torn write."""
    size = 500_000  # 4 MB of float64
    path = tmp_path / "ckpt.npz"
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(4):
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(size)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert writer.stdout is not None
            first = writer.stdout.readline()  # one version is complete
            assert first.strip(), "the writer died before writing anything"
            time.sleep(rng.uniform(0.0, 0.15))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        seen.add(_check_version(adadelta.load(path), size))
        strays = [name for name in _files(tmp_path) if name != "ckpt.npz"]
        assert all(name.startswith(".ckpt.npz.") and name.endswith(".tmp") for name in strays)
        adadelta.save(
            tmp_path / "ckpt.npz",
            {"version": 1, "data": np.arange(size) + 1.0, "tail": [np.full(7, 1)]},
        )
        assert _files(tmp_path) == ["ckpt.npz"]  # the next save removed the dead writer's file
    assert seen
