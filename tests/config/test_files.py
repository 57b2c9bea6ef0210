"""Recipe files: YAML read as YAML 1.2 numbers, includes relative to the including file (cycles
refused), dotted ``key=value`` overrides, a missing file, and save → load giving the same config."""

from __future__ import annotations

import pytest
import yaml

from snl_video.config import ConfigError, config_to_dict, load_config, save_config

from ..helpers import config_error_keys, write_dedented


def test_yaml_1e4_is_a_float_not_a_string(tmp_path):
    # Plain PyYAML (YAML 1.1) reads `1e-4` as the string '1e-4'.
    cfg = load_config(write_dedented(tmp_path, "c.yaml", "optim:\n  weight_decay: 5e-4\n  lr: 1E-3\n"))
    assert cfg.optim.weight_decay == 0.0005 and cfg.optim.lr == 0.001
    cfg = load_config(tmp_path / "c.yaml", ["optim.eps=1e-6", "optim.lr=.5", "schedule.epochs=3"])
    assert (cfg.optim.eps, cfg.optim.lr, cfg.schedule.epochs) == (1e-6, 0.5, 3)
    assert type(cfg.schedule.epochs) is int
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.yaml", ["optim.lr=-.5"])
    assert config_error_keys(info.value) == ["optim.lr"]


def test_nested_overrides(tmp_path):
    path = write_dedented(tmp_path, "c.yaml", "nonlocal_blocks: snl\noptim: {lr: 0.01}\n")
    cfg = load_config(
        path,
        [
            "optim.lr=0.1",
            "data.split=2",
            "nonlocal_blocks.kind=nl",
            "nonlocal_blocks.options.scale=true",
            "nonlocal_blocks.positions={layer3: [1, 3], layer2: [0]}",
            "pretrained=r3d50.hara2017_k400",
            "pretrained.ignore=[fc.*]",
            "runtime.freeze_until=layer3",
        ],
    )
    assert cfg.optim.lr == 0.1
    assert cfg.data.split == 2
    assert cfg.nonlocal_blocks.kind == "nl"
    assert cfg.nonlocal_blocks.options == {"scale": True}
    assert cfg.nonlocal_blocks.positions == {"layer3": (1, 3), "layer2": (0,)}
    assert cfg.pretrained.source == "r3d50.hara2017_k400"
    assert cfg.pretrained.ignore == ("fc.*",)
    assert cfg.runtime.freeze_until == "layer3"


def test_override_creates_nonlocal_section_and_null_removes_it(tmp_path):
    path = write_dedented(tmp_path, "c.yaml", "")
    assert load_config(path, ["nonlocal_blocks.kind=snl"]).nonlocal_blocks.kind == "snl"
    path2 = write_dedented(tmp_path, "d.yaml", "nonlocal_blocks: snl\n")
    assert load_config(path2, ["nonlocal_blocks=null"]).nonlocal_blocks is None


def test_malformed_override_is_reported_with_the_other_errors(tmp_path):
    path = write_dedented(tmp_path, "c.yaml", "data: {split: 7}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, ["optim.lr"])
    assert set(config_error_keys(info.value)) == {"optim.lr", "data.split"}


def test_yaml_include_relative_to_the_file(tmp_path):
    write_dedented(tmp_path, "base.yaml", "model: {name: r3d50, num_classes: 51}\noptim: {lr: 0.05, momentum: 0.8}\nnonlocal_blocks: snl\n")
    (tmp_path / "sub").mkdir()
    child = write_dedented(tmp_path, "sub/child.yaml", "defaults: ../base.yaml\noptim: {lr: 0.2}\nnonlocal_blocks: {options: {order: 2}}\n")
    cfg = load_config(child)
    assert cfg.model.num_classes == 51  # from the base
    assert cfg.optim.lr == 0.2  # child wins
    assert cfg.optim.momentum == 0.8  # deep merge keeps the base's sibling
    assert cfg.nonlocal_blocks.kind == "snl" and cfg.nonlocal_blocks.options == {"order": 2}


def test_include_cycle_is_an_error(tmp_path):
    write_dedented(tmp_path, "a.yaml", "defaults: b.yaml\n")
    write_dedented(tmp_path, "b.yaml", "defaults: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_round_trip_load_save_load(tmp_path):
    path = write_dedented(
        tmp_path,
        "c.yaml",
        """
        name: rt
        nonlocal_blocks: {kind: snl, options: {order: 2}, positions: {layer3: [5], layer2: [1, 3]}}
        pretrained: {source: r3d50.hara2017_k400, ignore: ["fc.*"]}
        optim: {name: adamw, lr: 3.0e-4, betas: [0.8, 0.95]}
        schedule: {kind: cosine, warmup_epochs: 5}
        runtime: {freeze_until: layer2, amp: bf16}
        """,
    )
    first = load_config(path, ["data.split=3"])
    saved = save_config(first, tmp_path / "run" / "config.yaml")
    assert saved.is_file()
    assert not [p for p in saved.parent.iterdir() if p.name.endswith(".tmp")]
    second = load_config(saved)
    assert second == first
    assert config_to_dict(second) == config_to_dict(first)
    # The saved file is plain YAML with every section written out.
    data = yaml.safe_load(saved.read_text())
    assert set(data) == {"name", "model", "nonlocal_blocks", "pretrained", "data", "optim", "schedule", "eval", "runtime"}
    assert data["data"]["split"] == 3

