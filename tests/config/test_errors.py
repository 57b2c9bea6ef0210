"""A configuration problem is reported where it was made: a mistake in a ``key=value`` override
is the command line's, a mistake in the recipe stays the file's (before, override
mistakes were reported as being "in base.yaml")."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from snl_video.cli import main
from snl_video.config import ConfigError, config_to_dict, load_config
from snl_video.config.schema import ExperimentConfig
from snl_video.engine.checkpoint import checkpoint_recipe


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "base.yaml"
    path.write_text(textwrap.dedent("""\
        model: {name: r3d18, num_classes: 4}
        optim: {lr: 0.01}
        """), encoding="utf-8")
    return path


def _header(exc: ConfigError) -> str:
    return str(exc).splitlines()[0]


def test_override_mistakes_are_the_command_lines_not_the_files(base):
    with pytest.raises(ConfigError) as caught:
        load_config(base, ["optim.lrr=0.1", "optim.lr=abc", "data.num_frames=0", "runtime"])
    header = _header(caught.value)
    assert header.startswith("4 problem(s) in the command-line overrides (applied to ")
    assert "in " + str(base) not in header  # the file is named only as what the overrides were applied to
    assert sorted(caught.value.command_line) == sorted(caught.value.errors)


def test_a_mistake_in_the_file_keeps_naming_the_file(base):
    base.write_text("model: {name: r3d18, num_classes: 4}\noptim: {lr: bad}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(base, ["optim.momentum=0.8"])  # a valid override: the problem is the file's alone
    assert _header(caught.value) == f"1 problem(s) in {base}:"
    assert caught.value.command_line == [] and "command-line" not in str(caught.value)


def test_mistakes_in_both_are_told_apart_line_by_line(base):
    base.write_text("model: {name: r3d18, num_classes: 4}\noptim: {lr: bad}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(base, ["data.num_frames=0"])
    lines = str(caught.value).splitlines()
    assert lines[0] == f"2 problem(s) in {base} and the command-line overrides:"
    (from_cli,) = [line for line in lines if "data.num_frames" in line]
    (from_file,) = [line for line in lines if "optim.lr" in line]
    assert from_cli.endswith("(from a command-line override)") and "command-line" not in from_file


def test_an_override_replacing_a_bad_file_value_is_said_to_be_the_command_lines(base):
    base.write_text("model: {name: r3d18, num_classes: 4}\noptim: {lr: bad}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(base, ["optim.lr=worse"])  # the value reported is the override's
    assert "in the command-line overrides" in _header(caught.value) and "'worse'" in str(caught.value)


def test_overrides_of_a_checkpoints_stored_recipe_are_the_command_lines():
    state = {"recipe": config_to_dict(ExperimentConfig())}
    with pytest.raises(ConfigError) as caught:
        checkpoint_recipe(state, path="run/last.pt", overrides=["eval.num_clips=0"])
    assert _header(caught.value) == "1 problem(s) in the command-line overrides (applied to run/last.pt (stored recipe)):"


def test_the_origin_survives_pickling():
    err = ConfigError([("optim.lr", "bad"), ("data.split", "bad")], "x.yaml", command_line=[("data.split", "bad")])
    back = pickle.loads(pickle.dumps(err))
    assert back.command_line == err.command_line and str(back) == str(err)


def test_cli_config_check_says_command_line_for_an_override_mistake(base, capsys):
    assert main(["config", "check", str(base), "optim.lr=abc", "--no-data"]) == 2
    err = capsys.readouterr().err
    assert "1 problem(s) in the command-line overrides" in err and f"problem(s) in {base}" not in err
