"""The demo's data in each source's format: synthetic files → that source's manifest → one prepared layout."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from snl_video.commands.demo import prepare_demo_data
from snl_video.data.datasets import prepared_dataset


@pytest.mark.parametrize("dataset", ["ucf101", "hmdb51", "folder", "list"])
def test_every_source_prepares_the_same_kind_of_directory(dataset, tmp_path):
    prepared = prepare_demo_data(dataset, tmp_path / "data", seed=0, num_frames=4, num_classes=2, videos_per_class=8,
                                 video_frames=6, short_side=24, workers=1)
    assert json.loads((prepared / "dataset.json").read_text()) == {"dataset": dataset}
    # the demo keeps raw frames (the faster input), not prepare's default .jpegs
    assert json.loads((prepared / "settings.json").read_text())["storage"] == "npy"
    index = pd.read_csv(prepared / "index.csv", keep_default_na=False)
    assert all(f.endswith(".npy") for f in index["frames_file"])
    assert set(index["label"]) == {0, 1} and set(index["status"]) == {"ok"}
    per_class = index.groupby(["label", "subset_1"]).size().unstack(fill_value=0)
    # 8 videos per class: 2 (3 for UCF-101's group layout) held out for test; HMDB-51 marks 2 unused
    expected_test = 3 if dataset == "ucf101" else 2
    expected_train = {"ucf101": 5, "hmdb51": 4, "folder": 6, "list": 6}[dataset]
    assert (per_class["test"] == expected_test).all() and (per_class["train"] == expected_train).all()
    # groups never straddle subsets
    assert (index.groupby(["class_name", "group"])["subset_1"].nunique() == 1).all()
    for subset in ("train", "test"):
        ds = prepared_dataset(prepared, split=1, subset=subset, mode="clip", num_frames=4, dataset=dataset)
        assert len(ds) == 2 * (expected_test if subset == "test" else expected_train)
        assert ds[0]["clip"].shape == (4, 24, 32, 3)


def test_the_relations_demo_data_is_a_prepared_class_folder(tmp_path):
    from snl_video.data.relations import RELATION_CLASSES

    prepared = prepare_demo_data("relations", tmp_path / "data", seed=0, num_frames=8, videos_per_class=5, short_side=32)
    assert json.loads((prepared / "dataset.json").read_text()) == {"dataset": "folder"}
    assert json.loads((prepared / "settings.json").read_text())["storage"] == "npy"
    sizes = {subset: prepared_dataset(prepared, split=1, subset=subset, mode="clip", num_frames=8, dataset="folder")
             for subset in ("train", "test")}
    assert sum(len(d) for d in sizes.values()) == 5 * len(RELATION_CLASSES)
    assert sorted(set(sizes["train"].labels)) == [0, 1, 2, 3] and len(sizes["test"]) > 0
