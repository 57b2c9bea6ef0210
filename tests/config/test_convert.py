"""Plain values to the typed config: ints widen to floats but not the reverse, a bool is no int,
every type error names the key and the value, and config_to_dict inverts config_from_dict."""

from __future__ import annotations

import pytest

from snl_video.config import ConfigError, ExperimentConfig, config_from_dict, config_to_dict, load_config

from ..helpers import config_error_keys, write_dedented


def test_int_is_coerced_to_float_but_not_the_reverse(tmp_path):
    path = write_dedented(tmp_path, "c.yaml", "")
    cfg = load_config(path, ["optim.lr=1"])
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    with pytest.raises(ConfigError) as info:
        load_config(path, ["schedule.epochs=10.5"])
    assert config_error_keys(info.value) == ["schedule.epochs"]


def test_type_errors_name_the_key_and_the_value(tmp_path):
    path = write_dedented(
        tmp_path,
        "bad.yaml",
        """
        optim: {lr: fast, nesterov: "yes"}
        data: {crop_size: "112", train_scales: 0.5}
        model: [r3d50]
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    errors = dict(info.value.errors)
    assert set(errors) == {"optim.lr", "optim.nesterov", "data.crop_size", "data.train_scales", "model"}
    assert "'fast'" in errors["optim.lr"] and "number" in errors["optim.lr"]
    assert "'112'" in errors["data.crop_size"]


def test_bool_is_not_an_int(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write_dedented(tmp_path, "c.yaml", "data: {batch_size: true}\n"))
    assert config_error_keys(info.value) == ["data.batch_size"]


def test_config_from_dict_of_config_to_dict_is_identity():
    cfg = ExperimentConfig()
    assert config_from_dict(config_to_dict(cfg)) == cfg

