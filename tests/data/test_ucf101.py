from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from snl_video.data.ucf101 import SplitFileError, read_class_index, read_split, read_splits

CLASS_IND = ["1 ApplyEyeMakeup", "2 HandstandPushups", "3 YoYo"]
TRAIN1 = [
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1",
    "HandstandPushups/v_HandStandPushups_g08_c01.avi 2",
    "YoYo/v_YoYo_g25_c05.avi 3",
]
TEST1 = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "HandstandPushups/v_HandStandPushups_g01_c02.avi"]


def write_lists(root: Path, *, class_ind=CLASS_IND, train=TRAIN1, test=TEST1, eol="\r\n", final_eol=True, split=1) -> Path:
    def dump(name, lines):
        text = eol.join(lines) + (eol if final_eol else "")
        (root / name).write_bytes(text.encode())

    dump("classInd.txt", class_ind)
    dump(f"trainlist0{split}.txt", train)
    dump(f"testlist0{split}.txt", test)
    return root


def test_official_format_parses_to_zero_based_table(tmp_path):
    frame = read_split(write_lists(tmp_path), 1)
    expected = pd.DataFrame(
        {
            "path": [
                "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
                "HandstandPushups/v_HandStandPushups_g08_c01.avi",
                "YoYo/v_YoYo_g25_c05.avi",
                "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
                "HandstandPushups/v_HandStandPushups_g01_c02.avi",
            ],
            "label": [0, 1, 2, 0, 1],
            "class_name": ["ApplyEyeMakeup", "HandstandPushups", "YoYo", "ApplyEyeMakeup", "HandstandPushups"],
            "subset": ["train", "train", "train", "test", "test"],
        }
    )
    pd.testing.assert_frame_equal(frame, expected)


@pytest.mark.parametrize("eol,final_eol", [("\n", True), ("\r\n", False), ("\n", False)])
def test_line_endings_do_not_matter(tmp_path, eol, final_eol):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = read_split(write_lists(tmp_path / "a"), 1)
    b = read_split(write_lists(tmp_path / "b", eol=eol, final_eol=final_eol), 1)
    pd.testing.assert_frame_equal(a, b)
    assert not any("\r" in p for p in b["path"])


def test_handstand_quirk_label_comes_from_folder(tmp_path):
    frame = read_split(write_lists(tmp_path), 1)
    row = frame[frame["path"].str.contains("HandStandPushups_g01")].iloc[0]
    # the file name says HandStandPushups, which is NOT in classInd; the folder decides
    assert row["class_name"] == "HandstandPushups" and row["label"] == 1


def test_class_index_order(tmp_path):
    write_lists(tmp_path, class_ind=["2 B", "1 A", "3 C"])
    assert read_class_index(tmp_path) == ["A", "B", "C"]


def _error(tmp_path, **kwargs) -> str:
    write_lists(tmp_path, **kwargs)
    with pytest.raises(SplitFileError) as info:
        read_split(tmp_path, 1)
    return str(info.value)


def test_unknown_class_names_file_and_line(tmp_path):
    msg = _error(tmp_path, test=TEST1 + ["Juggling/v_Juggling_g01_c01.avi"])
    assert "testlist01.txt:3" in msg and "Juggling" in msg


def test_duplicate_within_a_list(tmp_path):
    msg = _error(tmp_path, train=TRAIN1 + [TRAIN1[0]])
    assert "trainlist01.txt:4" in msg and "listed twice" in msg and "trainlist01.txt:1" in msg


def test_duplicate_across_train_and_test(tmp_path):
    msg = _error(tmp_path, test=TEST1 + [TRAIN1[2].split()[0]])
    assert "testlist01.txt:3" in msg and "listed twice" in msg


@pytest.mark.parametrize(
    "train,needle",
    [
        (TRAIN1[:1] + ["HandstandPushups/v_HandStandPushups_g08_c01.avi"], "trainlist01.txt:2"),  # no label
        (TRAIN1[:1] + ["v_YoYo_g25_c05.avi 3"], "trainlist01.txt:2"),  # no class folder
        (TRAIN1[:2] + ["YoYo/v_YoYo_g25_c05.avi three"], "trainlist01.txt:3"),  # label not an int
        (TRAIN1[:2] + ["YoYo/v_YoYo_g25_c05.avi 4"], "trainlist01.txt:3"),  # label out of range
        (TRAIN1[:2] + ["YoYo/v_YoYo_g25_c05.avi 0"], "trainlist01.txt:3"),  # 0 is not a 1-based label
        (TRAIN1[:2] + ["YoYo/v_YoYo_g25_c05.avi 1"], "disagrees"),  # label of another class
        (TRAIN1[:2] + ["YoYo/v_YoYo_g25_c05.mp4 3"], "trainlist01.txt:3"),
    ],
)
def test_malformed_train_lines(tmp_path, train, needle):
    assert needle in _error(tmp_path, train=train)


def test_malformed_class_index(tmp_path):
    assert "classInd.txt:2" in _error(tmp_path, class_ind=["1 A", "2"])
    assert "missing [2]" in _error(tmp_path, class_ind=["1 ApplyEyeMakeup", "3 HandstandPushups"])
    assert "duplicate class name" in _error(tmp_path, class_ind=["1 A", "2 A"])


def test_missing_file_and_bad_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="classInd.txt"):
        read_split(tmp_path, 1)
    write_lists(tmp_path)
    with pytest.raises(ValueError, match="split must be 1, 2 or 3"):
        read_split(tmp_path, 4)


def test_read_splits_stacks_with_split_column(tmp_path):
    write_lists(tmp_path)
    write_lists(tmp_path, split=2, train=TRAIN1[1:], test=TEST1 + [TRAIN1[0].split()[0]])
    both = read_splits(tmp_path, [1, 2])
    assert list(both["split"].value_counts().sort_index()) == [5, 5]
    row = both[(both["split"] == 2) & (both["path"] == TRAIN1[0].split()[0])].iloc[0]
    assert row["subset"] == "test" and row["label"] == 0


def test_synthetic_split_files_are_official(synthetic_tree):
    lists = synthetic_tree / "ucfTrainTestlist"
    for name in ["classInd.txt"] + [f"{s}list0{i}.txt" for s in ("train", "test") for i in (1, 2, 3)]:
        raw = (lists / name).read_bytes()
        assert raw.endswith(b"\r\n") and raw.count(b"\r\n") == raw.count(b"\n"), name
    for split in (1, 2, 3):
        frame = read_split(lists, split)
        assert len(frame) == 12 and frame["path"].is_unique
        groups = frame["path"].str.extract(r"_g(\d\d)_c\d\d\.avi$")[0].astype(int)
        held_out = set(range(7 * (split - 1) + 1, 7 * split + 1))
        assert set(groups[frame["subset"] == "test"]) <= held_out
        assert not set(groups[frame["subset"] == "train"]) & held_out
