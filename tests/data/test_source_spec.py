"""The dataset-source registry is the one dispatch: prepare, make-synthetic, demo and the config's
check all go through it, and a source registered once (here a fictional one) is picked up by
all of them without another edit."""

from __future__ import annotations

import dataclasses
import json
import shlex

import pandas as pd
import pytest

from snl_video.cli import main
from snl_video.commands.demo import demo_sources, prepare_demo_data
from snl_video.config import ConfigError, config_from_dict
from snl_video.data import sources as registry
from snl_video.data.source_spec import DatasetSource, SourceInputs, SourceOption, parse_options
from snl_video.data.sources import folder_manifest, get_source, register_source, registered_sources, unregister_source
from snl_video.data.synthetic import make_synthetic_folder
from snl_video.errors import InvalidValueError

TINY = {"num_classes": "2", "frames_per_video": "6", "frame_jitter": "0"}
TINY_COUNTS = {"ucf101": {"videos_per_class": "3"}, "hmdb51": {"train_per_class": "2", "test_per_class": "1",
                                                                 "unused_per_class": "1", "clips_per_source": "1"},
               "folder": {"videos_per_class": "4"}, "list": {"videos_per_class": "3", "test_per_class": "1"}}


def _spy_on_inputs(monkeypatch, name: str) -> list:
    """Replace the registered ``name`` by a copy whose ``inputs`` records its calls."""
    calls: list = []
    source = get_source(name)

    def inputs(options):
        calls.append(dict(options))
        return source.inputs(options)

    monkeypatch.setitem(registry.SOURCE_REGISTRY, name, dataclasses.replace(source, inputs=inputs))
    return calls


def test_every_source_makes_synthetic_data_and_prepares_it_through_its_record(tmp_path, capsys, monkeypatch):
    names = [s.name for s in registered_sources() if s.synthetic is not None]
    assert names == ["ucf101", "hmdb51", "folder", "list"]
    for name in names:
        calls = _spy_on_inputs(monkeypatch, name)
        flags = {o.dest: o.flag for o in get_source(name).synthetic.options}
        given = {**TINY, **TINY_COUNTS[name]}
        argv = ["make-synthetic", name, "--output-dir", str(tmp_path / name / "raw"), "--no-progress"]
        argv += [x for dest, value in given.items() for x in (flags[dest], value)]
        assert main(argv) == 0, name
        printed = capsys.readouterr().out.strip().splitlines()[-1]
        command = shlex.split(printed.split("prepare with: ", 1)[1])  # snl-video prepare <name> ... --output-dir OUT
        assert command[:3] == ["snl-video", "prepare", name] and command[-2:] == ["--output-dir", "OUT"]
        out = tmp_path / name / "prepared"
        assert main(command[1:-2] + ["--output-dir", str(out), "--short-side", "24", "--num-frames", "4", "--no-progress"]) == 0
        assert len(calls) == 1, f"prepare {name} did not go through the registered source's inputs"
        assert json.loads((out / "dataset.json").read_text()) == {"dataset": name}
        assert set(pd.read_csv(out / "index.csv")["label"]) == {0, 1}


def test_the_demo_offers_and_prepares_every_source_with_a_synthetic_writer(tmp_path, monkeypatch):
    assert demo_sources() == ["ucf101", "hmdb51", "folder", "list"]
    calls = _spy_on_inputs(monkeypatch, "folder")
    prepared = prepare_demo_data("folder", tmp_path / "data", seed=0, num_frames=4, num_classes=2, videos_per_class=8,
                                 video_frames=6, short_side=24, workers=1)
    assert len(calls) == 1 and calls[0]["test_fraction"] == 2 / 8 and calls[0]["group_regex"] == "_g([0-9]+)_"
    assert json.loads((prepared / "dataset.json").read_text()) == {"dataset": "folder"}


def test_the_config_accepts_exactly_the_registered_sources():
    for source in registered_sources():
        assert config_from_dict({"data": {"dataset": source.name}}).data.dataset == source.name
    with pytest.raises(ConfigError, match="data.dataset: unknown dataset 'kinetics'; valid choices: 'ucf101'"):
        config_from_dict({"data": {"dataset": "kinetics"}})


@pytest.fixture
def toy_source():
    """A fictional source: ``--videos`` is a class-folder tree, every 3rd video held out."""

    def inputs(options):
        manifest = folder_manifest(options["videos"], test_fraction=0.34)
        return SourceInputs(manifest, options["videos"])

    from pathlib import Path

    source = DatasetSource("toy", "a fictional source of this test", None, lambda c, p: Path(p).stem,
                           lambda *a, **k: pytest.fail("no official layout"),
                           options=(SourceOption("--videos", "the tree", type=Path, required=True),),
                           inputs=inputs)
    register_source(source)
    yield source
    unregister_source("toy")


def test_a_registered_source_is_picked_up_by_prepare_and_the_config_without_other_edits(toy_source, tmp_path):
    videos = make_synthetic_folder(tmp_path / "raw", num_classes=2, videos_per_class=3, clips_per_group=1,
                                   video_frames=6, frame_jitter=0, progress=False)
    out = tmp_path / "prepared"
    assert main(["prepare", "toy", "--videos", str(videos), "--out", str(out), "--short-side", "24", "--clip-len", "4",
                 "--no-progress"]) == 0
    assert json.loads((out / "dataset.json").read_text()) == {"dataset": "toy"}
    assert config_from_dict({"data": {"dataset": "toy", "split": "1"}}).data.dataset == "toy"
    with pytest.raises(SystemExit):  # a required option of its record is required on the command line
        main(["prepare", "toy", "--out", str(out)])


def test_registering_a_name_twice_or_removing_a_project_source_is_refused(toy_source):
    with pytest.raises(ValueError, match="registered twice"):
        register_source(toy_source)
    with pytest.raises(ValueError, match="one of the project's own"):
        unregister_source("ucf101")


def test_parse_options_parses_text_as_the_command_line_does_and_names_the_flag():
    options = get_source("hmdb51").options
    parsed = parse_options(options, {"videos": "v", "splits": "s", "per_class": "8,4"}, where="demo")
    assert parsed["per_class"] == (8, 4) and parsed["split"] == "all" and str(parsed["videos"]) == "v"
    with pytest.raises(InvalidValueError, match=r"demo: --per-class '8': expected TRAIN,TEST"):
        parse_options(options, {"videos": "v", "splits": "s", "per_class": "8"}, where="demo")
    with pytest.raises(InvalidValueError, match="demo: --splits is required"):
        parse_options(options, {"videos": "v"}, where="demo")
    with pytest.raises(InvalidValueError, match=r"unknown option\(s\) \['root'\]"):
        parse_options(options, {"videos": "v", "splits": "s", "root": "r"}, where="demo")
