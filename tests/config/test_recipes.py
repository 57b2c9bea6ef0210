"""The recipes shipped in the package: names (``--config ucf101/r3d50_snl``), ``config list`` /
``config show``, and the rule from a ``--config`` value to a file (a file first, then a name)."""

from __future__ import annotations

from pathlib import Path

import pytest

from snl_video.cli import main
from snl_video.config import find_recipe, list_recipes, load_config, packaged_recipes_dir, resolve_recipe_path
from snl_video.config.recipes import recipe_description
from snl_video.engine.study import load_study_spec
from snl_video.errors import MissingFileError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "snl_video" / "configs").rglob("*.yaml"))


def test_the_recipes_live_in_the_package_and_configs_is_the_same_folder():
    assert packaged_recipes_dir() == (REPO / "snl_video" / "configs").resolve()
    # a checkout keeps the paths of the docs and of users' scripts: configs/ is that folder
    assert (REPO / "configs" / "ucf101" / "r3d50_snl.yaml").resolve() == packaged_recipes_dir() / "ucf101" / "r3d50_snl.yaml"


def test_list_names_every_shipped_file_once_with_its_kind_and_a_description():
    infos = list_recipes()
    assert [i.name for i in infos] == sorted(p.relative_to(packaged_recipes_dir()).with_suffix("").as_posix()
                                             for p in SHIPPED)
    # study specs are the files under studies/ that are not the *_base recipes they name (tests/engine/test_study.py)
    studies = {i.name for i in infos if i.kind == "study"}
    assert studies == {f"studies/{p.stem}" for p in SHIPPED if p.parent.name == "studies" and not p.stem.endswith("_base")}
    for info in infos:
        assert info.description and "yaml-language-server" not in info.description and "\n" not in info.description
        assert len(info.description) <= 102, info


def test_description_is_the_first_sentence_of_the_opening_comment():
    text = ("# yaml-language-server: $schema=../../config/recipe.schema.json\n"
            "# UCF-101 split 1: 3D ResNet-50 (Kinetics-400, Hara et al. 2017) + one SNL\n"
            "# block. The rest is detail.\n#\n#   snl-video train --config x\nmodel: r3d50\n")
    assert recipe_description(text) == "UCF-101 split 1: 3D ResNet-50 (Kinetics-400, Hara et al. 2017) + one SNL block."
    long = "# " + " ".join(["word"] * 60) + "\nname: x\n"
    cut = recipe_description(long)
    assert cut.endswith(" …") and len(cut) <= 102 and cut.startswith("word word")
    assert recipe_description("name: x\n") == ""


def test_config_by_name_is_the_shipped_file_with_its_includes():
    # r3d50_nl.yaml includes r3d50_baseline.yaml (defaults:, relative to the recipe)
    by_path = load_config(packaged_recipes_dir() / "ucf101" / "r3d50_nl.yaml", ["optim.lr=0.5"])
    assert load_config("ucf101/r3d50_nl", ["optim.lr=0.5"]) == by_path
    assert find_recipe("ucf101/r3d50_nl.yaml") == find_recipe("ucf101/r3d50_nl")
    assert find_recipe("r3d50_snl_cayley") == packaged_recipes_dir() / "ucf101" / "r3d50_snl_cayley.yaml"  # unique stem


def test_an_existing_file_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = tmp_path / "ucf101" / "r3d50_snl"  # no suffix, but a file: the user's file
    local.parent.mkdir()
    local.write_text("name: mine\nmodel: {name: r3d10, num_classes: 4}\n")
    assert resolve_recipe_path("ucf101/r3d50_snl") == Path("ucf101/r3d50_snl")
    assert load_config("ucf101/r3d50_snl").name == "mine"


def test_unknown_ambiguous_and_misplaced_names_say_what_to_type(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingFileError, match=r"did you mean ucf101/r3d50_snl\b.*config list"):
        resolve_recipe_path("ucf101/r3d50_snll")
    with pytest.raises(MissingFileError, match="several shipped recipes: hmdb51/r3d50_snl, ucf101/r3d50_snl"):
        resolve_recipe_path("r3d50_snl")
    # the docs' checkout path, typed where there is no checkout: the name to use instead
    with pytest.raises(MissingFileError, match=r"'configs/ucf101/r3d50_snl.yaml' does not exist; the shipped recipe "
                                               r"of that name is ucf101/r3d50_snl \(no .yaml\)"):
        load_config("configs/ucf101/r3d50_snl.yaml")
    with pytest.raises(MissingFileError, match="'mine.yaml' does not exist$"):
        load_config("mine.yaml")
    (tmp_path / "folder").mkdir()
    with pytest.raises(MissingFileError, match="is a folder"):
        load_config("folder")


def test_cli_list_show_and_errors(capsys):
    assert main(["config", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(SHIPPED)
    assert any(line.split()[:2] == ["ucf101/r3d50_snl", "recipe"] and "SNL" in line for line in lines)
    assert any(line.split()[:2] == ["studies/smoke", "study"] for line in lines)
    assert main(["config", "show", "studies/smoke_base"]) == 0
    assert capsys.readouterr().out == (packaged_recipes_dir() / "studies" / "smoke_base.yaml").read_text(encoding="utf-8")
    assert main(["config", "show", "ucf101/nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'ucf101/nope' is neither a file nor a shipped recipe" in err


def test_a_study_spec_and_its_recipe_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the names resolve inside the package
    by_name = load_study_spec("studies/smoke")
    assert by_name.source == packaged_recipes_dir() / "studies" / "smoke.yaml"
    assert by_name.recipe.resolve() == packaged_recipes_dir() / "studies" / "smoke_base.yaml"
    spec = tmp_path / "mine.yaml"
    spec.write_text("name: mine\nrecipe: studies/smoke_base\nseeds: [0]\nbaseline: b\nvariants: {b: []}\n")
    assert load_study_spec(spec).recipe == packaged_recipes_dir() / "studies" / "smoke_base.yaml"
