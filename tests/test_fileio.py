"""Atomic writes and the errors of a write that fails: a file is replaced whole or not at all,
with the mode a plain ``open()`` would give it, and a full disk or an unwritable folder is a
one-line :class:`OutputWriteError` that keeps the ``OSError`` contract.

The faults of whole runs (a full disk in the middle of training, SIGKILL while a checkpoint is
written) are in ``tests/faults/``; these are the functions themselves."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from snl_video.fileio import (
    OutputWriteError,
    append_line,
    atomic_write,
    atomic_write_text,
    current_umask,
    ensure_writable_dir,
    os_error_in,
    remove_stale_temporaries,
    write_error,
)


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_atomic_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    assert atomic_write_text(path, "first") == path  # the folder is created
    atomic_write(path, lambda f: (f.write(b"sec"), f.write(b"ond")))
    assert path.read_text() == "second" and leftovers(path.parent) == []


def test_a_writer_that_fails_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "kept")

    def half_then_bug(f):
        f.write(b"partial")
        raise KeyError("a bug in the writer")

    with pytest.raises(KeyError):  # not a user-fixable OSError: raised as it is, with its traceback
        atomic_write(path, half_then_bug)
    assert path.read_text() == "kept" and leftovers(tmp_path) == []


@pytest.mark.parametrize("had_file, kept", [(True, "the previous file is kept"), (False, "no partial file was left")])
def test_a_full_disk_is_an_output_write_error_that_is_still_an_oserror(tmp_path, had_file, kept):
    path = tmp_path / "a.txt"
    if had_file:
        atomic_write_text(path, "old")

    def full(f):
        f.write(b"x")
        raise RuntimeError("torch.save failed") from OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputWriteError) as info:
        atomic_write(path, full)
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    message = str(info.value)
    assert str(path) in message and "ENOSPC" in message and kept in message and "free space" in message
    assert path.exists() == had_file and leftovers(tmp_path) == []


def test_the_file_gets_the_mode_of_a_plain_open(tmp_path):
    previous = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        atomic_write_text(tmp_path / "a.txt", "x")
        with open(tmp_path / "b.txt", "w") as f:  # the reference: what open() gives under this umask
            f.write("x")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "a.txt").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o640


def test_os_error_in_follows_causes_and_contexts_to_a_user_fixable_error():
    def chained(cause: BaseException) -> RuntimeError:
        try:
            try:
                raise cause
            except OSError:
                raise ValueError("while handling it")  # the OSError is the __context__
        except ValueError as inner:
            outer = RuntimeError("outer")
            outer.__cause__ = inner
            return outer

    full = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert os_error_in(chained(full)) is full
    assert os_error_in(chained(OSError(errno.EINVAL, "Invalid argument"))) is None  # a bug, not the user's to fix
    assert os_error_in(ValueError("no OSError at all")) is None


def test_write_error_names_the_path_the_errno_and_the_fix(tmp_path):
    err = write_error(tmp_path / "x.csv", PermissionError(errno.EACCES, "Permission denied"), kept="rows kept")
    assert err.errno == errno.EACCES
    assert str(err) == (f"cannot write {tmp_path / 'x.csv'}: Permission denied (EACCES); rows kept: "
                        "choose another output folder, or make this one writable")


def test_ensure_writable_dir_returns_what_it_created_outermost_first(tmp_path):
    assert ensure_writable_dir(tmp_path / "a" / "b") == [tmp_path / "a", tmp_path / "a" / "b"]
    assert ensure_writable_dir(tmp_path / "a" / "b") == []  # already there
    assert os.listdir(tmp_path / "a" / "b") == []  # the write check left nothing behind


def test_a_file_in_the_way_of_an_output_folder_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputWriteError, match="is a file, not a folder"):
        ensure_writable_dir(tmp_path / "f")
    with pytest.raises(OutputWriteError, match="a file is in the way"):
        ensure_writable_dir(tmp_path / "f" / "below")


def test_remove_stale_temporaries_removes_only_atomic_writes_leftovers_in_the_folder(tmp_path):
    for name in (".a.txt.k3j2.tmp", ".b.pt.x9.tmp", "keep.tmp", ".hidden", "a.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".c.txt.q1.tmp").write_text("")
    assert remove_stale_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "a.txt", "keep.tmp", "sub"]
    assert (tmp_path / "sub" / ".c.txt.q1.tmp").exists()  # not below the folder
    assert remove_stale_temporaries(tmp_path / "missing") == 0


def test_append_line_adds_whole_lines(tmp_path):
    path = tmp_path / "log.csv"
    append_line(path, "a,b")
    append_line(path, "1,2")
    assert path.read_text() == "a,b\n1,2\n"
