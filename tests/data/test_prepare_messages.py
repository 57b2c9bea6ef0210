"""prepare's messages name the real problem; no lock file left."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from snl_video.cli import main
from snl_video.data.prepare import MissingVideosError, PrepareSettings, prepare_ucf101


def _classes(tree: Path) -> list[str]:
    return sorted(p.name for p in (tree / "UCF-101").iterdir() if p.is_dir())


def test_videos_one_level_too_high_names_the_folder_one_level_down(tree, tmp_path):
    with pytest.raises(MissingVideosError) as info:
        prepare_ucf101(tree, tree / "ucfTrainTestlist", tmp_path / "out", progress=False)
    text = str(info.value)
    assert f"the class folders seem to be one level down: use --videos {tree / 'UCF-101'}" in text
    assert len(text.splitlines()) == 1  # old: every listed file, one per line
    # and one level too low (a class folder)
    one_class = tree / "UCF-101" / _classes(tree)[0]
    with pytest.raises(MissingVideosError, match=f"seems to be a class folder: use --videos {tree / 'UCF-101'}"):
        prepare_ucf101(one_class, tree / "ucfTrainTestlist", tmp_path / "out", progress=False)


def test_a_missing_class_folder_is_one_line(tree, tmp_path):
    gone = _classes(tree)[1]
    shutil.rmtree(tree / "UCF-101" / gone)
    with pytest.raises(MissingVideosError) as info:
        prepare_ucf101(tree / "UCF-101", tree / "ucfTrainTestlist", tmp_path / "out", progress=False)
    lines = [line.strip() for line in str(info.value).splitlines()]
    assert f"{gone}/: the whole class folder is missing (4 listed videos)" in lines
    assert not any(line.startswith(f"{gone}/v_") for line in lines)  # old: one line per file


def test_allow_missing_with_nothing_prepared_is_an_error(tree, tmp_path):
    empty = tmp_path / "empty_videos"
    empty.mkdir()
    with pytest.raises(MissingVideosError, match="none of the 12 listed videos is in --videos"):
        prepare_ucf101(empty, tree / "ucfTrainTestlist", tmp_path / "out", allow_missing=True, progress=False)


def test_a_settings_mismatch_names_the_key_and_no_lock_file_is_left(tree, tmp_path):
    out = tmp_path / "out"
    prepare_ucf101(tree / "UCF-101", tree / "ucfTrainTestlist", out, progress=False,
                   settings=PrepareSettings(short_side=32, storage="npy"))
    assert not (out / ".snl_video.lock").exists()
    with pytest.raises(ValueError, match=r"short_side 32 \(prepared\) vs 48 \(now\).*--short-side 32"):
        prepare_ucf101(tree / "UCF-101", tree / "ucfTrainTestlist", out, progress=False,
                       settings=PrepareSettings(short_side=48, storage="npy"))
    assert not (out / ".snl_video.lock").exists()


def test_cli_prepare_with_videos_too_high_is_one_line(tree, tmp_path, capsys):
    args = ["prepare", "ucf101", "--videos", str(tree), "--splits", str(tree / "ucfTrainTestlist"),
            "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "one level down" in err
