"""A run's record is the model it trained.

For every weights registry entry, a stand-in file in the entry's upstream layout goes into
``$SNL_VIDEO_CACHE``; a recipe that names the entry fine-tunes one step, and then the final
evaluation, ``eval``, ``predict`` and ``--resume`` all rebuild the model from the run's
record (``config.yaml`` / the checkpoint), without the registry implying anything again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from snl_video.cli import main as cli
from snl_video.config import config_from_dict, load_config
from snl_video.data.prepare import PrepareSettings, prepare_ucf101
from snl_video.data.synthetic import make_synthetic_ucf101
from snl_video.engine.builders import build_model_from_config, resolve_recipe
from snl_video.engine.checkpoint import load_training_checkpoint
from snl_video.weights.registry import WEIGHTS, PretrainedWeights, get_weights

from ..weights.sources import save_hara2017

#: Entries whose architecture is a ResNet-50 or deeper: minutes on a 2-core CPU, in the slow suite.
#: The default suite keeps one entry of each family (hara, torchvision, pytorchvideo, FFC, BAT).
_DEFAULT = {"r3d18.hara2017_k400", "r3d_18.torchvision_k400",
            "c2d_r50.pytorchvideo_k400", "ffc_c2d_r50.ffc_lfu_imagenet", "bat_c2d_r50.bat2d_k400"}


def _entry_params() -> list:
    return [pytest.param(e.name, id=e.name, marks=() if e.name in _DEFAULT else pytest.mark.slow) for e in WEIGHTS]


def test_the_default_suite_covers_every_family():
    families = {get_weights(n).format for n in _DEFAULT}
    assert {"hara2017", "torchvision_video", "pytorchvideo", "ffc", "bat_video"} <= families
    assert _DEFAULT <= {e.name for e in WEIGHTS}


def write_stand_in(entry: PretrainedWeights, directory: Path) -> Path:
    """A file of ``entry``'s architecture in its upstream layout, random weights, under its file name."""
    path = directory / entry.file_name
    torch.manual_seed(0)
    if entry.format == "hara2017":
        from snl_video.models import build_model

        save_hara2017(build_model(entry.architecture, num_classes=entry.num_classes, **dict(entry.model_options)), path)
    elif entry.format == "hara2020":
        from snl_video.models import build_model

        model = build_model(entry.architecture, num_classes=entry.num_classes)
        torch.save({"epoch": 200, "arch": "resnet", "state_dict": model.state_dict(), "optimizer": {}}, path)
    elif entry.format == "torchvision_video":
        import torchvision.models.video as tv

        torch.save(getattr(tv, entry.architecture)(num_classes=entry.num_classes).state_dict(), path)
    elif entry.format == "pytorchvideo":
        from pytorchvideo.models import hub

        torch.save({"model_state": getattr(hub, entry.architecture)(pretrained=False).state_dict()}, path)
    elif entry.format == "ffc":
        from ..models.ffc_reference import RefFFCResNet50

        ref = RefFFCResNet50(ratio=0.25, lfu=dict(entry.model_options)["lfu"], num_classes=entry.num_classes)
        torch.save({"epoch": 90, "arch": "ffc_resnet50", "state_dict": {f"module.{k}": v for k, v in
                                                                        ref.state_dict().items()}}, path)
    elif entry.format == "bat_video":
        from ..models.bat_reference import RefBATResNet50

        variant = entry.architecture.split("_")[1]
        bat = dict(entry.nonlocal_blocks["options"]) if entry.nonlocal_blocks else None
        torch.save({"state_dict": RefBATResNet50(variant, num_classes=entry.num_classes, bat=bat).state_dict()}, path)
    elif entry.format in ("pytorchvideo_slowfast", "pytorchvideo_x3d"):
        from pytorchvideo.models import hub

        torch.save({"model_state": getattr(hub, entry.architecture)(pretrained=False).state_dict()}, path)
    elif entry.format == "torchvision_baseline":
        import torchvision.models.video as tv

        torch.save(getattr(tv, entry.architecture)().state_dict(), path)
    else:  # a new format: add its stand-in here
        raise AssertionError(f"no stand-in writer for format {entry.format!r} ({entry.name})")
    return path


@pytest.fixture(scope="module")
def small_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 classes x 4 videos of 10 frames, prepared at short side 112: one-step epochs."""
    root = tmp_path_factory.mktemp("record_ucf")
    make_synthetic_ucf101(root / "raw", num_classes=2, videos_per_class=4, video_frames=10, frame_jitter=0, seed=0,
                          progress=False)
    prepare_ucf101(root / "raw" / "UCF-101", root / "raw" / "ucfTrainTestlist", root / "prepared", splits=[1],
                   workers=1, settings=PrepareSettings(short_side=112, num_frames=8, storage="npy"), progress=False)
    return root / "prepared"


def _recipe(entry: PretrainedWeights, data_root: Path, out: Path, *, epochs: int) -> dict:
    # BAT's blocks need 8 frames and maps whose side is a multiple of 7 (112: 14 and 7 in
    # layer2 / layer3); 4x32x32 is the smallest clip the other trunks allow.
    frames, crop = (8, 112) if entry.nonlocal_blocks else (4, 32)
    if entry.format == "pytorchvideo_slowfast":
        frames, crop = 8, 64  # alpha = 4: two slow frames; maps of at least 2x2 at the last stage
    elif entry.format == "torchvision_baseline":
        frames, crop = 16, 224  # MViT / Swin3D position tables fix the clip
    return {
        "name": "record",
        "model": {"name": entry.architecture, "num_classes": 2},
        "pretrained": entry.name,
        "data": {"root": str(data_root), "num_frames": frames, "sampling_stride": 1, "crop_size": crop,
                 "batch_size": 8, "num_workers": 0, "horizontal_flip": False, "train_scales": [1.0]},
        "optim": {"lr": 0.001},
        "schedule": {"epochs": epochs, "kind": "step"},
        "eval": {"num_clips": 1, "num_crops": 1, "batch_size": 8, "every_epochs": 0},
        "runtime": {"device": "cpu", "output_dir": str(out), "progress": False, "tensorboard": False},
    }


@pytest.mark.parametrize("name", _entry_params())
def test_fine_tune_then_final_eval_eval_predict_and_resume_all_rebuild_the_trained_model(
        name, small_prepared, tmp_path, monkeypatch, capsys):
    entry = get_weights(name)
    if entry.sha256 is not None:  # a stand-in is not the published file: its checksum cannot match
        import dataclasses

        from snl_video.weights import registry

        entry = dataclasses.replace(entry, sha256=None)
        monkeypatch.setitem(registry.WEIGHTS_BY_NAME, name, entry)
    cache = tmp_path / "cache"
    cache.mkdir()
    write_stand_in(entry, cache)
    monkeypatch.setenv("SNL_VIDEO_CACHE", str(cache))
    out = tmp_path / "run"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(_recipe(entry, small_prepared, out, epochs=1)))

    # config check prints the resolved record: what the entry implied, as comments and in the YAML
    assert cli(["config", "check", str(recipe)]) == 0
    checked = capsys.readouterr().out
    resolved = resolve_recipe(load_config(recipe))
    for key, _, _ in resolved.implied:
        assert f"# resolved: {key}=" in checked
    assert yaml.safe_load(checked)["model"]["options"] == dict(entry.model_options)

    # fine-tune one step, then the final evaluation (from last.pt and the recipe)
    assert cli(["train", "--config", str(recipe)]) == 0
    assert (out / "eval" / "metrics.json").is_file()
    record = load_config(out / "config.yaml")
    assert record == resolved.config  # the record is the resolved recipe
    for key, value in entry.model_options:
        assert record.model.options[key] == value
    if entry.nonlocal_blocks is not None:
        assert record.nonlocal_blocks is not None and record.nonlocal_blocks.kind == entry.nonlocal_blocks["kind"]
        assert record.nonlocal_blocks.positions == {k: tuple(v) for k, v in entry.nonlocal_blocks["positions"].items()}
    assert (record.data.mean, record.data.std, record.data.value_scale) == (
        entry.input_spec.mean, entry.input_spec.std, float(entry.input_spec.value_scale))
    ckpt = out / "checkpoints" / "last.pt"
    stored = load_training_checkpoint(ckpt)
    assert config_from_dict(stored["recipe"]) == record

    # without the weights file or any registry help: the record alone rebuilds the model
    monkeypatch.setenv("SNL_VIDEO_CACHE", str(tmp_path / "empty"))
    without_pretrained = config_from_dict({**stored["recipe"], "pretrained": None})
    model = build_model_from_config(without_pretrained, load_weights=False)
    assert set(model.state_dict()) == set(stored["model"])

    assert cli(["eval", "--checkpoint", str(ckpt), "--out", str(tmp_path / "eval")]) == 0
    assert (tmp_path / "eval" / "metrics.json").is_file()
    assert cli(["eval", "--config", str(recipe), "--checkpoint", str(ckpt), "--out", str(tmp_path / "eval2")]) == 0
    video = next((small_prepared.parent / "raw" / "UCF-101").rglob("*.avi"))
    capsys.readouterr()
    assert cli(["predict", "--checkpoint", str(ckpt), str(video), "--top-k", "1", "--clips", "1", "--crops", "1",
                "--no-progress"]) == 0
    assert video.name in capsys.readouterr().out

    # --resume with one more epoch (the recipe file, unresolved, against the resolved record)
    monkeypatch.setenv("SNL_VIDEO_CACHE", str(cache))
    assert cli(["train", "--config", str(recipe), "--resume", "schedule.epochs=2"]) == 0
    assert int(load_training_checkpoint(ckpt)["epoch"]) == 2


def test_a_model_option_contradicting_the_weights_is_refused_by_config_check(tmp_path, capsys):
    entry = get_weights("r3d18.hara2017_k400")
    raw = _recipe(entry, tmp_path, tmp_path / "run", epochs=1)
    raw["model"]["options"] = {"shortcut": "B"}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    assert cli(["config", "check", "--no-data", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "shortcut" in err and "r3d18.hara2017_k400" in err


def test_resolution_is_idempotent_and_fills_the_default_placement(tmp_path):
    cfg = config_from_dict({"model": {"name": "r3d18", "num_classes": 5}, "nonlocal_blocks": "snl",
                            "pretrained": "r3d18.hara2017_k400", "data": {"root": str(tmp_path)}})
    first = resolve_recipe(cfg)
    assert first.config.model.options == {"shortcut": "A"}
    assert first.config.nonlocal_blocks.positions == {"layer3": (0,)}  # r3d18: 2 blocks in res4, before the last
    assert first.config.data.value_scale == 255.0
    again = resolve_recipe(first.config)
    assert again.config == first.config and again.implied == ()
