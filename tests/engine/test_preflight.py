"""Resume never rewrites the run record; every cheap check runs before anything heavy."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from snl_video.cli import build_parser, main
from snl_video.config import ConfigError, dump_config, load_config
from snl_video.engine.checkpoint import LAST
from snl_video.engine.evaluate import run_evaluation
from snl_video.engine.resume import ResumeConfigError
from snl_video.engine.train import train

from ..helpers import tiny_config

FAST = dict(schedule={"epochs": 3, "kind": "step", "step_size": 1, "gamma": 0.5})


def _write_recipe(cfg, path):
    path.write_text(dump_config(cfg))
    return path


# ---------------------------------------------------------------- item 1: resume keeps the record


def test_resume_with_a_changed_lr_is_an_error_and_leaves_config_yaml_byte_identical(tiny_prepared, tmp_path):
    cfg = tiny_config(tiny_prepared, tmp_path / "run", **FAST)
    train(cfg, stop_after_epochs=1)
    record = (tmp_path / "run" / "config.yaml").read_bytes()
    ckpt = (tmp_path / "run" / "checkpoints" / LAST).read_bytes()
    changed = tiny_config(tiny_prepared, tmp_path / "run", **FAST, optim={"lr": 0.1}, data={"batch_size": 4})
    with pytest.raises(ResumeConfigError) as info:
        train(changed, resume=True)
    text = str(info.value)
    # each difference is listed with both values, and the way out is named
    assert "optim.lr: recorded 0.02, now 0.1" in text and "data.batch_size: recorded 8, now 4" in text
    assert "--resume" in text and "runtime.output_dir" in text
    assert (tmp_path / "run" / "config.yaml").read_bytes() == record
    assert (tmp_path / "run" / "checkpoints" / LAST).read_bytes() == ckpt
    assert not list((tmp_path / "run").glob("config.resume-*.yaml"))


def test_allowed_changes_on_resume_are_recorded_as_an_amendment(tiny_prepared, tmp_path):
    cfg = tiny_config(tiny_prepared, tmp_path / "run", **FAST)
    train(cfg, stop_after_epochs=1)
    record = (tmp_path / "run" / "config.yaml").read_bytes()
    more = tiny_config(tiny_prepared, tmp_path / "run", **{**FAST, "schedule": {**FAST["schedule"], "epochs": 2}},
                       runtime={"log_every": 5})
    result = train(more, resume=True)
    assert result.epochs_done == 2
    assert (tmp_path / "run" / "config.yaml").read_bytes() == record
    amendment = tmp_path / "run" / "config.resume-1.yaml"
    text = amendment.read_text()
    assert "resumed after epoch 1" in text and "schedule.epochs: 3 -> 2" in text and "runtime.log_every: 1 -> 5" in text
    assert load_config(amendment) == more
    # a second resume compares with the amendment: the same settings again need no new record
    again = tiny_config(tiny_prepared, tmp_path / "run", **FAST, runtime={"log_every": 5})
    train(again, resume=True)
    assert (tmp_path / "run" / "config.resume-2.yaml").is_file()  # epochs 2 -> 3
    assert "schedule.epochs: 2 -> 3" in (tmp_path / "run" / "config.resume-2.yaml").read_text()


def test_cli_resume_flag_takes_no_value_so_an_override_after_it_stays_an_override():
    args = build_parser().parse_args(["train", "--config", "x.yaml", "--resume", "data.root=elsewhere"])
    assert args.resume is True and args.overrides == ["data.root=elsewhere"] and args.resume_from is None


def test_cli_resume_from_a_missing_file_fails_fast(tmp_path, capsys):
    recipe = tmp_path / "does-not-matter.yaml"
    assert main(["train", "--config", str(recipe), "--resume-from", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err
    assert "--resume-from" in err and "nope.pt" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_a_checkpoint_path_given_as_an_override_points_to_resume_from(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "x.yaml"), "--resume", "runs/a/checkpoints/last.pt"]) == 2
    assert "--resume-from runs/a/checkpoints/last.pt" in capsys.readouterr().err


# ---------------------------------------------------------------- item 2: checks before anything heavy


def test_num_classes_below_the_labels_fails_at_start_with_no_run_folder(tiny_prepared, tmp_path):
    cfg = tiny_config(tiny_prepared, tmp_path / "run", model={"num_classes": 2})
    with pytest.raises(ConfigError, match=r"model.num_classes: is 2, but the dataset .* labels up to 3 .*num_classes=4"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_num_classes_above_the_dataset_fails_at_start_with_the_fix_and_no_run_folder(tiny_prepared, tmp_path):
    # a 101-class recipe on a 4-class dataset trained 97 classes no video has
    cfg = tiny_config(tiny_prepared, tmp_path / "run", model={"num_classes": 101})
    with pytest.raises(ConfigError, match=r"model.num_classes: is 101, but the dataset .* has 4 classes.*"
                                          r"model.num_classes=4, or model.allow_extra_classes=true"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_a_larger_head_passes_the_checks_when_asked_for_and_an_exact_one_always(tiny_prepared, tmp_path):
    from snl_video.engine.preflight import preflight

    preflight(tiny_config(tiny_prepared, tmp_path / "a", model={"num_classes": 6, "allow_extra_classes": True}))
    preflight(tiny_config(tiny_prepared, tmp_path / "b", model={"num_classes": 4}))
    with pytest.raises(ConfigError, match="model.num_classes=4"):
        preflight(tiny_config(tiny_prepared, tmp_path / "c", model={"num_classes": 5}))


def test_config_check_refuses_a_larger_head_unless_allowed(tiny_prepared, tmp_path, capsys):
    recipe = _write_recipe(tiny_config(tiny_prepared, tmp_path / "run"), tmp_path / "r.yaml")
    assert main(["config", "check", str(recipe), "model.num_classes=101"]) == 2
    err = capsys.readouterr().err
    assert "model.num_classes: is 101" in err and "set model.num_classes=4" in err
    assert main(["config", "check", str(recipe), "model.num_classes=101", "model.allow_extra_classes=true"]) == 0
    assert "allow_extra_classes: true" in capsys.readouterr().out


def test_the_class_count_falls_back_to_the_index_labels_without_classes_json(tiny_prepared, tmp_path):
    from snl_video.engine.preflight import dataset_class_count

    root = tmp_path / "old_prepared"
    root.mkdir()
    shutil.copy(tiny_prepared / "index.csv", root / "index.csv")  # written before classes.json existed
    cfg = tiny_config(root, tmp_path / "run")
    assert dataset_class_count(cfg) == 4 == len(set(pd.read_csv(root / "index.csv")["label"]))
    assert dataset_class_count(tiny_config(tiny_prepared, tmp_path / "run")) == 4


def test_eval_checks_before_reading_the_checkpoint(tiny_prepared, tmp_path):
    garbage = tmp_path / "huge.pt"
    garbage.write_bytes(b"not a checkpoint")
    cfg = tiny_config(tiny_prepared, tmp_path / "run", model={"num_classes": 3})
    with pytest.raises(ConfigError, match="model.num_classes"):
        run_evaluation(cfg, garbage)  # the checkpoint (unreadable) is never opened
    assert not (tmp_path / "run").exists()


def test_config_check_reports_unknown_model_and_out_of_range_positions(tiny_prepared, tmp_path, capsys):
    recipe = _write_recipe(tiny_config(tiny_prepared, tmp_path / "run"), tmp_path / "r.yaml")
    assert main(["config", "check", str(recipe), "model.name=r3d5O"]) == 2
    err = capsys.readouterr().err
    assert "model.name" in err and "did you mean 'r3d50'" in err
    assert main(["config", "check", str(recipe), "nonlocal_blocks.positions={layer3: [4]}"]) == 2
    err = capsys.readouterr().err
    # r3d10 has one residual block per stage
    assert "nonlocal_blocks.positions" in err and "out of range" in err and "0..0" in err
    assert main(["config", "check", str(recipe), "model.options.widen=2"]) == 2
    assert "model.options.widen" in capsys.readouterr().err
    assert main(["config", "check", str(recipe), "model.num_classes=3"]) == 2
    assert "model.num_classes=4" in capsys.readouterr().err
    assert main(["config", "check", str(recipe)]) == 0


def test_a_raw_video_tree_as_data_root_gets_the_full_prepare_command(tiny_prepared, tmp_path):
    raw = tiny_prepared.parent / "raw"  # holds UCF-101/ (class folders of .avi) and ucfTrainTestlist/
    cfg = tiny_config(raw, tmp_path / "run")
    with pytest.raises(ConfigError) as info:
        train(cfg)
    text = str(info.value)
    assert f"--videos {raw / 'UCF-101'}" in text and f"--splits {raw / 'ucfTrainTestlist'}" in text and "--out" in text
    assert "data.backend=pyav" in text and "data.splits_dir=" in text
    assert not (tmp_path / "run").exists()


def test_an_empty_test_subset_is_reported_at_eval_start(tiny_prepared, tmp_path):
    only_train = tmp_path / "only_train"
    only_train.mkdir()
    index = pd.read_csv(tiny_prepared / "index.csv", keep_default_na=False)
    index[index["subset_1"] == "train"].to_csv(only_train / "index.csv", index=False)
    shutil.copy(tiny_prepared / "settings.json", only_train / "settings.json")
    cfg = tiny_config(only_train, tmp_path / "run")
    with pytest.raises(ConfigError, match="test subset of split 1 .* is empty"):
        run_evaluation(cfg, tmp_path / "never-read.pt")


def test_config_check_warns_only_when_data_root_is_absent(tmp_path, capsys):
    cfg = tiny_config(tmp_path / "not-here", tmp_path / "run")
    recipe = _write_recipe(cfg, tmp_path / "r.yaml")
    assert main(["config", "check", str(recipe)]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["data"]["root"] == str(tmp_path / "not-here")


def test_a_tree_of_ones_own_classes_gets_prepare_folder_advice(tmp_path):
    from snl_video.engine.preflight import raw_video_tree_hint

    for name in ("jump/a.mp4", "run/b.mp4"):
        (tmp_path / "myvids" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "myvids" / name).write_bytes(b"")
    for root in (tmp_path / "myvids", tmp_path):  # the tree, or one level above it
        hint = raw_video_tree_hint(root)
        assert f"snl-video prepare folder --videos {tmp_path / 'myvids'}" in hint
        assert "ucf101" not in hint and "ucfTrainTestlist" not in hint


# ---------------------------------------------------------------- a clip the model cannot take


def test_a_clip_smaller_than_s3ds_head_window_is_a_start_up_problem_naming_the_sizes(tiny_prepared, tmp_path):
    """torchvision's S3D pools a fixed 2x7x7 window at its end: 8x64² clips leave a 1x2x2 map. Before,
    training started and died in the first forward with torch's traceback; now the start-up checks
    name the model, the clip size and the keys to change (and pass the size the model takes)."""
    from snl_video.engine.preflight import input_size_problems

    small = tiny_config(tiny_prepared, tmp_path / "a", model={"name": "s3d", "num_classes": 4, "options": {}},
                        nonlocal_blocks=None, data={"num_frames": 8, "crop_size": 64})
    ((key, message),) = input_size_problems(small)
    assert key == "data" and "'s3d'" in message and "8x64x64" in message and "smaller than kernel size" in message
    with pytest.raises(ConfigError, match="cannot take clips of 8x64x64"):
        train(small)
    assert not (tmp_path / "a" / "checkpoints").exists()
    # 16x224² is what S3D is built for (checked by shape only, on the meta device)
    fits = tiny_config(tiny_prepared, tmp_path / "b", model={"name": "s3d", "num_classes": 4, "options": {}},
                       nonlocal_blocks=None, data={"num_frames": 16, "crop_size": 224})
    assert input_size_problems(fits) == []


def test_a_model_that_fails_only_on_the_meta_device_is_not_reported(tiny_prepared, tmp_path, monkeypatch):
    """An operation without a meta implementation must not pass for a size problem: the meta
    failure is confirmed by a real forward before anything is reported."""
    import torch

    from snl_video.engine import builders, preflight

    class MetaShy(torch.nn.Module):
        def forward(self, x):
            if x.is_meta:
                raise NotImplementedError("no meta kernel for this op")
            return x.mean(dim=(2, 3, 4))

    calls = []
    monkeypatch.setattr(builders, "build_model_from_config", lambda cfg, load_weights: calls.append(1) or MetaShy())
    cfg = tiny_config(tiny_prepared, tmp_path / "run")
    assert preflight.input_size_problems(cfg) == [] and len(calls) == 2  # built for meta, then for the CPU


def test_the_same_problem_found_twice_is_listed_once():
    # (the train and the test subset's checks can both find that data.root holds another dataset)
    exc = ConfigError([("data", "holds a 'folder' dataset"), ("data", "holds a 'folder' dataset"), ("model.name", "x")])
    assert exc.errors == [("data", "holds a 'folder' dataset"), ("model.name", "x")]
    assert str(exc).splitlines()[0] == "2 problem(s):"
