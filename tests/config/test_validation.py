"""The typed config: its defaults, all-errors-at-once validation, every shipped recipe validated,
and ``config check`` on the command line. Files and overrides: test_files.py; value types: test_convert.py."""

from __future__ import annotations

import pytest
import torch
import yaml

from snl_video.cli import main
from snl_video.config import ConfigError, ExperimentConfig, load_config

from ..helpers import CONFIG_FILES, REPO, config_error_keys, write_dedented


# --------------------------------------------------------------------------- defaults


def test_defaults_are_the_papers_ucf101_recipe(tmp_path):
    cfg = load_config(write_dedented(tmp_path, "empty.yaml", ""))
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


def test_config_error_pickles_with_its_errors():
    import pickle

    err = ConfigError([("optim.lr", "must be > 0, got 0.0"), ("data.split", "bad")], "x.yaml")
    back = pickle.loads(pickle.dumps(err))
    assert back.errors == err.errors and str(back) == str(err)


# --------------------------------------------------------------------------- errors


def test_three_mistakes_give_three_errors_one_with_a_suggestion(tmp_path):
    path = write_dedented(
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
        load_config(write_dedented(tmp_path, "c.yaml", ""), [override])
    assert config_error_keys(info.value) == [key]


def test_bad_choice_lists_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write_dedented(tmp_path, "c.yaml", ""), ["optim.name=adam"])
    (message,) = [m for _, m in info.value.errors]
    assert "'sgd'" in message and "'adamw'" in message


def test_cross_field_checks(tmp_path):
    path = write_dedented(tmp_path, "c.yaml", "")
    with pytest.raises(ConfigError) as info:
        load_config(path, ["runtime.device=cpu", "runtime.amp=fp16", "optim.name=adamw", "optim.nesterov=true", "data.backend=pyav"])
    assert set(config_error_keys(info.value)) == {"runtime.amp", "optim.nesterov", "data.splits_dir"}


def test_unknown_nonlocal_kind_and_option(tmp_path):
    path = write_dedented(tmp_path, "c.yaml", "nonlocal_blocks: {kind: snl, options: {ordr: 2, impl: dense}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (key, message), = info.value.errors
    assert key == "nonlocal_blocks.options.ordr" and "'order'" in message
    with pytest.raises(ConfigError) as info:
        load_config(path, ["nonlocal_blocks.kind=snll", "nonlocal_blocks.options={}"])
    (key, message), = info.value.errors
    assert key == "nonlocal_blocks.kind" and "'snl'" in message and "cgnl" in message


def test_nonlocal_option_values_are_checked_by_the_block(tmp_path):
    path = write_dedented(tmp_path, "c.yaml", "nonlocal_blocks: snl\n")
    for override in ("nonlocal_blocks.options.order=0", "nonlocal_blocks.options.impl=fast", "nonlocal_blocks.options.order=two"):
        with pytest.raises(ConfigError) as info:
            load_config(path, [override])
        assert config_error_keys(info.value)[0].startswith("nonlocal_blocks.options")
    cfg = load_config(path, ["nonlocal_blocks.options.order=3", "nonlocal_blocks.options.basis=chebyshev"])
    assert cfg.nonlocal_blocks.options == {"order": 3, "basis": "chebyshev"}


def test_validation_does_not_move_the_global_rng(tmp_path):
    path = write_dedented(tmp_path, "c.yaml", "nonlocal_blocks: snl\n")
    torch.manual_seed(123)
    load_config(path)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))


def test_nonlocal_positions_are_named_stages(tmp_path):
    path = write_dedented(tmp_path, "c.yaml", "nonlocal_blocks: {kind: snl, positions: {res6: [5], layer3: [-1]}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert set(config_error_keys(info.value)) == {"nonlocal_blocks.positions.res6", "nonlocal_blocks.positions.layer3"}
    # The paper's stage names are aliases of layer1..layer4.
    ok = load_config(write_dedented(tmp_path, "d.yaml", "nonlocal_blocks: {kind: snl, positions: {res4: [4]}}\n"))
    assert ok.nonlocal_blocks.positions == {"res4": (4,)}


def test_pathway_qualified_stages_are_accepted_and_checked_against_the_model(tmp_path):
    from snl_video.engine.preflight import model_problems

    sf = load_config(write_dedented(tmp_path, "sf.yaml", "model: {name: slowfast_r50}\n"
                           "nonlocal_blocks: {kind: nl, positions: {slow.layer2: [1, 3], slow.res4: [2]}}\n"))
    assert sf.nonlocal_blocks.positions == {"slow.layer2": (1, 3), "slow.res4": (2,)}
    assert model_problems(sf) == []
    # The shape of the name is the schema's: a qualified name must still end in a stage.
    with pytest.raises(ConfigError) as info:
        load_config(write_dedented(tmp_path, "bad.yaml", "nonlocal_blocks: {kind: nl, positions: {slow.layer9: [1], 1x.layer2: [0]}}\n"))
    assert set(config_error_keys(info.value)) == {"nonlocal_blocks.positions.slow.layer9", "nonlocal_blocks.positions.1x.layer2"}
    # Whether the model has that pathway is the model's: a ResNet has none, SlowFast no "medium".
    resnet = load_config(write_dedented(tmp_path, "r.yaml", "model: {name: r3d50}\n"
                               "nonlocal_blocks: {kind: nl, positions: {slow.layer3: [1]}}\n"))
    (key, message), = model_problems(resnet)
    assert key == "nonlocal_blocks.positions" and "slow.layer3" in message and "r3d50" in message
    medium = load_config(write_dedented(tmp_path, "m.yaml", "model: {name: slowfast_r50}\n"
                               "nonlocal_blocks: {kind: nl, positions: {medium.layer3: [1]}}\n"))
    (key, message), = model_problems(medium)
    assert key == "nonlocal_blocks.positions" and "medium.layer3" in message


def test_pretrained_must_be_a_registry_name_or_a_file(tmp_path):
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"x")
    assert load_config(write_dedented(tmp_path, "a.yaml", f"pretrained: {ckpt}\n")).pretrained.source == str(ckpt)
    with pytest.raises(ConfigError) as info:
        load_config(write_dedented(tmp_path, "b.yaml", "pretrained: r3d50.hara2017_k4\n"))
    (key, message), = info.value.errors
    assert key == "pretrained.source" and "r3d50.hara2017_k400" in message


def test_pretrained_source_is_required(tmp_path):
    # `pretrained: {ignore: [...]}` must not silently pick some checkpoint.
    with pytest.raises(ConfigError) as info:
        load_config(write_dedented(tmp_path, "c.yaml", ""), ["pretrained.ignore=[fc.*]", "data.split=0"])
    assert set(config_error_keys(info.value)) == {"pretrained.source", "data.split"}


def test_errors_in_several_sections_and_fields_of_one_section(tmp_path):
    # A type error in one field must not hide a range error in its sibling.
    path = write_dedented(tmp_path, "c.yaml", "optim: {lr: abc, momentum: 3}\ndata: {split: 9}\nmodle: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert set(config_error_keys(info.value)) == {"optim.lr", "optim.momentum", "data.split", "modle"}


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
    path = write_dedented(tmp_path, "bad.yaml", "optim: {lrr: 0.1}\ndata: {split: 0}\n")
    assert main(["config", "check", str(path), "runtime.amp=fp32"]) == 2
    err = capsys.readouterr().err
    assert "optim.lrr" in err and "'lr'" in err and "data.split" in err and "runtime.amp" in err
    assert "Traceback" not in err


def test_cli_config_check_missing_file_is_one_line_exit_2(tmp_path, capsys):
    assert main(["config", "check", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "Traceback" not in err
