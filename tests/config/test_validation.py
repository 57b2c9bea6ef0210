"""The typed config: defaults, overrides, includes, all-errors-at-once validation, round trip, CLI."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from snl_video.cli import main
from snl_video.config import (
    ConfigError,
    ExperimentConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)

from ..helpers import CONFIG_FILES, REPO


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_keys(exc: ConfigError) -> list[str]:
    return [key for key, _ in exc.errors]


# --------------------------------------------------------------------------- defaults


def test_defaults_are_the_papers_ucf101_recipe(tmp_path):
    cfg = load_config(write(tmp_path, "empty.yaml", ""))
    # Values stated in the paper / 3D-ResNets-PyTorch, typed here by hand.
    assert cfg.optim.name == "sgd"
    assert cfg.optim.lr == 0.01
    assert cfg.optim.momentum == 0.9
    assert cfg.optim.weight_decay == 1e-4
    assert cfg.optim.nesterov is False
    assert cfg.schedule.kind == "step"
    assert cfg.schedule.step_size == 40
    assert cfg.schedule.gamma == 0.1
    assert cfg.schedule.epochs == 100
    assert cfg.schedule.warmup_epochs == 0
    assert (cfg.data.num_frames, cfg.data.crop_size) == (16, 112)
    assert cfg.model.num_classes == 101
    assert cfg.data.split == 1
    assert (cfg.eval.num_clips, cfg.eval.num_crops) == (10, 3)
    assert cfg.nonlocal_blocks is None and cfg.pretrained is None
    assert cfg == ExperimentConfig()


def test_sections_are_frozen():
    cfg = ExperimentConfig()
    with pytest.raises(AttributeError):
        cfg.optim.lr = 1.0  # type: ignore[misc]


def test_yaml_1e4_is_a_float_not_a_string(tmp_path):
    # Plain PyYAML (YAML 1.1) reads `1e-4` as the string '1e-4'.
    cfg = load_config(write(tmp_path, "c.yaml", "optim:\n  weight_decay: 5e-4\n  lr: 1E-3\n"))
    assert cfg.optim.weight_decay == 0.0005 and cfg.optim.lr == 0.001
    cfg = load_config(tmp_path / "c.yaml", ["optim.eps=1e-6", "optim.lr=.5", "schedule.epochs=3"])
    assert (cfg.optim.eps, cfg.optim.lr, cfg.schedule.epochs) == (1e-6, 0.5, 3)
    assert type(cfg.schedule.epochs) is int
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.yaml", ["optim.lr=-.5"])
    assert error_keys(info.value) == ["optim.lr"]


def test_config_error_pickles_with_its_errors():
    import pickle

    err = ConfigError([("optim.lr", "must be > 0, got 0.0"), ("data.split", "bad")], "x.yaml")
    back = pickle.loads(pickle.dumps(err))
    assert back.errors == err.errors and str(back) == str(err)


# --------------------------------------------------------------------------- overrides


def test_nested_overrides(tmp_path):
    path = write(tmp_path, "c.yaml", "nonlocal_blocks: snl\noptim: {lr: 0.01}\n")
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
    path = write(tmp_path, "c.yaml", "")
    assert load_config(path, ["nonlocal_blocks.kind=snl"]).nonlocal_blocks.kind == "snl"
    path2 = write(tmp_path, "d.yaml", "nonlocal_blocks: snl\n")
    assert load_config(path2, ["nonlocal_blocks=null"]).nonlocal_blocks is None


def test_int_is_coerced_to_float_but_not_the_reverse(tmp_path):
    path = write(tmp_path, "c.yaml", "")
    cfg = load_config(path, ["optim.lr=1"])
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    with pytest.raises(ConfigError) as info:
        load_config(path, ["schedule.epochs=10.5"])
    assert error_keys(info.value) == ["schedule.epochs"]


def test_malformed_override_is_reported_with_the_other_errors(tmp_path):
    path = write(tmp_path, "c.yaml", "data: {split: 7}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, ["optim.lr"])
    assert set(error_keys(info.value)) == {"optim.lr", "data.split"}


# --------------------------------------------------------------------------- errors


def test_three_mistakes_give_three_errors_one_with_a_suggestion(tmp_path):
    path = write(
        tmp_path,
        "bad.yaml",
        """
        optim:
          lr: 0.01
          momentun: 0.9      # typo
        schedule:
          epochs: 0          # out of range
        runtime:
          amp: float16       # not a choice
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    errors = dict(info.value.errors)
    assert set(errors) == {"optim.momentun", "schedule.epochs", "runtime.amp"}
    assert "'momentum'" in errors["optim.momentun"]
    assert "'bf16'" in errors["runtime.amp"] and "'fp16'" in errors["runtime.amp"]
    assert "0" in errors["schedule.epochs"]
    # The message lists everything, so the CLI shows all problems at once.
    text = str(info.value)
    assert all(key in text for key in errors)


def test_type_errors_name_the_key_and_the_value(tmp_path):
    path = write(
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
        load_config(write(tmp_path, "c.yaml", "data: {batch_size: true}\n"))
    assert error_keys(info.value) == ["data.batch_size"]


@pytest.mark.parametrize(
    "override, key",
    [
        ("optim.lr=0", "optim.lr"),
        ("optim.lr=-0.1", "optim.lr"),
        ("schedule.epochs=0", "schedule.epochs"),
        ("data.split=4", "data.split"),
        ("data.crop_size=0", "data.crop_size"),
        ("data.num_frames=0", "data.num_frames"),
        ("data.train_scales=[1.0, 1.5]", "data.train_scales"),
        ("optim.momentum=1.0", "optim.momentum"),
        ("schedule.warmup_epochs=100", "schedule.warmup_epochs"),
        ("runtime.grad_accum_steps=0", "runtime.grad_accum_steps"),
        ("eval.num_crops=2", "eval.num_crops"),
        ("schedule.kind=linear", "schedule.kind"),
        ("optim.name=adam", "optim.name"),
        ("model.dropout=1.0", "model.dropout"),
        ("model.num_classes=1", "model.num_classes"),
    ],
)
def test_out_of_range_and_bad_choices(tmp_path, override, key):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "c.yaml", ""), [override])
    assert error_keys(info.value) == [key]


def test_bad_choice_lists_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "c.yaml", ""), ["optim.name=adam"])
    (message,) = [m for _, m in info.value.errors]
    assert "'sgd'" in message and "'adamw'" in message


def test_cross_field_checks(tmp_path):
    path = write(tmp_path, "c.yaml", "")
    with pytest.raises(ConfigError) as info:
        load_config(path, ["runtime.device=cpu", "runtime.amp=fp16", "optim.name=adamw", "optim.nesterov=true", "data.backend=pyav"])
    assert set(error_keys(info.value)) == {"runtime.amp", "optim.nesterov", "data.splits_dir"}


def test_unknown_nonlocal_kind_and_option(tmp_path):
    path = write(tmp_path, "c.yaml", "nonlocal_blocks: {kind: snl, options: {ordr: 2, impl: dense}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (key, message), = info.value.errors
    assert key == "nonlocal_blocks.options.ordr" and "'order'" in message
    with pytest.raises(ConfigError) as info:
        load_config(path, ["nonlocal_blocks.kind=snll", "nonlocal_blocks.options={}"])
    (key, message), = info.value.errors
    assert key == "nonlocal_blocks.kind" and "'snl'" in message and "cgnl" in message


def test_nonlocal_option_values_are_checked_by_the_block(tmp_path):
    path = write(tmp_path, "c.yaml", "nonlocal_blocks: snl\n")
    for override in ("nonlocal_blocks.options.order=0", "nonlocal_blocks.options.impl=fast", "nonlocal_blocks.options.order=two"):
        with pytest.raises(ConfigError) as info:
            load_config(path, [override])
        assert error_keys(info.value)[0].startswith("nonlocal_blocks.options")
    cfg = load_config(path, ["nonlocal_blocks.options.order=3", "nonlocal_blocks.options.basis=chebyshev"])
    assert cfg.nonlocal_blocks.options == {"order": 3, "basis": "chebyshev"}


def test_validation_does_not_move_the_global_rng(tmp_path):
    path = write(tmp_path, "c.yaml", "nonlocal_blocks: snl\n")
    torch.manual_seed(123)
    load_config(path)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))


def test_nonlocal_positions_are_named_stages(tmp_path):
    path = write(tmp_path, "c.yaml", "nonlocal_blocks: {kind: snl, positions: {res6: [5], layer3: [-1]}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert set(error_keys(info.value)) == {"nonlocal_blocks.positions.res6", "nonlocal_blocks.positions.layer3"}
    # The paper's stage names are aliases of layer1..layer4.
    ok = load_config(write(tmp_path, "d.yaml", "nonlocal_blocks: {kind: snl, positions: {res4: [4]}}\n"))
    assert ok.nonlocal_blocks.positions == {"res4": (4,)}


def test_pathway_qualified_stages_are_accepted_and_checked_against_the_model(tmp_path):
    from snl_video.engine.preflight import model_problems

    sf = load_config(write(tmp_path, "sf.yaml", "model: {name: slowfast_r50}\n"
                           "nonlocal_blocks: {kind: nl, positions: {slow.layer2: [1, 3], slow.res4: [2]}}\n"))
    assert sf.nonlocal_blocks.positions == {"slow.layer2": (1, 3), "slow.res4": (2,)}
    assert model_problems(sf) == []
    # The shape of the name is the schema's: a qualified name must still end in a stage.
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "bad.yaml", "nonlocal_blocks: {kind: nl, positions: {slow.layer9: [1], 1x.layer2: [0]}}\n"))
    assert set(error_keys(info.value)) == {"nonlocal_blocks.positions.slow.layer9", "nonlocal_blocks.positions.1x.layer2"}
    # Whether the model has that pathway is the model's: a ResNet has none, SlowFast no "medium".
    resnet = load_config(write(tmp_path, "r.yaml", "model: {name: r3d50}\n"
                               "nonlocal_blocks: {kind: nl, positions: {slow.layer3: [1]}}\n"))
    (key, message), = model_problems(resnet)
    assert key == "nonlocal_blocks.positions" and "slow.layer3" in message and "r3d50" in message
    medium = load_config(write(tmp_path, "m.yaml", "model: {name: slowfast_r50}\n"
                               "nonlocal_blocks: {kind: nl, positions: {medium.layer3: [1]}}\n"))
    (key, message), = model_problems(medium)
    assert key == "nonlocal_blocks.positions" and "medium.layer3" in message


def test_pretrained_must_be_a_registry_name_or_a_file(tmp_path):
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"x")
    assert load_config(write(tmp_path, "a.yaml", f"pretrained: {ckpt}\n")).pretrained.source == str(ckpt)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "b.yaml", "pretrained: r3d50.hara2017_k4\n"))
    (key, message), = info.value.errors
    assert key == "pretrained.source" and "r3d50.hara2017_k400" in message


def test_pretrained_source_is_required(tmp_path):
    # `pretrained: {ignore: [...]}` must not silently pick some checkpoint.
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "c.yaml", ""), ["pretrained.ignore=[fc.*]", "data.split=0"])
    assert set(error_keys(info.value)) == {"pretrained.source", "data.split"}


def test_errors_in_several_sections_and_fields_of_one_section(tmp_path):
    # A type error in one field must not hide a range error in its sibling.
    path = write(tmp_path, "c.yaml", "optim: {lr: abc, momentum: 3}\ndata: {split: 9}\nmodle: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert set(error_keys(info.value)) == {"optim.lr", "optim.momentum", "data.split", "modle"}


# --------------------------------------------------------------------------- includes


def test_yaml_include_relative_to_the_file(tmp_path):
    write(tmp_path, "base.yaml", "model: {name: r3d50, num_classes: 51}\noptim: {lr: 0.05, momentum: 0.8}\nnonlocal_blocks: snl\n")
    (tmp_path / "sub").mkdir()
    child = write(tmp_path, "sub/child.yaml", "defaults: ../base.yaml\noptim: {lr: 0.2}\nnonlocal_blocks: {options: {order: 2}}\n")
    cfg = load_config(child)
    assert cfg.model.num_classes == 51  # from the base
    assert cfg.optim.lr == 0.2  # child wins
    assert cfg.optim.momentum == 0.8  # deep merge keeps the base's sibling
    assert cfg.nonlocal_blocks.kind == "snl" and cfg.nonlocal_blocks.options == {"order": 2}


def test_include_cycle_is_an_error(tmp_path):
    write(tmp_path, "a.yaml", "defaults: b.yaml\n")
    write(tmp_path, "b.yaml", "defaults: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- round trip


def test_round_trip_load_save_load(tmp_path):
    path = write(
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


def test_config_from_dict_of_config_to_dict_is_identity():
    cfg = ExperimentConfig()
    assert config_from_dict(config_to_dict(cfg)) == cfg


# --------------------------------------------------------------------------- shipped recipes


def test_there_are_recipes():
    assert CONFIG_FILES, "configs/ holds no YAML recipe"


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_recipe_validates(path):
    cfg = load_config(path)
    assert isinstance(cfg, ExperimentConfig)
    first_line = path.read_text(encoding="utf-8").lstrip().splitlines()[0]
    assert first_line.startswith("#"), f"{path} must open with a comment saying how to run it"
    assert "snl-video" in path.read_text(encoding="utf-8").split("\n\n")[0]


def test_r3d50_snl_recipe_is_the_table7_row():
    cfg = load_config(REPO / "configs" / "ucf101" / "r3d50_snl.yaml")
    assert cfg.model.name == "r3d50" and cfg.model.num_classes == 101
    assert cfg.nonlocal_blocks.kind == "snl" and cfg.nonlocal_blocks.positions == {"layer3": (4,)}
    assert cfg.pretrained.source == "r3d50.hara2017_k400"
    # The recipe's placement is the paper's: one block in res4 right before its last
    # residual block, which is also the models layer's default for a kind name.
    from snl_video.models import build_model

    spec = {"kind": "snl", "options": dict(cfg.nonlocal_blocks.options), "positions": {"layer3": [4]}}
    model = build_model("r3d50", num_classes=101, nonlocal_blocks=spec)
    default = build_model("r3d50", num_classes=101, nonlocal_blocks="snl")
    assert list(model.nonlocal_blocks.keys()) == list(default.nonlocal_blocks.keys()) == ["layer3_after_4"]
    assert len(model.layer3) == 6


# --------------------------------------------------------------------------- CLI


def test_cli_config_check_prints_the_resolved_config(capsys):
    path = REPO / "configs" / "ucf101" / "r3d50_snl.yaml"
    assert main(["config", "check", str(path), "optim.lr=0.05"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["optim"]["lr"] == 0.05 and data["schedule"]["step_size"] == 40


def test_cli_config_check_lists_all_errors_with_exit_code_2(tmp_path, capsys):
    path = write(tmp_path, "bad.yaml", "optim: {lrr: 0.1}\ndata: {split: 0}\n")
    assert main(["config", "check", str(path), "runtime.amp=fp32"]) == 2
    err = capsys.readouterr().err
    assert "optim.lrr" in err and "'lr'" in err and "data.split" in err and "runtime.amp" in err
    assert "Traceback" not in err


def test_cli_config_check_missing_file_is_one_line_exit_2(tmp_path, capsys):
    assert main(["config", "check", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "Traceback" not in err
