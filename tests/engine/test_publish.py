"""``snl-video publish`` and the loader's published folders: a folder (and the same folder in a
huggingface_hub cache, read offline) gives the checkpoint's logits exactly; tampered folders
are one clear line (exit 2)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from snl_video.cli import main
from snl_video.engine.builders import build_model_from_config
from snl_video.engine.checkpoint import checkpoint_metadata, save_checkpoint
from snl_video.engine.loading import load_inference_model
from snl_video.engine.publish import publish_model, write_safetensors

from ..helpers import tiny_config

NAMES = ["down", "left", "right", "up"]
METRICS = {"clip_top1": 62.5, "clip_top5": 100.0, "video_top1": 75.0, "video_top5": 100.0,
           "mean_class_accuracy": 75.0, "num_videos": 16, "top5_k": 4, "subset": "test",
           "clip_protocol": "centre clip of 6 frames (stride 2), centre crop 40",
           "video_protocol": "2 uniform clips x 1 crops, mean_prob", "checkpoint": "/elsewhere/checkpoints/last.pt"}


@pytest.fixture(scope="module")
def run_dir(tiny_prepared, tmp_path_factory):
    """A run folder as `train` + `eval` leave it: checkpoints/last.pt (self-describing) and eval/metrics.json."""
    out = tmp_path_factory.mktemp("publish") / "run"
    cfg = tiny_config(tiny_prepared, out)
    torch.manual_seed(0)
    model = build_model_from_config(cfg, load_weights=False)
    with torch.no_grad():  # the blocks start as the identity: move their output norm so they matter
        for name, p in model.named_parameters():
            if "nonlocal" in name:
                p.add_(0.05 * torch.randn_like(p))
    save_checkpoint({"model": model.state_dict(), "epoch": 3, **checkpoint_metadata(cfg, class_names=NAMES)},
                    out / "checkpoints" / "last.pt")
    (out / "eval").mkdir()
    (out / "eval" / "metrics.json").write_text(json.dumps(METRICS))
    return out


@pytest.fixture(scope="module")
def published(run_dir, tmp_path_factory):
    return publish_model(run_dir, out=tmp_path_factory.mktemp("pub") / "model")


def _logits(loaded, clip):
    with torch.no_grad():
        return loaded.model(clip)


def test_publish_writes_the_hub_layout(published):
    assert sorted(p.name for p in published.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((published / "config.json").read_text())
    assert config["format_version"] == 1 and config["architecture"] == "r3d10"
    assert config["class_names"] == NAMES and config["nonlocal_blocks"]["kind"] == "snl"
    assert config["input_spec"]["num_frames"] == 6 and config["input_spec"]["crop_size"] == 40
    card = (published / "README.md").read_text()
    front = card.split("---")[1]
    assert "library_name: snl_video" in front and "datasets:" in front and "value: 75.0" in front and "video-level top-4" in front
    assert "| video-level top-1 | 75.00 |" in card
    assert "Protocol: centre clip of 6 frames (stride 2), centre crop 40; 2 uniform clips x 1 crops, mean_prob" in card
    # no temporary folder left beside it
    assert [p.name for p in published.parent.iterdir()] == ["model"]


def test_published_folder_gives_the_checkpoints_logits(run_dir, published):
    from_ckpt = load_inference_model(checkpoint=run_dir / "checkpoints" / "last.pt")
    from_dir = load_inference_model(weights=published)
    assert from_dir.class_names == NAMES and from_dir.input_spec == from_ckpt.input_spec
    assert (from_dir.num_clips, from_dir.num_crops) == (from_ckpt.num_clips, from_ckpt.num_crops)
    clip = torch.randn(2, 3, 6, 40, 40)
    assert torch.equal(_logits(from_dir, clip), _logits(from_ckpt, clip))


def _hub_cache(tmp_path, folder, repo="my-lab/tiny-snl", revision="a" * 40):
    """``folder`` laid out as huggingface_hub caches a model repository (blobs, snapshots, refs/main)."""
    owner, name = repo.split("/")
    root = tmp_path / "hub" / f"models--{owner}--{name}"
    snap = root / "snapshots" / revision
    snap.mkdir(parents=True)
    (root / "blobs").mkdir()
    for i, f in enumerate(sorted(folder.iterdir())):
        blob = root / "blobs" / f"{i:040x}"
        shutil.copyfile(f, blob)
        (snap / f.name).symlink_to(f"../../blobs/{blob.name}")
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(revision)
    return tmp_path / "hub"


@pytest.fixture
def offline_cache(tmp_path, published, monkeypatch):
    pytest.importorskip("huggingface_hub")  # the [hub] extra ([test] installs it)
    import huggingface_hub.constants as hub_constants

    cache = _hub_cache(tmp_path, published)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    # huggingface_hub reads both variables once, when it is imported (earlier in this process)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_hf_name_loads_from_the_cache_offline(run_dir, offline_cache):
    from_ckpt = load_inference_model(checkpoint=run_dir / "checkpoints" / "last.pt")
    clip = torch.randn(1, 3, 6, 40, 40)
    for name in ("hf://my-lab/tiny-snl", "hf://my-lab/tiny-snl@main", "hf://my-lab/tiny-snl@" + "a" * 40):
        loaded = load_inference_model(weights=name)
        assert loaded.source == name and loaded.class_names == NAMES
        assert torch.equal(_logits(loaded, clip), _logits(from_ckpt, clip))


def _export(weights, tmp_path) -> int:
    """``export`` loads the model before anything else: the loader's errors reach the CLI as they are."""
    return main(["export", "--weights", str(weights), "--format", "pt2", "--out", str(tmp_path / "m.pt2")])


def test_hf_name_not_in_the_cache_is_one_line(offline_cache, tmp_path, capsys):
    assert _export("hf://my-lab/other", tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not in the huggingface_hub cache" in err and "HF_HUB_OFFLINE" in err
    assert _export("hf://no-owner", tmp_path) == 2
    assert "OWNER/NAME" in capsys.readouterr().err


def _copy(published, tmp_path):
    return shutil.copytree(published, tmp_path / "copy")


def _load_error(folder, capsys) -> str:
    assert _export(folder, folder) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_config_of_another_architecture_is_one_line(published, tmp_path, capsys):
    folder = _copy(published, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["architecture"] = "r3d50"
    (folder / "config.json").write_text(json.dumps(config))
    assert "architecture 'r3d50' disagrees with its recipe's model.name 'r3d10'" in _load_error(folder, capsys)
    # both edited consistently: the tensors no longer fit the network it describes
    config["recipe"]["model"]["name"] = "r3d18"
    (folder / "config.json").write_text(json.dumps(config | {"architecture": "r3d18"}))
    err = _load_error(folder, capsys)
    assert "model.safetensors does not fit the r3d18" in err and "publish it again" in err


def test_a_run_folder_as_weights_points_to_checkpoint(run_dir, capsys):
    assert "is a run folder, not a published model folder: pass --checkpoint" in _load_error(run_dir, capsys)


def test_config_missing_keys_is_one_line(published, tmp_path, capsys):
    folder = _copy(published, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    del config["input_spec"], config["class_names"]
    (folder / "config.json").write_text(json.dumps(config))
    err = _load_error(folder, capsys)
    assert "lacks class_names, input_spec" in err


def test_wrong_shapes_in_safetensors_are_one_line(published, tmp_path, capsys):
    from safetensors.torch import load_file

    folder = _copy(published, tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    state["fc.weight"] = torch.zeros(7, state["fc.weight"].shape[1])
    write_safetensors(state, folder / "model.safetensors")
    err = _load_error(folder, capsys)
    assert "1 of another shape (fc.weight: checkpoint [7, " in err


def test_publish_refuses_a_non_empty_out_and_a_bare_folder(run_dir, published, tmp_path, capsys):
    assert main(["publish", str(run_dir), "--out", str(published)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["publish", "--checkpoint", str(run_dir / "checkpoints" / "last.pt"), "--out",
                 str(tmp_path / "m")]) == 0
    assert "No evaluation was published" in (tmp_path / "m" / "README.md").read_text()
    # a run whose eval/metrics.json evaluated another checkpoint (best.pt): its numbers are not this model's
    run = shutil.copytree(run_dir, tmp_path / "run")
    shutil.copyfile(run / "checkpoints" / "last.pt", run / "checkpoints" / "best.pt")
    assert main(["publish", str(run), "--out", str(tmp_path / "b")]) == 0
    assert "No evaluation was published" in (tmp_path / "b" / "README.md").read_text()
    assert main(["publish", str(tmp_path / "m"), "--out", str(tmp_path / "n")]) == 2
    assert "not a run folder with a checkpoint" in capsys.readouterr().err


def test_hf_name_without_huggingface_hub_is_one_line(monkeypatch, tmp_path, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # what an install without the [hub] extra sees
    assert _export("hf://my-lab/tiny-snl", tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install "snl-video[hub]"' in err


def test_a_failed_push_is_one_line_and_keeps_the_folder(run_dir, offline_cache, tmp_path, capsys):
    # offline, the upload cannot happen (the real upload needs the network and a token: not tested here)
    out = tmp_path / "pushed"
    assert main(["publish", "--checkpoint", str(run_dir / "checkpoints" / "last.pt"), "--out", str(out),
                 "--push-to-hub", "my-lab/tiny-snl"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "push of" in err and "the folder is kept" in err
    assert (out / "model.safetensors").is_file()
