"""features: pooled / per-clip / stage-map features equal a restatement; folders, list files and
prepared datasets; bad videos listed; resumable."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from snl_video.cli import main
from snl_video.data.decoding import read_frames
from snl_video.data.sampling import uniform_clips
from snl_video.data.transforms import NormalizationSpec, eval_transform
from snl_video.engine.builders import build_model_from_config, normalization_from_config
from snl_video.engine.checkpoint import checkpoint_metadata, save_checkpoint
from snl_video.engine.features import extract_features
from snl_video.engine.loading import load_inference_model

from ..helpers import tiny_config


@pytest.fixture(scope="module")
def setup(tiny_prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("features")
    cfg = tiny_config(tiny_prepared, out / "run", eval={"num_clips": 2, "num_crops": 1})
    torch.manual_seed(0)
    model = build_model_from_config(cfg)
    ckpt = save_checkpoint({"model": model.state_dict(), "epoch": 1, **checkpoint_metadata(
        cfg, class_names=None, normalization=normalization_from_config(cfg))}, out / "c.pt")
    videos = out / "videos"
    raw = sorted((tiny_prepared.parent / "raw" / "UCF-101").rglob("*.avi"))
    for src in raw[:2] + raw[-1:]:
        (videos / src.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, videos / src.parent.name / src.name)
    (videos / "broken.avi").write_bytes(b"\x00" * 100)
    return ckpt, videos, model.eval()


def _expected(model, path, *, clips=2, per_clip=False):
    import av

    with av.open(str(path)) as c:
        n = c.streams.video[0].frames
    transform = eval_transform(NormalizationSpec((0.45,) * 3, (0.225,) * 3), size=40, crops=1)

    def as_prepared(frames):  # the model was trained on frames prepare stored at short side 48
        assert frames.shape[1:3] == (240, 320)
        small = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2), size=(48, 64), mode="bilinear",
                                                antialias=True)
        return small.permute(0, 2, 3, 1)

    x = torch.stack([transform(as_prepared(read_frames(path, clip)))
                     for clip in uniform_clips(n, num_frames=6, stride=2, num_clips=clips)])
    with torch.no_grad():
        feats = model.forward_features(x)
    return feats.numpy() if per_clip else feats.mean(0).numpy()


def test_folder_features_bad_video_and_resume(setup, tmp_path):
    ckpt, videos, model = setup
    loaded = load_inference_model(checkpoint=ckpt)
    out = tmp_path / "f"
    report = extract_features(loaded, videos, out)
    assert report.written == 3 and report.skipped == 0 and [Path(v).name for v, _ in report.failed] == ["broken.avi"]
    files = sorted(p.relative_to(out) for p in out.rglob("*.npy"))
    assert len(files) == 3 and all(len(f.parts) == 2 for f in files)  # Class/v_....npy mirrors the tree
    first = sorted(videos.rglob("v_*.avi"))[0]
    got = np.load(out / first.parent.name / (first.stem + ".npy"))
    np.testing.assert_allclose(got, _expected(model, first), rtol=1e-5, atol=1e-6)
    with open(out / "index.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["status"].split(":")[0] for r in rows} == {"ok", "failed"} and len(rows) == 4
    assert rows[0].keys() == {"video", "features", "shape", "status", "label", "class_name", "subset"}
    assert all(r["label"] == "" and r["class_name"] == "" and r["subset"] == "" for r in rows)  # plain files do not say
    # resume: one file removed, another kept byte for byte
    kept, removed = files[0], files[1]
    before = (out / kept).read_bytes()
    (out / removed).unlink()
    again = extract_features(loaded, videos, out)
    assert again.written == 1 and again.skipped == 2 and (out / kept).read_bytes() == before
    assert (out / removed).is_file() and not list(out.rglob(".*.tmp"))


def test_per_clip_layer_list_file_and_prepared(setup, tiny_prepared, tmp_path, capsys):
    ckpt, videos, model = setup
    first = sorted(videos.rglob("v_*.avi"))[0]
    listing = videos / "list.txt"
    listing.write_text(f"{first.relative_to(videos)}\n")
    assert main(["features", str(listing), "--checkpoint", str(ckpt), "--out", str(tmp_path / "a"), "--per-clip",
                 "--no-progress"]) == 0
    (npy,) = list((tmp_path / "a").rglob("*.npy"))
    np.testing.assert_allclose(np.load(npy), _expected(model, first, per_clip=True), rtol=1e-5, atol=1e-6)
    assert main(["features", str(first), "--checkpoint", str(ckpt), "--out", str(tmp_path / "b"), "--layer", "layer3",
                 "--no-progress"]) == 0
    (npy,) = list((tmp_path / "b").rglob("*.npy"))
    assert np.load(npy).shape[0] == model.layer3[-1].bn2.num_features and np.load(npy).ndim == 4
    assert main(["features", str(first), "--checkpoint", str(ckpt), "--out", str(tmp_path / "c"), "--layer",
                 "layer9"]) == 2
    err = capsys.readouterr().err
    assert "--layer 'layer9' does not exist" in err and "layer3_after_0" in err
    loaded = load_inference_model(checkpoint=ckpt)
    report = extract_features(loaded, tiny_prepared, tmp_path / "p", num_clips=1)
    index = __import__("pandas").read_csv(tiny_prepared / "index.csv")
    assert report.written == len(index) and not report.failed
    one = np.load(tmp_path / "p" / Path(index.path[0]).with_suffix(".npy"))
    with open(tmp_path / "p" / "index.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["label"]), r["class_name"]) for r in rows] == list(zip(index.label, index.class_name))
    # the subset of each video, from the prepared index's subset_<split> column
    assert [r["subset"] for r in rows] == list(index.subset_1) and {r["subset"] for r in rows} == {"train", "test"}
    assert one.shape == (model.fc.in_features,)


def test_the_subset_cell_of_a_dataset_prepared_for_several_splits_names_each_split():
    from collections import namedtuple

    from snl_video.engine.features import subset_cell

    Row = namedtuple("Row", ["path", "subset_1", "subset_2", "subset_3"])
    columns = ["subset_1", "subset_2", "subset_3"]
    assert subset_cell(Row("a", "train", "test", "train"), columns) == "1:train 2:test 3:train"
    assert subset_cell(Row("a", "train", float("nan"), "test"), columns) == "1:train 3:test"  # not in split 2's lists
    assert subset_cell(Row("a", "test", "x", "y"), ["subset_1"]) == "test"
    assert subset_cell(Row("a", float("nan"), "x", "y"), ["subset_1"]) == ""


def _second_checkpoint(setup, tmp_path) -> Path:
    """Another model of the same recipe (other weights) as a checkpoint."""
    ckpt, _, _ = setup
    from snl_video.engine.checkpoint import load_training_checkpoint

    state = load_training_checkpoint(ckpt)
    state["model"] = {k: (v + 1 if v.is_floating_point() else v) for k, v in state["model"].items()}
    return save_checkpoint(state, tmp_path / "other.pt")


def test_a_rerun_with_another_model_or_layer_is_refused_naming_it_and_nothing_is_overwritten(setup, tmp_path, capsys):
    ckpt, videos, _ = setup
    first = sorted(videos.rglob("v_*.avi"))[0]
    out = tmp_path / "f"
    args = ["features", str(first), "--out", str(out), "--no-progress"]
    assert main([*args, "--checkpoint", str(ckpt)]) == 0
    (npy,) = list(out.rglob("*.npy"))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    other = _second_checkpoint(setup, tmp_path)
    assert main([*args, "--checkpoint", str(other)]) == 2
    err = capsys.readouterr().err
    assert "weights_sha256" in err and "--overwrite" in err and str(other) in err
    assert main([*args, "--checkpoint", str(ckpt), "--layer", "layer3"]) == 2
    err = capsys.readouterr().err
    assert "layer: 'pooled' (recorded" in err and "'layer3' (now" in err
    assert main([*args, "--checkpoint", str(ckpt), "--clips", "3"]) == 2
    assert "num_clips: 2 (recorded" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing touched
    # the same settings resume (0 written); --overwrite recomputes with the other model
    assert main([*args, "--checkpoint", str(ckpt)]) == 0
    assert "0 written, 1 already there" in capsys.readouterr().out
    assert main([*args, "--checkpoint", str(other), "--overwrite"]) == 0
    assert "1 written, 0 already there" in capsys.readouterr().out
    assert npy.read_bytes() != before[npy]
    loaded = load_inference_model(checkpoint=other)
    from snl_video.engine.records import weights_digest

    assert __import__("json").loads((out / "features.json").read_text())["weights_sha256"] == weights_digest(loaded.model)


def test_a_folder_of_features_without_a_record_is_not_reused_silently(setup, tmp_path, capsys):
    ckpt, videos, _ = setup
    first = sorted(videos.rglob("v_*.avi"))[0]
    out = tmp_path / "old"
    (out / "Class").mkdir(parents=True)
    np.save(out / "Class" / "stale.npy", np.zeros(3, dtype=np.float32))
    args = ["features", str(first), "--checkpoint", str(ckpt), "--out", str(out), "--no-progress"]
    assert main(args) == 2
    assert "no features.json" in capsys.readouterr().err
    assert (out / "Class" / "stale.npy").is_file()
    assert main([*args, "--overwrite"]) == 0
    assert not (out / "Class" / "stale.npy").exists() and (out / "features.json").is_file()


def test_a_list_file_takes_paths_with_spaces_as_is_or_quoted_and_names_the_line_of_a_missing_one(tmp_path):
    from snl_video.engine.features import read_video_list
    from snl_video.errors import MissingFileError

    (tmp_path / "Class A").mkdir()
    videos = [tmp_path / "Class A" / "my clip.avi", tmp_path / "Class A" / "other clip.mp4"]
    for video in videos:
        video.write_bytes(b"")
    listing = tmp_path / "list.txt"
    listing.write_text(f'# two videos\nClass A/my clip.avi\n\n"{videos[1]}"\n', encoding="utf-8")
    assert read_video_list(listing) == [tmp_path / "Class A" / "my clip.avi", videos[1]]
    listing.write_text("Class A/my clip.avi\nClass A/no such clip.avi\n", encoding="utf-8")
    with pytest.raises(MissingFileError, match=r"1 missing video\(s\), e.g. line 2: .*no such clip.avi"):
        read_video_list(listing)
