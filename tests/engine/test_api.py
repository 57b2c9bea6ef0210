"""The verbs as Python functions (``snl_video.<verb>``): one calling convention, the same function as the CLI."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import snl_video
from snl_video.cli import main

from ..helpers import tiny_config

VERBS = ["train", "evaluate", "predict", "explain", "export", "features", "spectrum", "compare", "prepare", "study",
         "publish"]
MODEL_VERBS = ["evaluate", "predict", "explain", "export", "features", "spectrum"]
#: Spellings that one name per concept retired from the Python API (the concept's name in brackets).
RETIRED = {"loaded": "checkpoint/weights", "out": "output_dir/output_file", "out_dir": "output_dir",
           "frames": "num_frames", "clip_len": "num_frames", "window": "window_seconds", "stride": "stride_seconds",
           "clips": "num_clips", "crops": "num_crops", "workers": "num_workers"}


def test_import_snl_video_stays_light_and_lists_the_verbs():
    code = ("import sys, snl_video; assert 'torch' not in sys.modules, 'torch imported'; "
            "print(' '.join(snl_video.__all__))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) == {"__version__", *VERBS}


@pytest.mark.parametrize("verb", VERBS)
def test_each_verb_is_a_function_with_one_name_per_concept(verb):
    params = inspect.signature(getattr(snl_video, verb)).parameters
    retired = sorted(set(params) & set(RETIRED))
    assert not retired, f"snl_video.{verb} still spells {retired}; use {[RETIRED[r] for r in retired]}"
    if verb in MODEL_VERBS:
        for name in ("checkpoint", "weights", "config"):
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, (verb, name)
            assert params[name].default is None, (verb, name)
    if verb == "train":
        assert params["config"].kind is inspect.Parameter.KEYWORD_ONLY and "checkpoint" not in params
    positional = [p for p in params.values() if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert len(positional) <= 1, f"snl_video.{verb}: at most the input is positional, got {[p.name for p in positional]}"


def test_an_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'evaluate_model'"):
        snl_video.evaluate_model  # noqa: B018 - the engine name is not part of the API


class _Called(Exception):
    """Raised by a stand-in verb: the command reached it, with these arguments."""


def _stand_in(monkeypatch, module: str, name: str) -> list[tuple[tuple, dict]]:
    calls: list[tuple[tuple, dict]] = []

    def record(*args, **kwargs):
        calls.append((args, kwargs))
        raise _Called(name)

    monkeypatch.setattr(f"{module}.{name}", record)
    return calls


@pytest.mark.parametrize("verb, argv, expected", [
    ("explain", ["explain", "VIDEO", "--checkpoint", "c.pt", "--output-dir", "o"],
     {"checkpoint": Path("c.pt"), "output_dir": Path("o"), "precision": "fp32"}),
    ("explain", ["explain", "VIDEO", "--checkpoint", "c.pt", "--output-dir", "o", "--precision", "bf16"],
     {"precision": "bf16"}),
    ("export", ["export", "--weights", "w.pth", "--format", "pt2", "--output-file", "m.pt2", "--num-frames", "8"],
     {"weights": "w.pth", "output_file": Path("m.pt2"), "num_frames": 8, "precision": "fp32"}),
    ("export", ["export", "--weights", "w.pth", "--format", "pt2", "--output-file", "m.pt2", "--verify",
                "--precision", "bf16"], {"verify": True, "precision": "bf16"}),
    ("features", ["features", "VIDEO", "--checkpoint", "c.pt", "--output-dir", "o", "--num-clips", "2"],
     {"checkpoint": Path("c.pt"), "output_dir": Path("o"), "num_clips": 2}),
    ("spectrum", ["spectrum", "VIDEO", "--checkpoint", "c.pt", "--output-dir", "o"], {"checkpoint": Path("c.pt"), "output_dir": Path("o")}),
    ("prepare", ["prepare", "folder", "--videos", "v", "--output-dir", "p", "--num-frames", "8"],
     {"output_dir": Path("p"), "num_frames": 8, "options": {"videos": Path("v"), "val_fraction": 0.0, "test_fraction": 0.2, "seed": 0}}),
])
def test_the_command_runs_the_same_function(monkeypatch, tmp_path, verb, argv, expected):
    video = tmp_path / "v.avi"
    video.write_bytes(b"")
    calls = _stand_in(monkeypatch, "snl_video.engine.api", verb)
    with pytest.raises(_Called):
        main([str(video) if a == "VIDEO" else a for a in argv])
    [(args, kwargs)] = calls
    for key, value in expected.items():
        got = kwargs[key]
        if key == "options":
            got = {k: v for k, v in got.items() if k in value}
        assert got == value, (verb, key)


def test_eval_command_runs_snl_video_evaluate(monkeypatch):
    monkeypatch.setattr("snl_video.engine.api.evaluation_recipe", lambda **kw: kw)
    calls = _stand_in(monkeypatch, "snl_video.engine.api", "evaluate")
    with pytest.raises(_Called):
        main(["eval", "--checkpoint", "c.pt", "--output-dir", "o"])
    [(_, kwargs)] = calls
    assert kwargs["checkpoint"] == Path("c.pt") and kwargs["output_dir"] == Path("o") and kwargs["weights"] is None


def test_compare_command_runs_snl_video_compare(monkeypatch):
    calls = _stand_in(monkeypatch, "snl_video.engine.api", "compare")
    with pytest.raises(_Called):
        main(["compare", "run_a", "run_b", "--output-dir", "o", "--no-curves"])
    [(args, kwargs)] = calls
    assert args == ([Path("run_a"), Path("run_b")],) and kwargs["output_dir"] == Path("o") and kwargs["curves"] is False


def test_predict_is_the_engine_function_the_command_calls():
    from snl_video.engine import predict as engine_predict

    assert snl_video.predict is engine_predict.predict


def test_train_resolves_a_recipe_and_runs_the_engine_loop(monkeypatch, tmp_path):
    calls = _stand_in(monkeypatch, "snl_video.engine.train", "train")
    cfg = tiny_config(tmp_path / "data", tmp_path / "run")
    with pytest.raises(_Called):
        snl_video.train(config=cfg, resume=False)
    [(args, kwargs)] = calls
    assert args == (cfg,) and kwargs == {"resume": False}
    with pytest.raises(ValueError, match="overrides"):
        snl_video.train(config=cfg, overrides=["optim.lr=0.1"])


@pytest.fixture
def tiny_checkpoint(tiny_snl_checkpoint):
    _, ckpt, video, _ = tiny_snl_checkpoint
    return ckpt, video


def test_spectrum_through_the_api_writes_what_the_command_writes(tiny_checkpoint, tmp_path):
    ckpt, video = tiny_checkpoint
    result = snl_video.spectrum(video, checkpoint=ckpt, output_dir=tmp_path / "api")
    assert main(["spectrum", str(video), "--checkpoint", str(ckpt), "--output-dir", str(tmp_path / "cli")]) == 0
    api_doc = json.loads(result.files["json"].read_text())
    cli_doc = json.loads((tmp_path / "cli" / "spectrum.json").read_text())
    assert api_doc["checkpoint"] == cli_doc["checkpoint"] == str(ckpt)
    [api_block], [cli_block] = api_doc["blocks"], cli_doc["blocks"]
    np.testing.assert_array_equal(api_block["eigenvalues"]["real"], cli_block["eigenvalues"]["real"])
    assert [b["name"] for b in result.blocks] == [api_block["name"]]


def test_evaluate_through_the_api(tiny_checkpoint, tmp_path):
    ckpt, _ = tiny_checkpoint
    report = snl_video.evaluate(checkpoint=ckpt, output_dir=tmp_path / "eval", progress=False)
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["num_videos"] == report.num_videos > 0
    assert written["clip_top1"] == pytest.approx(report.clip_top1)
    with pytest.raises(ValueError, match="exactly one of checkpoint"):
        snl_video.evaluate(output_dir=tmp_path / "x")
