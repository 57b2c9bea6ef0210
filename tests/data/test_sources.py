"""Dataset sources: the registry, folder and list manifests, group-aware draws, old prepared directories."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from snl_video.cli import main
from snl_video.config import config_from_dict
from snl_video.data.datasets import prepared_dataset, split_rows
from snl_video.data.prepare import MissingVideosError, PrepareSettings, prepare_manifest, prepare_ucf101
from snl_video.data.sources import (MANIFEST_COLUMNS, ListFileError, TooFewVideosError, folder_manifest, get_source,
                                    list_manifest, list_sources, ucf101_manifest)
from snl_video.data.splitting import draw_groups
from snl_video.data.synthetic import make_synthetic_folder, make_synthetic_list


def _touch_tree(root: Path, spec: dict[str, list[str]]) -> Path:
    for cls, files in spec.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for f in files:
            (root / cls / f).write_bytes(b"x")
    return root


def test_registry_names_are_the_config_choices():
    assert list_sources() == ["folder", "hmdb51", "list", "ucf101"]
    for name in list_sources():
        assert config_from_dict({"data": {"dataset": name}}).data.dataset == name
    with pytest.raises(ValueError, match="unknown dataset 'kinetics'; valid datasets: folder, hmdb51, list, ucf101"):
        get_source("kinetics")


def test_ucf101_manifest_has_the_common_columns_and_groups(synthetic_tree):
    table = ucf101_manifest(synthetic_tree / "ucfTrainTestlist", [1, 2])
    assert list(table.columns) == MANIFEST_COLUMNS
    assert set(table["split"]) == {"1", "2"}
    row = table.iloc[0]
    assert row["group"] == "g" + row["path"].split("_g")[1][:2]


# ---------------------------------------------------------------------------------------------- folder


def _group_tree(root: Path, classes=("a", "b", "c"), groups=5, clips=3) -> Path:
    return _touch_tree(root, {c: [f"v_{c}_g{g:02d}_c{k}.mp4" for g in range(groups) for k in range(clips)]
                              for c in classes})


def test_folder_draw_is_per_class_group_aware_and_reproducible(tmp_path):
    root = _group_tree(tmp_path / "videos")
    (root / "a" / "notes.txt").write_text("not a video")
    kw = dict(val_fraction=0.2, test_fraction=0.2, group_regex=r"_g([0-9]+)_", seed=3)
    table = folder_manifest(root, **kw)
    assert list(table.columns) == MANIFEST_COLUMNS and len(table) == 45  # the .txt is not a video
    assert table.drop_duplicates("class_name").set_index("class_name")["label"].to_dict() == {"a": 0, "b": 1, "c": 2}
    # every (class, group) pair on one side, and per class one group (3 clips) in val and in test
    assert (table.groupby(["class_name", "group"])["subset"].nunique() == 1).all()
    per_class = table.groupby(["class_name", "subset"]).size().unstack()
    assert (per_class["test"] == 3).all() and (per_class["val"] == 3).all() and (per_class["train"] == 9).all()
    again = folder_manifest(root, **kw)
    pd.testing.assert_frame_equal(table, again)
    other = [folder_manifest(root, **{**kw, "seed": s})["subset"].tolist() for s in range(4, 8)]
    assert any(o != table["subset"].tolist() for o in other)
    # without a regex every file is its own group: fractions are met video by video
    single = folder_manifest(root, test_fraction=0.2, seed=0)
    assert (single.groupby("class_name")["subset"].apply(lambda s: (s == "test").sum()) == 3).all()


def test_folder_bad_inputs(tmp_path):
    root = _group_tree(tmp_path / "v", classes=("a", "b"), groups=2, clips=2)
    with pytest.raises(TooFewVideosError, match=r"class 'a' has 4 videos in 2 group\(s\); test, val and train need "
                                                r"at least 3"):
        folder_manifest(root, val_fraction=0.1, test_fraction=0.1, group_regex=r"_g([0-9]+)_")
    (root / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"class folder\(s\) \['empty'\] .* hold no videos"):
        folder_manifest(root)
    shutil.rmtree(root / "empty")
    with pytest.raises(ValueError, match="--group-regex '_g\\(' is not a valid regular expression"):
        folder_manifest(root, group_regex="_g(")
    with pytest.raises(ValueError, match=r"--val-fraction \+ --test-fraction must be < 1"):
        folder_manifest(root, val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        folder_manifest(tmp_path / "nope")


def test_folder_end_to_end_through_the_cli(tmp_path):
    videos = make_synthetic_folder(tmp_path / "raw", num_classes=2, videos_per_class=6, clips_per_group=2,
                                   video_frames=6, frame_jitter=0, progress=False)
    out = tmp_path / "out"
    assert main(["prepare", "folder", "--videos", str(videos), "--group-regex", "_g([0-9]+)_", "--test-fraction",
                 "0.3", "--val-fraction", "0.3", "--split-name", "fold_a", "--out", str(out), "--short-side", "24",
                 "--no-progress"]) == 0
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    assert index["subset_fold_a"].value_counts().to_dict() == {"train": 4, "val": 4, "test": 4}
    val = prepared_dataset(out, split="fold_a", subset="val", mode="clip", num_frames=4, dataset="folder")
    assert len(val) == 4
    with pytest.raises(ValueError, match="was prepared with its own validation subset: set data.val_fraction=0"):
        prepared_dataset(out, split="fold_a", subset="val", val_fraction=0.2, dataset="folder")


# ---------------------------------------------------------------------------------------------- list


def _lists(tmp_path: Path, train: str, test: str, **extra: str) -> dict[str, Path]:
    out = {}
    for name, text in {"train": train, "test": test, **extra}.items():
        path = tmp_path / f"{name}.txt"
        path.write_text(text)
        out[name] = path
    return out


def test_list_formats_mmaction2_slowfast_and_csv_give_one_manifest(tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text("run\njump\nswim\n")
    (tmp_path / "mm").mkdir()
    zero = _lists(tmp_path / "mm", "r/1.mp4 0\nj/1.mp4 1\r\ns/1.mp4 2\n", "r/2.mp4 0\nj/2.mp4 1\n")
    (tmp_path / "one").mkdir()
    one = _lists(tmp_path / "one", "r/1.mp4 1\nj/1.mp4 2\ns/1.mp4 3\n", "r/2.mp4 1\nj/2.mp4 2\n")
    (tmp_path / "csv").mkdir()
    names = _lists(tmp_path / "csv", "path,label\nr/1.mp4,run\nj/1.mp4,jump\ns/1.mp4,swim\n",
                   "path,label\nr/2.mp4,run\nj/2.mp4,jump\n")
    a = list_manifest(zero, root=tmp_path, classes=classes, label_base=0)
    b = list_manifest(one, root=tmp_path, classes=classes, label_base=1)
    c = list_manifest(names, root=tmp_path, classes=classes)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    assert a[["path", "class_name", "label", "subset"]].values.tolist() == [
        ["r/1.mp4", "run", 0, "train"], ["j/1.mp4", "jump", 1, "train"], ["s/1.mp4", "swim", 2, "train"],
        ["r/2.mp4", "run", 0, "test"], ["j/2.mp4", "jump", 1, "test"]]
    # without --classes: names in sorted order, integers as class_<k>
    d = list_manifest(names, root=tmp_path)
    assert d.drop_duplicates("class_name").set_index("class_name")["label"].to_dict() == {"jump": 0, "run": 1, "swim": 2}
    e = list_manifest(zero, root=tmp_path, label_base=0)
    assert sorted(e["class_name"].unique()) == ["class_0", "class_1", "class_2"]


def test_list_paths_with_spaces_work_unquoted_quoted_and_in_csv(tmp_path):
    """A listed path with spaces (a generic parse error before)."""
    classes = tmp_path / "classes.txt"
    classes.write_text("run\njump\n")
    (tmp_path / "plain").mkdir()
    plain = _lists(tmp_path / "plain", "r/My clip 1.mp4 run\nj/Über  Sprung.AVI jump\n", "r/a b.mkv run\n")
    (tmp_path / "quoted").mkdir()
    quoted = _lists(tmp_path / "quoted", '"r/My clip 1.mp4" run\n\'j/Über  Sprung.AVI\' jump\n', '"r/a b.mkv"  run\n')
    (tmp_path / "csv").mkdir()
    csv = _lists(tmp_path / "csv", 'path,label\nr/My clip 1.mp4,run\n"j/Über  Sprung.AVI",jump\n',
                 'path,label\n"r/a b.mkv", run\n')
    expected = [["r/My clip 1.mp4", "run", "train"], ["j/Über  Sprung.AVI", "jump", "train"], ["r/a b.mkv", "run", "test"]]
    for lists in (plain, quoted, csv):
        table = list_manifest(lists, root=tmp_path, classes=classes)
        assert table[["path", "class_name", "subset"]].values.tolist() == expected


@pytest.mark.parametrize("train, kwargs, error, needle", [
    ("a.mp4 run\nb.mp4 fly\n", {}, ListFileError, r"train.txt:2: unknown label 'fly'"),
    ("a.mp4 0\nb.mp4 3\n", {"label_base": 0}, ListFileError, r"train.txt:2: label 3 is out of range \(0..1"),
    ("a.mp4 1\nb.mp4 0\n", {"label_base": 1}, ListFileError, r"train.txt:2: label 0 is out of range \(1..2"),
    ("a.mp4 0\nb.mp4 1\n", {"classes": None}, ListFileError, "say whether they count from 0 or 1"),
    ("a.mp4 run\nb.mp4 jump\n", {"label_base": 0}, ListFileError, r"train.txt:1: label 'run' is not an integer"),
    ("a.mp4 run\nt.mp4 jump\n", {}, ListFileError, r"test.txt:1: t.mp4 is listed twice \(first at .*train.txt:2\)"),
    ("a.mp4 run extra\n", {}, ListFileError, r"train.txt:1: expected 'path label' or 'path,label'"),
    ("dir 40 1\n", {"label_base": 0}, ListFileError, "list extracted frames"),
    ("../a.mp4 run\n", {}, ListFileError, r"'\.\.' in a listed path"),
    ("/elsewhere/a.mp4 run\n", {}, ListFileError, "is not under --root"),
    ('a.mp4 run\n"My clip.mp4 run\n', {}, ListFileError, r"train.txt:2: No closing quotation"),
    ("a.mp4 run\nMy clip run\n", {}, ListFileError, r"train.txt:2: expected 'path label' .* quote it"),
])
def test_list_bad_inputs_name_file_and_line(tmp_path, train, kwargs, error, needle):
    classes = tmp_path / "classes.txt"
    classes.write_text("run\njump\n")
    lists = _lists(tmp_path, train, "t.mp4 0\n" if train.split()[1].isdigit() else "t.mp4 run\n")
    kwargs = {"classes": classes, **kwargs}
    with pytest.raises(error, match=needle):
        list_manifest(lists, root=tmp_path / "root", **kwargs)


def test_list_missing_files_error_or_skip_and_report(tmp_path):
    raw = make_synthetic_list(tmp_path / "raw", num_classes=2, videos_per_class=3, test_per_class=1, video_frames=6,
                              frame_jitter=0, progress=False)
    gone = raw / "videos" / "MoveLeft" / "MoveLeft_002.avi"
    gone.unlink()
    lists = {"train": raw / "train.txt", "test": raw / "test.txt"}
    manifest = list_manifest(lists, root=raw / "videos", classes=raw / "classes.txt", label_base=0)
    settings = PrepareSettings(short_side=24, num_frames=4, storage="npy")
    with pytest.raises(MissingVideosError, match="MoveLeft/MoveLeft_002.avi"):
        prepare_manifest(manifest, raw / "videos", tmp_path / "out", dataset="list", settings=settings, progress=False)
    report = prepare_manifest(manifest, raw / "videos", tmp_path / "out", dataset="list", settings=settings,
                              allow_missing=True, progress=False)
    assert report["missing"] == ["MoveLeft/MoveLeft_002.avi"] and report["counts"] == {"ok": 5}
    assert report["dataset"] == "list"
    index = pd.read_csv(tmp_path / "out" / "index.csv", keep_default_na=False)
    assert index["subset_1"].value_counts().to_dict() == {"train": 3, "test": 2}
    # another source into the same directory is refused, nothing overwritten
    before = (tmp_path / "out" / "index.csv").read_bytes()
    with pytest.raises(ValueError, match="holds a prepared 'list' dataset, not 'folder'"):
        prepare_manifest(manifest, raw / "videos", tmp_path / "out", dataset="folder", settings=settings,
                         allow_missing=True, progress=False)
    assert (tmp_path / "out" / "index.csv").read_bytes() == before


# ---------------------------------------------------------------------------------------------- draws


def test_draw_groups_keeps_groups_whole_and_meets_the_fraction():
    rows = [{"class_name": c, "group": f"g{g}", "path": f"{c}/{g}_{k}"} for c in ("x", "y")
            for g in range(10) for k in range(1 + g % 3)]
    table = pd.DataFrame(rows)
    drawn = draw_groups(table, [("val", 0.25)], seed=1)
    table["subset"] = drawn
    assert (table.groupby(["class_name", "group"])["subset"].nunique() == 1).all()
    for _, rows_c in table.groupby("class_name"):
        share = (rows_c["subset"] == "val").mean()
        # whole groups of at most 3 clips: at least the fraction, overshooting by less than one group
        assert 0.25 <= share < 0.25 + 3 / len(rows_c)


# ---------------------------------------------------------------------------------------------- old directories


@pytest.fixture(scope="module")
def old_format_prepared(tmp_path_factory, synthetic_tree) -> Path:
    """A UCF-101 directory as `prepare ucf101` wrote it before sources existed: no dataset.json,
    no group column in index.csv."""
    out = tmp_path_factory.mktemp("old") / "prepared"
    prepare_ucf101(synthetic_tree / "UCF-101", synthetic_tree / "ucfTrainTestlist", out, splits=[1],
                   settings=PrepareSettings(short_side=24, num_frames=4, storage="npy"), progress=False)
    (out / "dataset.json").unlink()
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    index.drop(columns="group").to_csv(out / "index.csv", index=False)
    return out


def test_an_old_prepared_ucf101_directory_still_loads_and_carves_a_validation_set(old_format_prepared):
    out = old_format_prepared
    train = prepared_dataset(out, split=1, subset="train", num_frames=4, dataset="ucf101")
    test = prepared_dataset(out, split=1, subset="test", num_frames=4, dataset="ucf101")
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    assert len(train) == (index["subset_1"] == "train").sum() and len(test) == (index["subset_1"] == "test").sum()
    # validation carved from the training list by UCF-101 group, read from the file names
    kw = dict(split=1, val_fraction=0.3, dataset="ucf101", where="old")
    val_rows = split_rows(index, subset="val", **kw)
    rest = split_rows(index, subset="train", **kw)
    assert len(val_rows) + len(rest) == len(train) and len(val_rows) > 0
    assert set(val_rows["path"]).isdisjoint(rest["path"])
    group = lambda p: p.split("_g")[1][:2]  # noqa: E731
    val_pairs = {(c, group(p)) for c, p in zip(val_rows["class_name"], val_rows["path"])}
    rest_pairs = {(c, group(p)) for c, p in zip(rest["class_name"], rest["path"])}
    assert val_pairs.isdisjoint(rest_pairs)
    assert set(val_rows["path"]).isdisjoint(index.loc[index["subset_1"] == "test", "path"])
    with pytest.raises(ValueError, match="holds a prepared 'ucf101' dataset but the recipe names data.dataset='hmdb51'"):
        prepared_dataset(out, split=1, subset="train", dataset="hmdb51")
    with pytest.raises(ValueError, match="split 1 has no validation subset: set data.val_fraction"):
        prepared_dataset(out, split=1, subset="val", dataset="ucf101")


def test_decoding_backend_carves_the_same_validation_videos_as_the_prepared_index(synthetic_tree, tmp_path):
    from snl_video.data.datasets import video_file_dataset

    out = tmp_path / "prepared"
    prepare_ucf101(synthetic_tree / "UCF-101", synthetic_tree / "ucfTrainTestlist", out, splits=[2],
                   settings=PrepareSettings(short_side=24, num_frames=4, storage="npy"), progress=False)
    for subset in ("train", "val", "test"):
        prepared = prepared_dataset(out, split=2, subset=subset, val_fraction=0.3, num_frames=4)
        files = video_file_dataset(synthetic_tree / "UCF-101", synthetic_tree / "ucfTrainTestlist", split=2,
                                   subset=subset, val_fraction=0.3, num_frames=4)
        stems = lambda ds: sorted(Path(v.path).stem for v in ds.videos)  # noqa: E731
        assert stems(prepared) == stems(files) and len(files) > 0
        assert sorted(prepared.labels) == sorted(files.labels)


def test_cli_make_synthetic_list_csv_then_prepare_list(tmp_path, capsys):
    assert main(["make-synthetic", "list", "--out", str(tmp_path / "raw"), "--classes", "2", "--videos-per-class", "3",
                 "--test-per-class", "1", "--format", "csv", "--frames", "6", "--frame-jitter", "0",
                 "--no-progress"]) == 0
    assert "snl-video prepare list --train" in capsys.readouterr().out
    raw = tmp_path / "raw"
    assert (raw / "train.csv").read_text().splitlines()[0] == "path,label"
    assert main(["prepare", "list", "--train", str(raw / "train.csv"), "--test", str(raw / "test.csv"), "--root",
                 str(raw / "videos"), "--out", str(tmp_path / "out"), "--short-side", "24", "--clip-len", "4",
                 "--no-progress"]) == 0
    index = pd.read_csv(tmp_path / "out" / "index.csv", keep_default_na=False)
    # class names from the list, sorted: MoveLeft (0) before MoveRight (1)
    assert index.groupby("class_name")["label"].first().to_dict() == {"MoveLeft": 0, "MoveRight": 1}
    assert index["subset_1"].value_counts().to_dict() == {"train": 4, "test": 2}
    # an unknown label: one line naming the file and line, exit code 2, nothing written
    (raw / "bad.csv").write_text("path,label\nMoveLeft/MoveLeft_000.avi,Jump\n")
    assert main(["prepare", "list", "--train", str(raw / "bad.csv"), "--test", str(raw / "test.csv"), "--class-names",
                 str(tmp_path / "none.txt"), "--root", str(raw / "videos"), "--output-dir", str(tmp_path / "o2")]) == 2
    assert "--class-names" in capsys.readouterr().err
    (tmp_path / "classes.txt").write_text("MoveLeft\nMoveRight\n")
    assert main(["prepare", "list", "--train", str(raw / "bad.csv"), "--test", str(raw / "test.csv"), "--classes",
                 str(tmp_path / "classes.txt"), "--root", str(raw / "videos"), "--out", str(tmp_path / "o2")]) == 2
    assert "bad.csv:2: unknown label 'Jump'" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_resuming_prepare_on_an_old_directory_adopts_it_as_ucf101(old_format_prepared, synthetic_tree, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(old_format_prepared, out)
    frames_before = {p.name: p.stat().st_mtime_ns for p in (out / "videos").rglob("*.npy")}
    report = prepare_ucf101(synthetic_tree / "UCF-101", synthetic_tree / "ucfTrainTestlist", out, splits=[1],
                            settings=PrepareSettings(short_side=24, num_frames=4, storage="npy"), progress=False)
    assert report["dataset"] == "ucf101" and (out / "dataset.json").is_file()
    assert {p.name: p.stat().st_mtime_ns for p in (out / "videos").rglob("*.npy")} == frames_before  # none redone
    assert "group" in pd.read_csv(out / "index.csv").columns
    with pytest.raises(ValueError, match="holds a prepared 'ucf101' dataset, not 'hmdb51'"):
        prepare_manifest(ucf101_manifest(synthetic_tree / "ucfTrainTestlist", [1]), synthetic_tree / "UCF-101", out,
                         dataset="hmdb51", settings=PrepareSettings(short_side=24, num_frames=4, storage="npy"), progress=False)


def test_a_one_based_list_read_as_zero_based_is_warned_about(tmp_path, caplog):
    (tmp_path / "one").mkdir()
    one = _lists(tmp_path / "one", "r/1.mp4 1\nj/1.mp4 2\ns/1.mp4 3\n", "r/2.mp4 1\nj/2.mp4 2\n")
    with caplog.at_level("WARNING", logger="snl_video.data.sources"):
        wrong = list_manifest(one, root=tmp_path, label_base=0)
    assert sorted(wrong["label"].unique()) == [1, 2, 3]  # what it does: labels as given, class_0 empty
    assert "no listed video has label 0" in caplog.text and "--label-base 1" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="snl_video.data.sources"):
        right = list_manifest(one, root=tmp_path, label_base=1)
    assert sorted(right["label"].unique()) == [0, 1, 2] and "label 0" not in caplog.text
