"""BAT-Video-Classification's ResNet-50 (bat_c2d_r50 / bat_i3d_r50): their checkpoints load
with their key names and give their logits (float64 parity with a restatement of their model)."""

from __future__ import annotations

import pytest
import torch

from snl_video.models import build_model
from snl_video.nonlocal_blocks import list_nonlocal_kinds
from snl_video.weights import detect_format

from ..helpers import randomize_batchnorm
from .bat_reference import RefBATResNet50

BAT_PLACEMENT = {"layer2": [1, 3], "layer3": [1, 3, 5]}


def _released_container(ref: torch.nn.Module, arch: str, *, full: bool) -> dict:
    """``main.py``'s container (``model.module.state_dict()``: no prefix) or the bare ``{'state_dict': ...}``."""
    state = ref.state_dict()
    if not full:
        return {"state_dict": state}
    return {"epoch": 100, "arch": arch, "state_dict": state, "best_prec1": 75.5, "optim": {"state": {}, "param_groups": []}}


def _reference(variant: str, *, bat: dict | None = None, seed: int = 0) -> RefBATResNet50:
    torch.manual_seed(seed)
    ref = RefBATResNet50(variant, bat=bat)
    randomize_batchnorm(ref, seed=seed)
    with torch.no_grad():
        ref.fc.bias.normal_()
    return ref


def test_bat_backbone_parameter_counts():
    # spectral_family.md §3.6 (official code counted): C2D 24.33 M, I3D 28.04 M with 400 classes.
    with torch.device("meta"):
        c2d = build_model("bat_c2d_r50", num_classes=400)
        i3d = build_model("bat_i3d_r50", num_classes=400)
    assert sum(p.numel() for p in c2d.parameters()) == 24_327_632
    assert sum(p.numel() for p in i3d.parameters()) == 28_043_472
    with torch.device("meta"):
        assert sum(p.numel() for p in RefBATResNet50("c2d").parameters()) == 24_327_632


@pytest.mark.parametrize(
    ("variant", "size", "full"),
    [
        ("c2d", 232, True),  # res5 is 8×8: the head averages the scores of 4 (T, 7, 7) windows
        ("i3d", 200, False),  # res5 is 7×7: one window = global pooling
    ],
)
def test_released_checkpoint_gives_the_released_logits(tmp_path, variant, size, full):
    ref = _reference(variant)
    path = tmp_path / f"{variant}.pth.tar"
    torch.save(_released_container(ref, f"{variant}_resnet50", full=full), path)
    assert detect_format(torch.load(path, weights_only=True)).format == "bat_video"

    model = build_model(f"bat_{variant}_r50", num_classes=400, pretrained=str(path))
    assert model.load_report.ok and len(model.load_report.loaded) == len(model.state_dict())
    ref, model = ref.double().eval(), model.double().eval()
    torch.manual_seed(1)
    clip = torch.randn(1, 3, 2, size, size, dtype=torch.float64)
    with torch.no_grad():
        ours, theirs = model(clip), ref(clip)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    assert (ours - theirs).abs().max() < 1e-10  # and far tighter than the 1e-5


def test_windowed_head_is_not_global_pooling_on_large_maps():
    model = build_model("bat_c2d_r50", num_classes=3).eval()
    x = torch.randn(1, 2048, 1, 8, 8)
    windows = model.head_windows(x)
    assert windows.shape == (1, 2048, 1, 2, 2)
    # The four 7×7 windows weigh the centre 6×6 four times as much as the corners: not the plain mean.
    assert not torch.allclose(windows.mean(dim=(2, 3, 4)), x.mean(dim=(2, 3, 4)))
    # Maps smaller than the window are pooled globally (112² input: res5 is 4×4).
    small = torch.randn(1, 2048, 1, 4, 4)
    torch.testing.assert_close(model.head_windows(small).flatten(1), small.mean(dim=(2, 3, 4)))
    with torch.no_grad():
        assert model(torch.randn(1, 3, 2, 112, 112)).shape == (1, 3)


def test_stem_pool_has_no_padding():
    model = build_model("bat_c2d_r50", num_classes=3).eval()
    seen = {}
    model.layer1[0].register_forward_hook(lambda m, i, o: seen.__setitem__("res2", tuple(o.shape[-2:])))
    with torch.no_grad():
        model(torch.randn(1, 3, 2, 224, 224))
    assert seen["res2"] == (55, 55)  # 112 → 55 without padding (pytorchvideo's padded pool: 56)


def test_released_checkpoint_fine_tunes_with_a_new_head(tmp_path):
    ref = _reference("c2d")
    path = tmp_path / "c2d.pth.tar"
    torch.save(_released_container(ref, "c2d_resnet50", full=True), path)
    model = build_model("bat_c2d_r50", num_classes=101, pretrained=str(path))
    assert model.load_report.reinitialised_head == ["fc.weight", "fc.bias"]
    assert model.fc.weight.shape == (101, 2048)


def test_checkpoint_with_bat_blocks_needs_the_blocks_placed(tmp_path):
    ref = RefBATResNet50("c2d", bat={"k": 8, "tk": 4, "ts": 4})
    path = tmp_path / "c2d_3dbat.pth.tar"
    torch.save({"state_dict": ref.state_dict()}, path)
    with pytest.raises(Exception, match=r"non-local blocks \['layer2_after_1', 'layer2_after_3', 'layer3_after_1'"):
        build_model("bat_c2d_r50", num_classes=400, pretrained=str(path))
    # Backbone alone: ignore the blocks.
    model = build_model("bat_c2d_r50", num_classes=400, pretrained=str(path), pretrained_ignore=("nonlocal_blocks.*",))
    assert model.load_report.ok and len(model.load_report.ignored) > 0


def _with_blocks(tmp_path, variant: str, bat: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    ref = _reference(variant, bat=bat)
    path = tmp_path / "bat.pth.tar"
    torch.save(_released_container(ref, f"{variant}_resnet50", full=True), path)
    model = build_model(
        f"bat_{variant}_r50",
        num_classes=400,
        nonlocal_blocks={"kind": "bat", "options": bat, "positions": BAT_PLACEMENT},
        pretrained=str(path),
    )
    assert model.load_report.ok and not model.load_report.new
    return ref.double().eval(), model.double().eval()


@pytest.mark.skipif("bat" not in list_nonlocal_kinds(), reason="the bat non-local block is not in this tree yet")
@pytest.mark.parametrize("variant", ["c2d", pytest.param("i3d", marks=pytest.mark.slow)])
def test_released_checkpoint_with_3d_bat_blocks_gives_the_released_res5_map(tmp_path, variant):
    # 8×112²: res3 14², res4 7² (multiples of s = 7), T = 4 after the temporal pool (ts = 4). Their
    # head cannot pool a 4×4 res5 map (7×7 windows), so the maps are compared; the head is
    # proven at 224² and 232² above and in the slow test below.
    ref, model = _with_blocks(tmp_path, variant, {"k": 8, "tk": 4, "ts": 4})
    torch.manual_seed(1)
    clip = torch.randn(1, 3, 8, 112, 112, dtype=torch.float64)
    with torch.no_grad():
        ours, theirs = model.forward_maps(clip), ref.features(clip)
    assert ours.shape == (1, 2048, 4, 4, 4)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif("bat" not in list_nonlocal_kinds(), reason="the bat non-local block is not in this tree yet")
@pytest.mark.parametrize(
    ("variant", "bat"),
    [("c2d", {"k": 8, "tk": 4, "ts": 4}), ("c2d", {"k": 8, "tk": 0, "ts": 4}), ("i3d", {"k": 8, "tk": 0, "ts": 4})],
)
def test_released_checkpoint_with_bat_blocks_gives_the_released_logits(tmp_path, variant, bat):
    # The call at the released clip (8×224², ~30-90 s in float64 on 2 CPU cores: slow).
    ref, model = _with_blocks(tmp_path, variant, bat)
    torch.manual_seed(1)
    clip = torch.randn(1, 3, 8, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(clip), ref(clip), rtol=0, atol=1e-5)


def test_registry_entries_load_from_the_offline_cache(tmp_path, monkeypatch):
    from snl_video.weights import eval_transform_params, get_weights

    entry = get_weights("bat_i3d_r50.bat_k400")
    assert entry.url is None and entry.format == "bat_video" and entry.nonlocal_blocks is None
    params = eval_transform_params(entry)
    assert params.value_scale == 255 and params.mean == (103.939, 116.779, 123.68) and params.std == (1.0, 1.0, 1.0)
    assert (params.num_frames, params.sampling_stride) == (8, 8)
    monkeypatch.setenv("SNL_VIDEO_CACHE", str(tmp_path))
    torch.save({"state_dict": RefBATResNet50("i3d").state_dict()}, tmp_path / entry.file_name)
    model = build_model("bat_i3d_r50", num_classes=101, pretrained=entry.name)
    assert model.load_report.ok and model.load_report.reinitialised_head == ["fc.weight", "fc.bias"]
    # The with-blocks entries say which blocks their files hold (placed by build_model).
    bat3d = get_weights("bat_c2d_r50.bat3d_k400")
    assert bat3d.nonlocal_blocks == {
        "kind": "bat", "options": {"k": 8, "tk": 4, "ts": 4}, "positions": BAT_PLACEMENT
    }  # fmt: skip
    assert get_weights("bat_c2d_r50.bat2d_k400").nonlocal_blocks["options"]["tk"] == 0


@pytest.mark.skipif("bat" not in list_nonlocal_kinds(), reason="the bat non-local block is not in this tree yet")
def test_registry_entry_with_blocks_places_them(tmp_path, monkeypatch):
    from snl_video.weights import get_weights

    entry = get_weights("bat_c2d_r50.bat3d_k400")
    monkeypatch.setenv("SNL_VIDEO_CACHE", str(tmp_path))
    torch.save({"state_dict": RefBATResNet50("c2d", bat={"k": 8, "tk": 4, "ts": 4}).state_dict()}, tmp_path / entry.file_name)
    model = build_model("bat_c2d_r50", num_classes=101, pretrained=entry.name)
    assert sorted(model.nonlocal_blocks) == [
        "layer2_after_1", "layer2_after_3", "layer3_after_1", "layer3_after_3", "layer3_after_5"
    ]  # fmt: skip
    assert model.load_report.ok and not model.load_report.new
