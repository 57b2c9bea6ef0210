"""Safe loading: code-running pickles are refused (and do not run), broken files give clear errors."""

from __future__ import annotations

import datetime
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from snl_video.weights.errors import CheckpointReadError, UnsafeCheckpointError
from snl_video.weights.io import RestrictedUnpickler, atomic_torch_save, read_checkpoint_file

from .layouts import caffe2_blobs, dump_py2_style


class _WouldRunCode:
    """Unpickling this calls os.system, which creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a refused pickle still ran code"


def test_torch_file_with_code_running_global_is_refused(tmp_path, marker):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "x": _WouldRunCode(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint_file(path)
    msg = str(info.value)
    assert "system" in msg and "allow_unsafe_pickle=True" in msg and "--allow-unsafe-pickle" in msg
    assert str(path) in msg


def test_plain_pickle_with_code_running_global_is_refused(tmp_path, marker):
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": {"conv1_w": np.zeros(2)}, "x": _WouldRunCode(marker)}, f, protocol=2)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        read_checkpoint_file(path)


def test_restricted_unpickler_refuses_builtins_eval(tmp_path, marker):
    # A hand-written protocol-0 pickle calling builtins.eval, the classic payload shape.
    payload = f"cbuiltins\neval\n(V__import__('os').system('touch {marker}')\ntR.".encode()
    path = tmp_path / "eval.pkl"
    path.write_bytes(payload)
    with pytest.raises(UnsafeCheckpointError, match="builtins.eval"):
        read_checkpoint_file(path)


def test_opt_in_loads_a_trusted_file_with_other_globals(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": {"date": datetime.date(2021, 10, 1)}}, path)
    with pytest.raises(UnsafeCheckpointError, match="datetime"):
        read_checkpoint_file(path)
    obj = read_checkpoint_file(path, allow_unsafe_pickle=True)
    assert obj["meta"]["date"] == datetime.date(2021, 10, 1)
    assert torch.equal(obj["state_dict"]["w"], torch.ones(2))


def test_caffe2_python2_pickle_loads_through_the_restricted_unpickler(tmp_path):
    blobs = caffe2_blobs()
    path = tmp_path / "I3D_8x8_R50.pkl"
    dump_py2_style({"blobs": blobs}, path)
    raw = path.read_bytes()
    assert b"cnumpy.core.multiarray\n_reconstruct" in raw  # numpy-1 global names, as Python 2 wrote them
    with pytest.raises(UnicodeDecodeError):  # the default ASCII decoding cannot read it
        pickle.loads(raw)
    obj = read_checkpoint_file(path)
    assert set(obj["blobs"]) == set(blobs)
    for name, value in blobs.items():
        np.testing.assert_array_equal(obj["blobs"][name], value)
        assert obj["blobs"][name].dtype == value.dtype


def test_restricted_unpickler_allows_only_its_list():
    import io

    unpickler = RestrictedUnpickler(io.BytesIO(b""))
    assert unpickler.find_class("numpy", "ndarray") is np.ndarray
    for module, name in [("os", "system"), ("builtins", "eval"), ("subprocess", "Popen"), ("torch", "load")]:
        with pytest.raises(UnsafeCheckpointError):
            unpickler.find_class(module, name)


def test_legacy_torch_format_still_loads(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save({"state_dict": {"w": torch.arange(4.0)}}, path, _use_new_zipfile_serialization=False)
    assert torch.equal(read_checkpoint_file(path)["state_dict"]["w"], torch.arange(4.0))


def test_truncated_zip_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "r3d.pth"
    torch.save({"w": torch.randn(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointReadError) as info:
        read_checkpoint_file(path)
    assert str(path) in str(info.value) and "truncated or corrupt" in str(info.value)


def test_truncated_pickle_is_a_clear_error(tmp_path):
    path = tmp_path / "blobs.pkl"
    dump_py2_style({"blobs": caffe2_blobs()}, path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointReadError, match="truncated, corrupt"):
        read_checkpoint_file(path)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "empty"),
        (b"<html>404 Not Found</html>", "not a readable checkpoint"),
        (bytes(range(256)) * 4, "not a readable checkpoint"),
    ],
)
def test_non_checkpoint_files_name_the_file_and_what_was_found(tmp_path, content, expected):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointReadError) as info:
        read_checkpoint_file(path)
    assert expected in str(info.value) and str(path) in str(info.value)
    if content:
        assert repr(content[:16]) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointReadError, match="does not exist"):
        read_checkpoint_file(tmp_path / "nope.pth")


def test_atomic_save_leaves_no_temporary_file(tmp_path):
    path = atomic_torch_save({"w": torch.ones(1)}, tmp_path / "sub" / "x.pth")
    assert path.exists() and [p.name for p in path.parent.iterdir()] == ["x.pth"]

    class Boom:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        atomic_torch_save({"w": Boom()}, path)
    assert [p.name for p in path.parent.iterdir()] == ["x.pth"]
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(1))


def test_opt_in_also_covers_plain_pickles(tmp_path):
    path = tmp_path / "trusted.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": {"conv1_w": np.ones(2)}, "created": datetime.date(2018, 1, 1)}, f, protocol=2)
    with pytest.raises(UnsafeCheckpointError, match="datetime.date"):
        read_checkpoint_file(path)
    obj = read_checkpoint_file(path, allow_unsafe_pickle=True)
    assert obj["created"] == datetime.date(2018, 1, 1)
    np.testing.assert_array_equal(obj["blobs"]["conv1_w"], np.ones(2))


def test_corrupted_bytes_inside_a_zip_checkpoint_are_reported(tmp_path):
    path = tmp_path / "flipped.pth"
    torch.save({"w": torch.randn(4096)}, path)
    data = bytearray(path.read_bytes())
    # Overwrite the zip's central directory region (end of file) with garbage.
    data[-200:-22] = b"\xff" * 178
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointReadError, match="truncated or corrupt"):
        read_checkpoint_file(path)


def test_the_old_name_load_checkpoint_still_reads_but_warns(tmp_path):
    import snl_video.weights as weights

    path = tmp_path / "plain.pth"
    torch.save({"w": torch.arange(3.0)}, path)
    with pytest.warns(DeprecationWarning, match="read_checkpoint_file"):
        obj = weights.load_checkpoint(path)
    assert torch.equal(obj["w"], torch.arange(3.0))
