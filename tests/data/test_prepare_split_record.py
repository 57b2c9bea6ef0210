"""Every prepare setting that decides which video lands in which subset is recorded, and a
rerun that would change it is refused naming the setting, with nothing overwritten."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from snl_video.cli import main
from snl_video.data.prepare import prepare_ucf101
from snl_video.data.synthetic import make_synthetic_folder


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    return make_synthetic_folder(tmp_path_factory.mktemp("split_record") / "raw", num_classes=2, videos_per_class=6,
                                 clips_per_group=2, video_frames=6, frame_jitter=0, progress=False)


def _prepare_folder(videos: Path, out: Path, *extra: str) -> int:
    return main(["prepare", "folder", "--videos", str(videos), "--group-regex", "_g([0-9]+)_", "--out", str(out),
                 "--short-side", "24", "--clip-len", "4", "--no-progress", *extra])


@pytest.mark.parametrize(("flag", "first", "second"), [("--test-fraction", "0.3", "0.5"), ("--seed", "0", "7"),
                                                      ("--val-fraction", "0", "0.3")])
def test_a_changed_split_option_is_refused_naming_it_and_nothing_is_rewritten(videos, tmp_path, capsys, flag, first,
                                                                             second):
    out = tmp_path / "out"
    assert _prepare_folder(videos, out, flag, first) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert _prepare_folder(videos, out, flag, second) == 2
    err = capsys.readouterr().err
    value = {"--test-fraction": (0.3, 0.5), "--seed": (0, 7), "--val-fraction": (0.0, 0.3)}[flag]
    assert f"{flag} {value[0]!r} (prepared) vs {value[1]!r} (now)" in err and "use a new --out" in err
    assert _snapshot(out) == before
    assert _prepare_folder(videos, out, flag, first) == 0  # the same settings: a rerun is fine
    assert _snapshot(out) == before


def test_the_group_rule_is_recorded_too(videos, tmp_path, capsys):
    out = tmp_path / "out"
    assert _prepare_folder(videos, out) == 0
    record = json.loads((out / "settings.json").read_text())["splits"]["1"]
    assert record["options"]["--group-regex"] == "_g([0-9]+)_" and len(record["assignment"]) == 64
    before = _snapshot(out)
    code = main(["prepare", "folder", "--videos", str(videos), "--out", str(out), "--short-side", "24", "--clip-len",
                 "4", "--no-progress"])  # no --group-regex: every video its own group, another draw
    err = capsys.readouterr().err  # (the draw is seeded: with this tree it differs)
    assert code == 2 and "--group-regex '_g([0-9]+)_' (prepared) vs None (now)" in err
    assert _snapshot(out) == before


def test_changed_split_files_are_refused_naming_them(synthetic_tree, tmp_path):
    tree = tmp_path / "src"
    shutil.copytree(synthetic_tree, tree)
    out = tmp_path / "out"
    prepare_ucf101(tree / "UCF-101", tree / "ucfTrainTestlist", out, splits=[1], progress=False)
    before = _snapshot(out)
    # move one training video into the test list
    train, test = tree / "ucfTrainTestlist" / "trainlist01.txt", tree / "ucfTrainTestlist" / "testlist01.txt"
    lines = train.read_text().splitlines()
    train.write_text("\n".join(lines[1:]) + "\n")
    test.write_text(test.read_text().rstrip("\n") + "\n" + lines[0].split()[0] + "\n")
    with pytest.raises(ValueError, match=r"another split 1: --splits \(content\) '[0-9a-f]{64}' \(prepared\) vs"):
        prepare_ucf101(tree / "UCF-101", tree / "ucfTrainTestlist", out, splits=[1], progress=False)
    assert _snapshot(out) == before


def test_a_folder_prepared_before_splits_were_recorded_is_checked_against_its_index(videos, tmp_path, capsys):
    out = tmp_path / "out"
    assert _prepare_folder(videos, out, "--test-fraction", "0.3") == 0
    settings = json.loads((out / "settings.json").read_text())
    del settings["splits"]
    (out / "settings.json").write_text(json.dumps(settings))
    before = _snapshot(out)
    capsys.readouterr()
    assert _prepare_folder(videos, out, "--test-fraction", "0.5") == 2
    assert "video(s) would change subset" in capsys.readouterr().err
    assert _snapshot(out) == before
    assert _prepare_folder(videos, out, "--test-fraction", "0.3") == 0
    assert "splits" in json.loads((out / "settings.json").read_text())
