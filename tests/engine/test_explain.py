"""explain: rendered affinity rows are the rows of graph_operator(x).dense() at the query's node,
the coordinate -> node mapping is the cell nearest upsampling paints, and Grad-CAM restated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from snl_video.cli import main
from snl_video.data.synthetic import make_synthetic_ucf101
from snl_video.inputspec import InputSpec
from snl_video.engine.explain import centre_clip_input, explain_video, node_cell, query_node
from snl_video.engine.loading import InferenceModel
from snl_video.models import build_model
from snl_video.nonlocal_blocks import LowRankAffinity


@pytest.mark.parametrize("clip_shape, map_shape", [
    ((8, 32, 32), (8, 32, 32)),      # stride 1
    ((8, 32, 32), (4, 16, 16)),      # stride 2
    ((16, 112, 112), (2, 7, 7)),     # res4 of a 16x112 clip: strides 8 and 16
    ((6, 40, 40), (2, 3, 3)),        # sizes that do not divide (ceil-mode maps)
])
def test_query_node_is_the_cell_nearest_upsampling_paints(clip_shape, map_shape):
    T, H, W = clip_shape
    tb, hb, wb = map_shape
    nodes = torch.arange(tb * hb * wb, dtype=torch.float32).reshape(1, 1, tb, hb, wb)
    painted = F.interpolate(nodes, size=clip_shape, mode="nearest")[0, 0].long()
    rng = np.random.default_rng(0)
    for t, y, x in zip(rng.integers(0, T, 60), rng.integers(0, H, 60), rng.integers(0, W, 60)):
        assert query_node((int(t), int(y), int(x)), clip_shape, map_shape) == int(painted[t, y, x])
    # and by hand: (5, 17, 30) in 8x32x32 over a 4x16x16 map is cell (2, 8, 15)
    if map_shape == (4, 16, 16):
        assert query_node((5, 17, 30), clip_shape, map_shape) == (2 * 16 + 8) * 16 + 15
    for node in range(tb * hb * wb):  # a cell's centre maps back to the cell
        assert query_node(node_cell(node, clip_shape, map_shape), clip_shape, map_shape) == node


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    root = make_synthetic_ucf101(tmp_path_factory.mktemp("explain"), num_classes=2, videos_per_class=1,
                                 video_frames=20, frame_jitter=0, seed=0, progress=False)
    return sorted((root / "UCF-101").rglob("*.avi"))[0]


def _loaded(kind: str, options: dict | None = None, *, stage: str = "layer2") -> InferenceModel:
    torch.manual_seed(0)
    spec = {"kind": kind, "options": options or {}, "positions": {stage: [0]}, "input_size": [8, 48, 48]}
    model = build_model("r3d10", num_classes=3, nonlocal_blocks=spec, widen_factor=0.25, conv1_t_size=3).eval()
    for block in model.nonlocal_blocks.values():  # leave the identity init: rows depend only on theta/phi anyway
        if hasattr(block, "out_norm"):
            torch.nn.init.normal_(block.out_norm.weight)
    spec = InputSpec(num_frames=8, sampling_stride=2, crop_size=48, mean=(0.45,) * 3, std=(0.225,) * 3)
    return InferenceModel(model, "r3d10", ["a", "b", "c"], spec, num_clips=1, num_crops=1, reduce="mean_prob",
                          source="test")


@pytest.mark.parametrize("kind, options", [
    ("snl", {"impl": "linear"}), ("snl", {"impl": "dense"}), ("nl", {}), ("nl_dot", {"impl": "linear"}),
    ("a2", {}), ("dnl", {}), ("cc", {}), ("ns", {}), ("snl_a1", {"impl": "linear"}), ("snl_a2", {}), ("gsnl", {}),
    ("snl", {"filter": "cayley", "impl": "linear"}), ("snl", {"filter": "arma", "impl": "linear"}),
])
def test_rendered_rows_are_rows_of_the_dense_affinity(kind, options, video, tmp_path, monkeypatch):
    loaded = _loaded(kind, options)
    queries = [(0, 0, 0), (5, 20, 31), (7, 47, 47)]
    if options.get("impl") == "linear":  # the low-rank path must not form the N x N matrix
        monkeypatch.setattr(LowRankAffinity, "dense", lambda self: (_ for _ in ()).throw(AssertionError("N x N formed")))
    result = explain_video(loaded, video, tmp_path, queries=queries, upsample="trilinear")
    monkeypatch.undo()
    (key,) = result.files
    rows = np.load(tmp_path / f"{key}_rows.npy")
    maps = np.load(tmp_path / f"{key}_maps.npy")
    # independent: the block's input from a hook, its dense affinity, the node by the cell formula
    x, frames_shown = centre_clip_input(loaded, video, None)
    seen = {}
    block = loaded.model.nonlocal_blocks[key]
    handle = block.register_forward_hook(lambda m, i, o: seen.setdefault("x", i[0]))
    with torch.no_grad():
        loaded.model(x)
        handle.remove()
        dense = block.graph_operator(seen["x"]).dense()[0]
    tb, hb, wb = seen["x"].shape[2:]
    assert (tb, hb, wb) == (2, 6, 6)  # layer2 of 8x48x48: stride 4 in time, 8 in space
    for q, (t, y, xx) in enumerate(queries):
        node = ((t * tb // 8) * hb + y * hb // 48) * wb + xx * wb // 48
        np.testing.assert_allclose(rows[q].reshape(-1), dense[node].numpy(), rtol=1e-5, atol=1e-7)
    assert maps.shape == (3, 8, 48, 48)
    if rows.min() >= 0:  # trilinear upsampling never creates negative values
        assert maps.min() >= 0
    png = tmp_path / f"{key}_grid.png"
    from PIL import Image

    from snl_video.engine.explain import GRID_LEFT, GRID_RIGHT, GRID_TITLE, GRID_TOP, normalise_maps, overlay_heatmap

    top = GRID_TOP + GRID_TITLE
    P = 144  # the 48 px frames are drawn 3 times as large: at least 112 px per panel
    with Image.open(png) as im:
        assert im.size == (GRID_LEFT + 8 * P + GRID_RIGHT, top + 3 * P)
        grid = np.asarray(im.convert("RGB"))
    # the labels sit in the margins: every panel is the overlay of its frame (each pixel a 3x3
    # block), untouched but for the query's marker (in its own frame only)
    heat = normalise_maps(maps)
    for r, (tq, _, _) in enumerate(queries):
        for t in range(8):
            if t == tq:
                continue
            panel = grid[top + r * P: top + (r + 1) * P, GRID_LEFT + t * P: GRID_LEFT + (t + 1) * P]
            overlay = overlay_heatmap(frames_shown[t], heat[r, t])
            np.testing.assert_array_equal(panel, np.repeat(np.repeat(overlay, 3, axis=0), 3, axis=1))
    assert (grid[:top, GRID_LEFT:] < 128).any() and (grid[top:, :GRID_LEFT] < 128).any()  # labels drawn
    with Image.open(tmp_path / f"{key}.gif") as im:
        assert im.n_frames == 8 and im.size == (3 * P, P)  # 3 queries side by side, 144 px each


def test_gradcam_matches_a_restatement_and_cgnl_is_explained_away(video, tmp_path):
    loaded = _loaded("cgnl", stage="layer3")
    result = explain_video(loaded, video, tmp_path, with_gradcam=True, gradcam_class="b")
    assert "position, channel" in result.skipped["layer3_after_0"] and list(result.files) == ["gradcam"]
    cam = np.load(tmp_path / "gradcam.npy")
    x, _ = centre_clip_input(loaded, video, None)
    model = loaded.model
    store = {}
    handle = model.layer4[-1].register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    logits = model(x)
    handle.remove()
    (grad,) = torch.autograd.grad(logits[0, 1], store["a"])
    expected = torch.relu((grad[0].mean((1, 2, 3))[:, None, None, None] * store["a"][0]).sum(0)).detach()
    expected = F.interpolate(expected[None, None], size=(8, 48, 48), mode="trilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(cam, expected.numpy(), rtol=1e-4, atol=1e-6)
    assert json.loads((tmp_path / "explain.json").read_text())["gradcam_class"] == "b"


def test_explain_cli_and_bad_queries(video, tmp_path, capsys):
    loaded = _loaded("snl")
    from snl_video.config import config_from_dict  # noqa: F401  (the CLI path is covered with a checkpoint below)
    from snl_video.engine.checkpoint import save_checkpoint

    state = {"model": loaded.model.state_dict(), "epoch": 1}
    cfg_yaml = tmp_path / "c.yaml"
    cfg_yaml.write_text(
        "model: {name: r3d10, num_classes: 3, options: {widen_factor: 0.25, conv1_t_size: 3}}\n"
        "nonlocal_blocks: {kind: snl, positions: {layer2: [0]}}\n"
        "data: {num_frames: 8, sampling_stride: 2, crop_size: 48, mean: [0.45, 0.45, 0.45], std: [0.225, 0.225, 0.225]}\n")
    ckpt = save_checkpoint(state, tmp_path / "c.pt")
    out = tmp_path / "ex"
    assert main(["explain", str(video), "--checkpoint", str(ckpt), "--config", str(cfg_yaml), "--out", str(out),
                 "--query", "3,10,10"]) == 0
    assert "layer2_after_0" in capsys.readouterr().out and (out / "layer2_after_0_grid.png").is_file()
    assert main(["explain", str(video), "--checkpoint", str(ckpt), "--config", str(cfg_yaml), "--out", str(out),
                 "--query", "8,10,10"]) == 2
    err = capsys.readouterr().err
    assert "outside the model's input clip 8x48x48" in err and "t in 0..7" in err
    assert main(["explain", str(video), "--checkpoint", str(ckpt), "--config", str(cfg_yaml), "--out", str(out),
                 "--query", "1,2"]) == 2
    assert "expected three integers" in capsys.readouterr().err
    assert main(["explain", str(video), "--checkpoint", str(ckpt), "--config", str(cfg_yaml), "--out", str(out),
                 "--gradcam", "--class", "zzz"]) == 2
    assert "is not one of the model's classes" in capsys.readouterr().err


@pytest.mark.parametrize("kind, options", [("srb", {}), ("bat", {"s": 2, "k": 2, "tk": 2, "ts": 2})])
def test_transform_domain_kinds_say_they_have_no_affinity(kind, options, video, tmp_path):
    loaded = _loaded(kind, options)
    result = explain_video(loaded, video, tmp_path, queries=[(1, 2, 3)], with_gradcam=True)
    assert "no explicit affinity" in result.skipped["layer2_after_0"] and list(result.files) == ["gradcam"]
    assert json.loads((tmp_path / "explain.json").read_text())["skipped"]["layer2_after_0"].startswith(kind)
    with pytest.raises(ValueError, match="no non-local blocks to explain"):
        explain_video(_loaded_without_blocks(), video, tmp_path / "none")


def _loaded_without_blocks() -> InferenceModel:
    loaded = _loaded("snl")
    loaded.model.nonlocal_blocks.clear()
    return loaded


def test_the_grid_has_a_colour_bar_of_the_colormap_and_readable_panels(tmp_path):
    """The grid PNG carries a colour bar (the overlay's colormap from a row's max at the top to
    its min at the bottom) and each row's value range; panels are at least 112 px (before:
    a 536x196 grid without a scale)."""
    from matplotlib import colormaps
    from PIL import Image

    from snl_video.engine.explain import (GRID_BAR_GAP, GRID_BAR_WIDTH, GRID_LEFT, GRID_RIGHT, GRID_TITLE, GRID_TOP,
                                          panel_scale, render_animation, render_grid)

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (4, 56, 56, 3), dtype=np.uint8)
    maps = rng.random((2, 4, 56, 56)) * np.array([1e-3, 5.0])[:, None, None, None]
    assert [panel_scale(s) for s in (48, 56, 112, 160)] == [3, 2, 1, 1]
    path = render_grid(frames, maps, [(0, 5, 5), (3, 50, 50)], tmp_path / "g.png", title="t")
    top, P = GRID_TOP + GRID_TITLE, 112
    with Image.open(path) as im:
        assert im.size == (GRID_LEFT + 4 * P + GRID_RIGHT, top + 2 * P)
        grid = np.asarray(im.convert("RGB")).astype(int)
    x0 = GRID_LEFT + 4 * P + GRID_BAR_GAP
    bar = grid[top: top + 2 * P, x0: x0 + GRID_BAR_WIDTH]
    expected = colormaps["jet"](np.linspace(1.0, 0.0, 2 * P))[:, :3] * 255  # independent of the module's helper
    for column in range(GRID_BAR_WIDTH):
        assert np.abs(bar[:, column] - expected).max() <= 1
    assert (np.abs(np.diff(bar[:, 0], axis=0)).sum(1) > 0).sum() > P  # a gradient, not a flat block
    assert (grid[:, x0 + GRID_BAR_WIDTH:] < 128).any()  # its ends labelled
    assert (grid[top + P // 2: top + P // 2 + 12, :GRID_LEFT] < 128).any()  # each row's range under its label
    gif = render_animation(frames, maps, [(0, 5, 5), (3, 50, 50)], tmp_path / "a.gif")
    with Image.open(gif) as im:
        assert im.size == (2 * P, P) and im.n_frames == 4


_NATIVE_BF16 = __import__("snl_video.engine.precision", fromlist=["x"]).cpu_has_native_bf16()
needs_native_bf16 = pytest.mark.skipif(not _NATIVE_BF16, reason="this CPU has no native bf16 (refused there: "
                                                                  "test_bf16_explain_is_refused_where_emulated)")
# bf16 keeps 8 significant bits (2**-9 ~ 2e-3 relative rounding per value); carried through the
# backbone into theta/phi it moves the rows by 7.7e-3 (SNL) to 3.8e-2 (CC's softmax rows) of their
# largest value on this model, and Grad-CAM by up to 1.7e-2: 6e-2 leaves room for other CPUs' kernels.
_BF16_MAP_TOLERANCE = 6e-2


@needs_native_bf16
@pytest.mark.parametrize("kind, options", [
    ("snl", {"impl": "linear"}), ("snl", {"impl": "dense"}), ("nl", {}), ("a2", {}), ("dnl", {}), ("cc", {}),
])
def test_bf16_maps_are_the_fp32_maps_within_bf16_rounding(kind, options, video, tmp_path):
    queries = [(0, 0, 0), (5, 20, 31), (7, 47, 47)]
    written = {}
    for precision in ("fp32", "bf16"):
        loaded = _loaded(kind, options).set_precision(precision)
        result = explain_video(loaded, video, tmp_path / precision, queries=queries, with_gradcam=True)
        (key,) = [k for k in result.files if k != "gradcam"]
        record = json.loads((tmp_path / precision / "explain.json").read_text())
        assert record["precision"] == precision and record["maps_dtype"] == "float32"
        written[precision] = {name: np.load(tmp_path / precision / name)
                              for name in (f"{key}_rows.npy", f"{key}_maps.npy", "gradcam.npy")}
    for name, fp32 in written["fp32"].items():
        bf16 = written["bf16"][name]
        assert bf16.dtype == np.float32 and bf16.shape == fp32.shape, name
        assert not np.array_equal(bf16, fp32), name  # the network really ran in bf16
        assert np.abs(bf16 - fp32).max() <= _BF16_MAP_TOLERANCE * np.abs(fp32).max(), name


def _explain_checkpoint(tmp_path: Path) -> list[str]:
    """The tiny SNL model as a checkpoint + recipe: the model flags of an ``explain`` command."""
    from snl_video.engine.checkpoint import save_checkpoint

    loaded = _loaded("snl")
    cfg_yaml = tmp_path / "c.yaml"
    cfg_yaml.write_text(
        "model: {name: r3d10, num_classes: 3, options: {widen_factor: 0.25, conv1_t_size: 3}}\n"
        "nonlocal_blocks: {kind: snl, positions: {layer2: [0]}}\n"
        "data: {num_frames: 8, sampling_stride: 2, crop_size: 48, mean: [0.45, 0.45, 0.45], std: [0.225, 0.225, 0.225]}\n")
    ckpt = save_checkpoint({"model": loaded.model.state_dict(), "epoch": 1}, tmp_path / "c.pt")
    return ["--checkpoint", str(ckpt), "--config", str(cfg_yaml)]


@needs_native_bf16
def test_explain_cli_runs_in_bf16(video, tmp_path, capsys):
    out = tmp_path / "ex"
    assert main(["explain", str(video), *_explain_checkpoint(tmp_path), "--out", str(out), "--query", "3,10,10",
                 "--precision", "bf16"]) == 0
    assert "layer2_after_0" in capsys.readouterr().out
    assert json.loads((out / "explain.json").read_text())["precision"] == "bf16"
    assert np.load(out / "layer2_after_0_maps.npy").dtype == np.float32


def test_bf16_explain_is_refused_where_emulated(video, tmp_path, capsys, monkeypatch):
    from snl_video.engine import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    out = tmp_path / "ex"
    assert main(["explain", str(video), *_explain_checkpoint(tmp_path), "--out", str(out),
                 "--precision", "bf16"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # (after the loader's INFO line)
    assert "no native bf16" in error and "--precision fp32" in error
    assert not out.exists()  # refused before anything is written


def test_a_video_shorter_than_a_clip_gets_predicts_note(tmp_path):
    """A 5-frame video under an 8x2 clip (15 frames): its frames are looped to fill the clip, and
    explain says so as predict does (in ``explain.json``; the command prints the notes); before, silently."""
    from ..helpers import write_random_video

    short = tmp_path / "short.mp4"
    write_random_video(short, num_frames=5, height=48, width=48)
    result = explain_video(_loaded("snl"), short, tmp_path / "ex")
    assert any("has 5 frame(s), shorter than one clip (15 frames: 8 every 2)" in n for n in result.notes)
    assert result.notes == json.loads((tmp_path / "ex" / "explain.json").read_text())["notes"]
    long_enough = tmp_path / "long.mp4"
    write_random_video(long_enough, num_frames=15, height=48, width=48)
    assert not explain_video(_loaded("snl"), long_enough, tmp_path / "ex2").notes
