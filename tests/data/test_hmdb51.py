"""HMDB-51: the 153 official split files, the 70/30 check before decoding, labels by sorted names, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from snl_video.cli import main
from snl_video.data.datasets import prepared_dataset
from snl_video.data.hmdb51 import hmdb51_group, read_hmdb51_split
from snl_video.data.prepare import MissingVideosError, PrepareSettings, prepare_hmdb51
from snl_video.data.sources import hmdb51_manifest
from snl_video.data.synthetic import make_synthetic_hmdb51
from snl_video.data.ucf101 import SplitFileError

# The 51 HMDB-51 classes as the official archive names them.
HMDB51_CLASSES = (
    "brush_hair cartwheel catch chew clap climb climb_stairs dive draw_sword dribble drink eat fall_floor fencing "
    "flic_flac golf handstand hit hug jump kick kick_ball kiss laugh pick pour pullup punch push pushup ride_bike "
    "ride_horse run shake_hands shoot_ball shoot_bow shoot_gun sit situp smile smoke somersault stand swing_baseball "
    "sword sword_exercise talk throw turn walk wave"
).split()


def _official_like(root: Path, *, classes=HMDB51_CLASSES, train=70, test=30, unused=3, crlf_every=7) -> Path:
    """153 split files in the official layout: every class lists its videos with 1/2/0 and a
    trailing space; every 7th file has CRLF endings. Held-out videos rotate over the splits."""
    root.mkdir(parents=True, exist_ok=True)
    n = train + test + unused
    for c_index, cls in enumerate(classes):
        files = [f"Title{j:03d}_{cls}_u_nm_np1_fr_goo_{j % 2}.avi" for j in range(n)]
        for split in (1, 2, 3):
            offset = (split - 1) * test
            rotated = files[offset:] + files[:offset]
            flag = {f: 2 for f in rotated[:test]} | {f: 1 for f in rotated[test:test + train]}
            eol = "\r\n" if (c_index * 3 + split) % crlf_every == 0 else "\n"
            text = "".join(f"{f} {flag.get(f, 0)} {eol}" for f in files)
            (root / f"{cls}_test_split{split}.txt").write_bytes(text.encode())
    return root


@pytest.fixture(scope="module")
def official_splits(tmp_path_factory) -> Path:
    return _official_like(tmp_path_factory.mktemp("hmdb") / "testTrainMulti_7030_splits")


def test_official_layout_gives_3570_train_and_1530_test_per_split(official_splits):
    assert len(list(official_splits.glob("*_test_split*.txt"))) == 153
    manifest = hmdb51_manifest(official_splits)
    for split in ("1", "2", "3"):
        counts = manifest[manifest["split"] == split]["subset"].value_counts().to_dict()
        assert counts == {"train": 3570, "test": 1530}
    # id-0 lines are in no subset of their split; over the three rotated splits every listed video is used once
    assert manifest["path"].nunique() == 51 * 103
    assert len(manifest) == 3 * 5100


def test_labels_are_sorted_names_zero_based(official_splits):
    table = read_hmdb51_split(official_splits, 1)
    labels = table.drop_duplicates("class_name").set_index("class_name")["label"].to_dict()
    # string order of the names: climb (5) before climb_stairs (6), sword (44) before sword_exercise (45)
    assert labels["brush_hair"] == 0 and labels["cartwheel"] == 1
    assert labels["climb"] == 5 and labels["climb_stairs"] == 6
    assert labels["sword"] == 44 and labels["sword_exercise"] == 45
    assert labels["wave"] == 50 and len(labels) == 51
    first = table.iloc[0]
    assert first["path"].startswith("brush_hair/Title") and first["path"].endswith(".avi")


def test_unbalanced_class_fails_before_any_video_is_looked_at(tmp_path):
    splits = _official_like(tmp_path / "splits")
    bad = splits / "kiss_test_split2.txt"
    lines = bad.read_text().splitlines()
    swapped = next(i for i, line in enumerate(lines) if line.split()[1] == "1")
    lines[swapped] = lines[swapped].split()[0] + " 2 "  # 69 train / 31 test
    bad.write_text("\n".join(lines) + "\n")
    videos = tmp_path / "videos"
    videos.mkdir()  # empty: a check that looked for videos first would report them missing
    with pytest.raises(SplitFileError, match=r"kiss_test_split2.txt: 69 train / 31 test videos, expected 70 / 30"):
        prepare_hmdb51(videos, splits, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    # the other splits are fine; split 2 alone fails
    assert len(read_hmdb51_split(splits, 1)) == 5100


def test_fifty_classes_is_not_the_official_set(tmp_path):
    splits = _official_like(tmp_path / "s", classes=HMDB51_CLASSES[:50])
    with pytest.raises(SplitFileError, match="has 50 classes, the official HMDB-51 has 51"):
        read_hmdb51_split(splits, 1)
    assert len(read_hmdb51_split(splits, 1, per_class=None)) == 5000


@pytest.mark.parametrize("line, needle", [
    ("a_x_u_nm_np1_fr_goo_0.avi 3 ", "id '3' is not 0"),
    ("a_x_u_nm_np1_fr_goo_0.avi", "expected '<video>.avi <0|1|2>'"),
    ("sub/a.avi 1", "expected a file name"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, needle):
    (tmp_path / "x_test_split1.txt").write_text(f"ok_x_u_nm_np1_fr_goo_0.avi 1 \n{line}\n")
    with pytest.raises(SplitFileError, match=rf"x_test_split1.txt:2: .*{needle}"):
        read_hmdb51_split(tmp_path, 1, per_class=None)


def test_duplicate_and_missing_class_file(tmp_path):
    (tmp_path / "x_test_split1.txt").write_text("v_1.avi 1\nv_2.avi 2\nv_1.avi 2\n")
    with pytest.raises(SplitFileError, match=r"x_test_split1.txt:3: v_1.avi is listed twice \(first on line 1\)"):
        read_hmdb51_split(tmp_path, 1, per_class=None)
    (tmp_path / "x_test_split1.txt").write_text("v_1.avi 1\n")
    (tmp_path / "y_test_split2.txt").write_text("w_1.avi 1\n")
    with pytest.raises(FileNotFoundError, match=r"split 1 has no file for classes \['y'\]"):
        read_hmdb51_split(tmp_path, 1, per_class=None)


def test_source_video_groups():
    assert hmdb51_group("brush_hair", "April_09_brush_hair_u_nm_np1_ba_goo_0.avi") == "April_09"
    assert hmdb51_group("climb", "Rock_climbing_climb_f_cm_np1_ba_med_12.avi") == "Rock_climbing"
    assert hmdb51_group("kiss", "odd_name_3.avi") == "odd_name"


def test_synthetic_hmdb51_end_to_end_prepare_and_dataset(tmp_path):
    raw = make_synthetic_hmdb51(tmp_path / "raw", num_classes=2, train_per_class=2, test_per_class=2,
                                unused_per_class=0, clips_per_source=2, video_frames=8, frame_jitter=0, progress=False)
    splits = raw / "testTrainMulti_7030_splits"
    assert sorted(p.name for p in splits.iterdir()) == [
        f"{c}_test_split{k}.txt" for c in ("move_left", "move_right") for k in (1, 2, 3)]
    line = (splits / "move_right_test_split1.txt").read_text().splitlines()[0]
    assert line.endswith(" ") and line.split()[1] in ("1", "2")
    # the official check refuses it; stated counts accept it
    with pytest.raises(SplitFileError, match="expected 70 / 30"):
        prepare_hmdb51(raw / "hmdb51_org", splits, tmp_path / "out", progress=False)
    code = main(["prepare", "hmdb51", "--videos", str(raw / "hmdb51_org"), "--splits", str(splits), "--per-class",
                 "2,2", "--out", str(tmp_path / "out"), "--short-side", "24", "--clip-len", "4", "--no-progress"])
    assert code == 0
    out = tmp_path / "out"
    assert json.loads((out / "dataset.json").read_text()) == {"dataset": "hmdb51"}
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    assert len(index) == 8 and set(index["status"]) == {"ok"}
    # labels: move_left < move_right; source groups keep both clips of a source on one side in every split
    assert index.groupby("class_name")["label"].first().to_dict() == {"move_left": 0, "move_right": 1}
    for split in (1, 2, 3):
        assert index[f"subset_{split}"].value_counts().to_dict() == {"train": 4, "test": 4}
        assert (index.groupby(["class_name", "group"])[f"subset_{split}"].nunique() == 1).all()
    test = prepared_dataset(out, split=2, subset="test", mode="clip", num_frames=4, dataset="hmdb51")
    assert len(test) == 4 and sorted(test.labels) == [0, 0, 1, 1]
    assert test[0]["clip"].shape == (4, 24, 32, 3)
    with pytest.raises(ValueError, match="holds a prepared 'hmdb51' dataset but the recipe names data.dataset='ucf101'"):
        prepared_dataset(out, split=1, subset="train", dataset="ucf101")


def test_missing_videos_are_listed(tmp_path):
    raw = make_synthetic_hmdb51(tmp_path / "raw", num_classes=1, train_per_class=2, test_per_class=2,
                                unused_per_class=0, video_frames=6, frame_jitter=0, progress=False)
    victim = next((raw / "hmdb51_org" / "move_right").iterdir())
    victim.unlink()
    with pytest.raises(MissingVideosError, match=victim.name):
        prepare_hmdb51(raw / "hmdb51_org", raw / "testTrainMulti_7030_splits", tmp_path / "out", per_class=(2, 2),
                       settings=PrepareSettings(short_side=24, storage="npy"), progress=False)


def test_video_names_with_spaces_and_odd_characters_are_read_whole(tmp_path):
    """HMDB titles carry '#', '(', '!', '&' and spaces; the id is the last field, the name all before it."""
    odd = "#Odd_(Must See!)_&_x_f_nm_np1_fr_goo_0.avi"
    (tmp_path / "x_test_split1.txt").write_text(f"plain_x_f_nm_np1_fr_goo_0.avi 1 \n{odd} 2 \r\nskip me_x_0.avi 0\n")
    frame = read_hmdb51_split(tmp_path, 1, per_class=None)
    assert frame["path"].tolist() == ["x/plain_x_f_nm_np1_fr_goo_0.avi", f"x/{odd}"]
    assert frame["subset"].tolist() == ["train", "test"]
    assert frame["group"].tolist() == ["plain", "#Odd_(Must See!)_&"]


def test_eval_of_a_split_1_checkpoint_on_split_2_says_the_splits_share_videos(tmp_path, capsys):
    """The official splits re-partition one set of videos: split 2's test holds split 1's training
    videos. The refusal names that cause (and the split to use), not a re-prepared folder."""
    from snl_video.engine.train import train

    from ..helpers import tiny_config

    raw = make_synthetic_hmdb51(tmp_path / "raw", num_classes=2, train_per_class=2, test_per_class=2,
                                unused_per_class=0, clips_per_source=2, video_frames=8, frame_jitter=0, progress=False)
    out = tmp_path / "prepared"
    assert main(["prepare", "hmdb51", "--videos", str(raw / "hmdb51_org"), "--splits",
                 str(raw / "testTrainMulti_7030_splits"), "--per-class", "2,2", "--out", str(out), "--short-side",
                 "40", "--clip-len", "6", "--no-progress"]) == 0
    cfg = tiny_config(out, tmp_path / "run", data={"dataset": "hmdb51", "split": 1}, schedule={"epochs": 1},
                      model={"num_classes": 2}, nonlocal_blocks=None, runtime={"deterministic": False})
    ckpt = train(cfg).last_checkpoint
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(ckpt), "data.split=2", "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert "it was trained on split 1" in err and "data.split=1" in err and "re-prepared" not in err
    assert not (tmp_path / "ev").exists()
