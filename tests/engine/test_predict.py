"""predict: the same scores as eval's video-level row, the CSV/JSON outputs, timelines, bad files."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import snl_video
from snl_video.cli import main
from snl_video.data.decoding import read_frames
from snl_video.data.sampling import sliding_clips
from snl_video.data.transforms import NormalizationSpec, eval_transform
from snl_video.data.ucf101 import read_class_index
from snl_video.engine.builders import build_dataset, build_model_from_config, normalization_from_config
from snl_video.engine.checkpoint import checkpoint_metadata, save_checkpoint
from snl_video.engine.evaluate import run_evaluation

from ..helpers import NUM_CLASSES, tiny_config, write_random_video


@pytest.fixture(scope="module")
def video_run(tiny_prepared, tmp_path_factory):
    """A random model (random head) whose recipe evaluates the original AVIs with PyAV."""
    out = tmp_path_factory.mktemp("predict")
    raw = tiny_prepared.parent / "raw"
    cfg = tiny_config(tiny_prepared, out / "run",
                      data={"backend": "pyav", "root": str(raw / "UCF-101"), "splits_dir": str(raw / "ucfTrainTestlist")},
                      eval={"num_clips": 2, "num_crops": 3, "batch_size": 6})
    torch.manual_seed(3)
    model = build_model_from_config(cfg)
    torch.nn.init.normal_(model.fc.weight, std=2.0)
    names = read_class_index(raw / "ucfTrainTestlist")
    state = {"model": model.state_dict(), "epoch": 1,
             **checkpoint_metadata(cfg, class_names=names, normalization=normalization_from_config(cfg))}
    ckpt = save_checkpoint(state, out / "ckpt.pt")
    return cfg, ckpt, model.eval(), names


def test_predict_gives_evals_video_level_scores(video_run, tmp_path):
    cfg, ckpt, _, names = video_run
    report = run_evaluation(cfg, ckpt, out_dir=tmp_path / "eval")
    videos = build_dataset(cfg, subset="test", mode="clip").videos
    for row in (0, len(report.videos.video_ids) - 1):
        path = videos[report.videos.video_ids[row]].path
        result = snl_video.predict(path, checkpoint=ckpt)
        (pred,) = result.predictions
        np.testing.assert_allclose(pred.probabilities, report.videos.scores[row], rtol=1e-5, atol=1e-7)
        expected = np.argsort(-report.videos.scores[row], kind="stable")[:4]
        assert [c.index for c in pred.top_k] == expected.tolist()
        assert [c.class_name for c in pred.top_k] == [names[i] for i in expected]
        assert all(0.0 <= c.probability <= 1.0 for c in pred.top_k)
        assert result.top_k == NUM_CLASSES and "--top-k 5" in result.notes[0]  # clamped to 4 classes


def _bad_files(folder: Path, good: Path) -> None:
    (folder / "empty.avi").write_bytes(b"")
    (folder / "not_a_video.mp4").write_text("hello, I am text\n" * 50)
    data = good.read_bytes()
    (folder / "truncated.avi").write_bytes(data[: len(data) // 3])


def test_cli_folder_with_bad_files_csv_and_json(video_run, tmp_path, capsys):
    cfg, ckpt, _, names = video_run
    good = sorted(Path(cfg.data.root).rglob("*.avi"))[:2]
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(good[0], folder / "a.avi")
    shutil.copy(good[1], folder / "sub" / "b.avi")
    _bad_files(folder, good[0])
    assert main(["predict", "--checkpoint", str(ckpt), str(folder), "--top-k", "3", "--out", str(tmp_path / "p.csv"),
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["video", "start_s", "end_s", "rank", "class", "probability"]
    assert [r[0] for r in rows[1:]] == [str(folder / "a.avi")] * 3 + [str(folder / "sub" / "b.avi")] * 3
    assert [r[3] for r in rows[1:4]] == ["1", "2", "3"] and all(r[4] in names for r in rows[1:])
    probs = [float(r[5]) for r in rows[1:4]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
    assert "3 of 5 video(s) failed" in captured.err
    with open(tmp_path / "p.errors.csv") as f:  # a CSV cannot hold the failures: they go beside it
        failed = list(csv.reader(f))
    assert failed[0] == ["video", "reason"]
    assert sorted(Path(r[0]).name for r in failed[1:]) == ["empty.avi", "not_a_video.mp4", "truncated.avi"]
    assert all(r[1] for r in failed[1:]) and f"failed videos: {tmp_path / 'p.errors.csv'}" in captured.out

    assert main(["predict", "--checkpoint", str(ckpt), str(folder), "--out", str(tmp_path / "p.json"),
                 "--no-progress"]) == 0
    data = json.loads((tmp_path / "p.json").read_text())
    assert set(data) == {"predictions", "errors"}
    assert set(data["predictions"][0]) == {"video", "start_s", "end_s", "top_k"}
    assert set(data["predictions"][0]["top_k"][0]) == {"class", "probability"}
    assert len(data["predictions"][0]["top_k"]) == NUM_CLASSES  # 5 clamped to 4
    assert "more than the model's 4 classes" in capsys.readouterr().err
    reasons = {Path(e["video"]).name: e["reason"] for e in data["errors"]}
    assert set(reasons) == {"empty.avi", "not_a_video.mp4", "truncated.avi"}
    assert reasons["empty.avi"] == "empty file (0 bytes)" and all(reasons.values())


def test_cli_bad_inputs_are_one_line_errors(video_run, tmp_path, capsys):
    cfg, ckpt, _, _ = video_run
    folder = tmp_path / "bad"
    folder.mkdir()
    _bad_files(folder, sorted(Path(cfg.data.root).rglob("*.avi"))[0])
    cases = {
        "none of the 3 video(s) could be predicted": [str(folder)],
        "does not exist": [str(tmp_path / "missing.mp4")],
        "holds no videos": [str(tmp_path / "empty_dir")],
    }
    (tmp_path / "empty_dir").mkdir()
    for message, inputs in cases.items():
        assert main(["predict", "--checkpoint", str(ckpt), *inputs, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert message in err[-1], err
    video = str(sorted(Path(cfg.data.root).rglob("*.avi"))[0])
    assert main(["predict", "--checkpoint", str(ckpt), video, "--window", "1"]) == 2
    assert "--window-seconds and --stride-seconds go together" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(ckpt), video, "--out", str(tmp_path / "p.txt")]) == 2
    assert ".csv or .json" in capsys.readouterr().err


def test_window_timeline_uses_sliding_clips(video_run):
    cfg, ckpt, model, names = video_run
    video = sorted(Path(cfg.data.root).rglob("*.avi"))[0]
    result = snl_video.predict(video, checkpoint=ckpt, window_seconds=0.6, stride_seconds=0.2, num_crops=1, top_k=2)
    import av

    with av.open(str(video)) as c:
        num_frames = c.streams.video[0].frames
    window, step, fps = 15, 5, 25  # 0.6 s and 0.2 s at 25 fps
    starts = list(range(0, num_frames - window + 1, step))
    assert [(p.start_s, p.end_s) for p in result.predictions] == [(s / fps, (s + window) / fps) for s in starts]
    # an independent restatement of one window: its non-overlapping 6x2 clips, centre crop, softmax mean
    norm = NormalizationSpec((0.45,) * 3, (0.225,) * 3, 1.0)
    transform = eval_transform(norm, size=40, crops=1)
    start = starts[-1]
    clips = sliding_clips(window, num_frames=6, stride=2)
    assert len(clips) == 1  # span 11 in a 15-frame window
    x = torch.stack([transform(read_frames(video, [start + i for i in clip])) for clip in clips])
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1).mean(0).numpy()
    np.testing.assert_allclose(result.predictions[-1].probabilities, expected, rtol=1e-5, atol=1e-7)
    assert [c.class_name for c in result.predictions[-1].top_k] == [names[i] for i in np.argsort(-expected)[:2]]


def test_old_checkpoint_and_wrong_architecture_are_clear_errors(video_run, tmp_path, capsys):
    cfg, ckpt, model, _ = video_run
    video = str(sorted(Path(cfg.data.root).rglob("*.avi"))[0])
    old = save_checkpoint({"model": model.state_dict(), "epoch": 1}, tmp_path / "old.pt")
    assert main(["predict", "--checkpoint", str(old), video]) == 2
    assert "pass --config RECIPE" in capsys.readouterr().err
    other = tiny_config(Path(cfg.data.root), tmp_path / "o", model={"name": "r3d18"})
    from snl_video.config import save_config

    other_file = save_config(other, tmp_path / "other.yaml")
    assert main(["predict", "--checkpoint", str(old), "--config", str(other_file), video]) == 2
    err = capsys.readouterr().err
    assert "does not fit the model of this config (model r3d18" in err and len(err.strip().splitlines()) == 1
    # a foreign state dict given as --checkpoint: the line names --weights, the flag that reads it
    foreign = tmp_path / "foreign.pth"
    torch.save(model.state_dict(), foreign)
    assert main(["predict", "--checkpoint", str(foreign), video]) == 2
    err = capsys.readouterr().err
    assert "not a training checkpoint" in err and "--weights FILE for predict" in err and len(err.strip().splitlines()) == 1


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_runs_code_is_refused_by_checkpoint_and_weights(video_run, tmp_path, capsys):
    cfg, _, _, _ = video_run
    video = str(sorted(Path(cfg.data.root).rglob("*.avi"))[0])
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "x": _RunsCode(str(marker))}, evil)
    for flag in ("--checkpoint", "--weights"):
        assert main(["predict", flag, str(evil), video]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "could run" in err[0], err
    assert not marker.exists()


@pytest.mark.parametrize("ext, codec", [(".mkv", "mpeg4"), (".webm", "libvpx"), (".mp4", "mpeg4")])
def test_other_containers_including_ones_without_a_frame_count(video_run, tmp_path, ext, codec):
    from snl_video.data.sampling import uniform_clips

    _, ckpt, model, _ = video_run
    path = tmp_path / f"v{ext}"
    write_random_video(path, num_frames=20, codec=codec, seed=0)
    (pred,) = snl_video.predict(path, checkpoint=ckpt, num_crops=1).predictions
    assert pred.end_s == pytest.approx(20 / 25)  # counted by decoding where the container declares no count
    transform = eval_transform(NormalizationSpec((0.45,) * 3, (0.225,) * 3, 1.0), size=40, crops=1)
    x = torch.stack([transform(read_frames(path, c)) for c in uniform_clips(20, num_frames=6, stride=2, num_clips=2)])
    with torch.no_grad():
        expected = torch.softmax(model(x), 1).mean(0).numpy()
    np.testing.assert_allclose(pred.probabilities, expected, rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def prepared_run(tiny_prepared, tmp_path_factory):
    """A random model whose recipe trains and evaluates on prepared frames that prepare resized
    (48x64 videos stored at short side 44, then resized to 40 by the evaluation transform)."""
    from snl_video.data.prepare import PrepareSettings, prepare_ucf101

    out = tmp_path_factory.mktemp("predict_prepared")
    raw = tiny_prepared.parent / "raw"
    prepare_ucf101(raw / "UCF-101", raw / "ucfTrainTestlist", out / "prepared", splits=[1], workers=1,
                          settings=PrepareSettings(short_side=44, num_frames=6, storage="npy"), progress=False)
    root = out / "prepared"
    cfg = tiny_config(root, out / "run", eval={"num_clips": 2, "num_crops": 3, "batch_size": 6})
    torch.manual_seed(4)
    model = build_model_from_config(cfg)
    torch.nn.init.normal_(model.fc.weight, std=2.0)
    names = read_class_index(tiny_prepared.parent / "raw" / "ucfTrainTestlist")
    state = {"model": model.state_dict(), "epoch": 1,
             **checkpoint_metadata(cfg, class_names=names, normalization=normalization_from_config(cfg))}
    return cfg, save_checkpoint(state, out / "ckpt.pt"), raw / "UCF-101"


def test_predict_on_the_video_files_equals_eval_on_their_prepared_frames(prepared_run, tmp_path):
    cfg, ckpt, raw = prepared_run
    from snl_video.data.prepared import load_index

    assert torch.load(ckpt, weights_only=True)["prepared_frames"] == {"short_side": 44, "storage": "npy"}
    report = run_evaluation(cfg, ckpt, out_dir=tmp_path / "eval")
    source_of = {str(Path(cfg.data.root) / r.frames_file): r.path for r in load_index(cfg.data.root).itertuples()}
    prepared = build_dataset(cfg, subset="test", mode="clip").videos
    files = [raw / source_of[prepared[i].path] for i in report.videos.video_ids]
    result = snl_video.predict(files, checkpoint=ckpt, top_k=1)
    assert not result.errors
    got = np.stack([p.probabilities for p in result.predictions])
    np.testing.assert_allclose(got, report.videos.scores, rtol=1e-5, atol=1e-6)
    # the same model without the prepared resize differs measurably: the test can fail
    from snl_video.engine.loading import load_inference_model

    loaded = load_inference_model(checkpoint=ckpt)
    loaded.frame_short_side = None
    direct = np.stack([p.probabilities for p in snl_video.predict(files[:4], model=loaded, top_k=1).predictions])
    assert np.abs(direct - report.videos.scores[:4]).max() > 1e-4


def test_i3d_predict_in_fp32_channels_last_equals_eval_in_the_contiguous_layout(prepared_run, tmp_path):
    """i3d_r50 is in ``FP32_CHANNELS_LAST_ON_CPU`` (measured faster, docs/cpu_inference.md): predict
    feeds it channels-last 3D in fp32 on the CPU, eval (``runtime.channels_last: false``) the
    contiguous layout; the video-level scores must agree to float rounding. The SNL block's
    output BN is set non-zero so its path is not the identity."""
    from snl_video.data.prepared import load_index
    from snl_video.engine.loading import load_inference_model
    from snl_video.nonlocal_blocks import NonLocalBlock

    base, _, raw = prepared_run
    cfg = tiny_config(Path(base.data.root), tmp_path / "run", model={"name": "i3d_r50", "num_classes": NUM_CLASSES, "options": {}},
                      eval={"num_clips": 2, "num_crops": 1, "batch_size": 4})
    assert not cfg.runtime.channels_last
    torch.manual_seed(5)
    model = build_model_from_config(cfg)
    blocks = [m for m in model.modules() if isinstance(m, NonLocalBlock)]
    assert blocks
    for block in blocks:
        torch.nn.init.ones_(block.bn.weight)
    torch.nn.init.normal_(model.fc.weight, std=0.05)  # 2048 features: logits of a few units, softmax not saturated
    names = read_class_index(raw.parent / "ucfTrainTestlist")
    state = {"model": model.state_dict(), "epoch": 1,
             **checkpoint_metadata(cfg, class_names=names, normalization=normalization_from_config(cfg))}
    ckpt = save_checkpoint(state, tmp_path / "i3d.pt")
    report = run_evaluation(cfg, ckpt, out_dir=tmp_path / "eval")
    source_of = {str(Path(cfg.data.root) / r.frames_file): r.path for r in load_index(cfg.data.root).itertuples()}
    prepared = build_dataset(cfg, subset="test", mode="clip").videos
    files = [raw / source_of[prepared[i].path] for i in report.videos.video_ids[:4]]
    loaded = load_inference_model(checkpoint=ckpt)
    assert loaded.set_precision("fp32").channels_last  # the measured default for this family
    got = np.stack([p.probabilities for p in snl_video.predict(files, model=loaded, top_k=1).predictions])
    np.testing.assert_allclose(got, report.videos.scores[:4], rtol=1e-4, atol=1e-6)
    assert np.abs(report.videos.scores[:4] - 1.0 / NUM_CLASSES).max() > 0.05  # far from uniform: the comparison means something


def test_a_run_where_every_video_fails_leaves_an_earlier_output_file_as_it_was(video_run, tmp_path, capsys):
    """Exit 2 and the earlier run's predictions kept (they used to be replaced by an empty table),
    with a note saying so; no partial file left behind."""
    cfg, ckpt, _, _ = video_run
    good = sorted(Path(cfg.data.root).rglob("*.avi"))[0]
    out = tmp_path / "p.csv"
    assert main(["predict", "--checkpoint", str(ckpt), str(good), "--out", str(out), "--no-progress"]) == 0
    before = out.read_text()
    assert before.count("\n") > 1
    bad = tmp_path / "bad"
    bad.mkdir()
    _bad_files(bad, good)
    assert main(["predict", "--checkpoint", str(ckpt), str(bad), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert out.read_text() == before
    assert f"{out} from before was left as it was" in err and "none of the 3 video(s) could be predicted" in err
    assert not (tmp_path / "p.partial.csv").exists()


def test_the_top_k_clamp_note_is_shown_once(video_run, capsys, caplog):
    cfg, ckpt, _, _ = video_run
    video = sorted(Path(cfg.data.root).rglob("*.avi"))[0]
    with caplog.at_level("INFO"):
        assert main(["predict", "--checkpoint", str(ckpt), str(video), "--no-progress"]) == 0
    note = "is more than the model's 4 classes"
    shown = capsys.readouterr().err.count(note) + sum(
        note in r.getMessage() for r in caplog.records if r.levelno >= 20)  # logged at INFO reaches the user's stderr too
    assert shown == 1


def test_a_video_shorter_than_a_clip_gets_a_note(video_run, tmp_path, capsys):
    _, ckpt, _, _ = video_run  # clips of 6 frames every 2: 11 frames
    short = tmp_path / "one.mp4"
    write_random_video(short, num_frames=1, seed=1)
    long = tmp_path / "long.mp4"
    write_random_video(long, num_frames=12, seed=1)
    result = snl_video.predict([short, long], checkpoint=ckpt, top_k=1)
    assert len(result.predictions) == 2
    (note,) = [n for n in result.notes if "shorter than one clip" in n]
    assert str(short) in note and "1 frame(s)" in note and "11 frames" in note and "loop" in note
    assert main(["predict", "--checkpoint", str(ckpt), str(short), "--top-k", "1", "--no-progress"]) == 0
    assert capsys.readouterr().err.count("shorter than one clip") == 1


def test_a_timeline_over_a_video_shorter_than_a_clip_or_a_window_gets_a_note(video_run, tmp_path, capsys):
    """``--window-seconds``: the short-video note of whole-video predict, and one for a video shorter
    than one window (streamed windows used to say nothing)."""
    _, ckpt, _, _ = video_run  # clips of 6 frames every 2: 11 frames; the videos are at 25 fps
    short = tmp_path / "one.mp4"
    write_random_video(short, num_frames=1, seed=1)
    brief = tmp_path / "brief.mp4"
    write_random_video(brief, num_frames=12, seed=1)  # 0.48 s: longer than a clip, shorter than a 1 s window
    long = tmp_path / "long.mp4"
    write_random_video(long, num_frames=60, seed=1)  # 2.4 s
    result = snl_video.predict([short, brief, long], checkpoint=ckpt, top_k=1, window_seconds=1.0,
                               stride_seconds=1.0)
    assert {p.video for p in result.predictions} == {str(short), str(brief), str(long)}
    (clip_note,) = [n for n in result.notes if str(short) in n]
    assert "1 frame(s)" in clip_note and "shorter than one clip (11 frames" in clip_note and "loop" in clip_note
    (window_note,) = [n for n in result.notes if str(brief) in n]
    assert "0.48 s (12 frames), shorter than one --window-seconds 1 window" in window_note
    assert not [n for n in result.notes if str(long) in n]
    assert main(["predict", "--checkpoint", str(ckpt), str(short), "--top-k", "1", "--window-seconds", "1",
                 "--stride-seconds", "1", "--no-progress"]) == 0
    assert capsys.readouterr().err.count("shorter than one clip") == 1
