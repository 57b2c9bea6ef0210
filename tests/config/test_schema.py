"""Config of the data section for several sources: data.dataset, split names, data.val_fraction."""

from __future__ import annotations

from pathlib import Path

import pytest

from snl_video.config import ConfigError, ExperimentConfig, config_from_dict, load_config

REPO = Path(__file__).resolve().parents[2]


def test_defaults_keep_the_ucf101_protocol():
    data = ExperimentConfig().data
    assert data.dataset == "ucf101" and data.split == 1 and data.val_fraction == 0.0


def test_all_data_errors_at_once_with_the_sources_names():
    with pytest.raises(ConfigError) as info:
        config_from_dict({"data": {"dataset": "hmdb51", "split": 4, "val_fraction": 1.0}})
    assert dict(info.value.errors) == {
        "data.split": "HMDB-51 has splits 1, 2 and 3, got 4",
        "data.val_fraction": "must be in [0, 1) (0: select on the test split), got 1.0",
    }
    with pytest.raises(ConfigError) as info:
        config_from_dict({"data": {"dataset": "kinetics"}})
    assert "valid choices: 'ucf101', 'hmdb51', 'folder', 'list'" in str(info.value)
    with pytest.raises(ConfigError, match="data.split: UCF-101 has splits 1, 2 and 3, got 'fold_a'"):
        config_from_dict({"data": {"split": "fold_a"}})


def test_folder_and_list_take_split_names():
    assert config_from_dict({"data": {"dataset": "folder", "split": "fold_a"}}).data.split == "fold_a"
    assert config_from_dict({"data": {"dataset": "list"}}).data.split == 1  # prepared as split "1"
    with pytest.raises(ConfigError, match="data.split: must be the split name the list dataset was prepared with"):
        config_from_dict({"data": {"dataset": "list", "split": "a b"}})
    with pytest.raises(ConfigError, match="data.backend: decoding the original files needs official split files"):
        config_from_dict({"data": {"dataset": "folder", "backend": "pyav", "splits_dir": "x"}})


def test_hmdb51_recipes():
    base = load_config(REPO / "configs" / "hmdb51" / "r3d50_baseline.yaml")
    snl = load_config(REPO / "configs" / "hmdb51" / "r3d50_snl.yaml")
    for cfg in (base, snl):
        assert cfg.data.dataset == "hmdb51" and cfg.model.num_classes == 51 and cfg.data.val_fraction == 0.1
    assert base.nonlocal_blocks is None and snl.nonlocal_blocks.positions == {"layer3": (4,)}
