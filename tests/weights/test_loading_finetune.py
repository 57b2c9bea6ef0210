"""``build_model(..., pretrained=...)`` as a fine-tuning path: head replacement, non-local
insertion, ignore patterns, and the errors that stop a wrong or partial load."""

from __future__ import annotations

import os

import pytest
import torch

from snl_video.models import build_model
from snl_video.weights.errors import UnsafeCheckpointError, WeightsLoadError, WrongArchitectureError

from .sources import CLASSES, hara_source, sample_clip, save_hara2017


@pytest.fixture(scope="module")
def r3d18_file(tmp_path_factory):
    source = hara_source("r3d18")
    path = tmp_path_factory.mktemp("ckpt") / "resnet-18-kinetics.pth"
    save_hara2017(source, path)
    return source, path


def test_head_is_replaced_and_backbone_kept(r3d18_file):
    source, path = r3d18_file
    model = build_model("r3d18", num_classes=101, pretrained=path)
    report = model.load_report
    assert report.reinitialised_head == ["fc.weight", "fc.bias"]
    assert "fc.weight" not in report.loaded and not report.new and not report.ignored
    assert model.fc.weight.shape == (101, 512)
    theirs = source.state_dict()
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):  # not in a 2017 file: set to 0
            assert int(value) == 0 and key in report.defaulted, key
        elif not key.startswith("fc."):
            assert torch.equal(value, theirs[key]), key
    # Re-initialised by nn.Linear.reset_parameters: bounded by 1/sqrt(fan_in), not the checkpoint's rows.
    assert model.fc.weight.abs().max() <= 512**-0.5 + 1e-6
    assert "2 head re-initialised" in report.summary()


def test_nonlocal_blocks_are_new_and_start_as_identity(r3d18_file):
    source, path = r3d18_file
    model = build_model("r3d18", num_classes=CLASSES, nonlocal_blocks="nl", pretrained=path).eval()
    report = model.load_report
    assert report.new and all(k.startswith("nonlocal_blocks.") for k in report.new)
    assert not any(k.startswith("nonlocal_blocks.") for k in report.loaded)
    assert len(report.loaded) + len(report.defaulted) == len(source.state_dict())
    clip = sample_clip(4, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(clip), source(clip), atol=1e-5, rtol=0)


def test_checkpoint_of_another_depth_is_an_error_naming_both(r3d18_file):
    _, path = r3d18_file
    with pytest.raises(WrongArchitectureError) as info:
        build_model("r3d50", num_classes=101, pretrained=path)
    msg = str(info.value)
    assert "r3d18" in msg and "r3d50" in msg and str(path) in msg


def test_pytorchvideo_i3d_file_into_slow_is_an_error_naming_both(tmp_path):
    from pytorchvideo.models import hub

    path = tmp_path / "I3D_8x8_R50.pyth"
    torch.save({"model_state": hub.i3d_r50(pretrained=False).state_dict()}, path)
    with pytest.raises(WrongArchitectureError) as info:
        build_model("slow_r50", num_classes=101, pretrained=path)
    msg = str(info.value)
    assert "i3d_r50" in msg and "slow_r50" in msg and "pytorchvideo checkpoint" in msg


def test_registry_weights_of_another_architecture_are_refused_before_download(tmp_path, monkeypatch):
    monkeypatch.setenv("SNL_VIDEO_CACHE", str(tmp_path))
    with pytest.raises(WrongArchitectureError, match=r"'i3d_r50.pytorchvideo_k400' are for i3d_r50, but the model is slow_r50"):
        build_model("slow_r50", num_classes=101, pretrained="i3d_r50.pytorchvideo_k400")
    assert not any(tmp_path.iterdir())


def test_shape_mismatch_is_an_error_listing_it_and_ignore_skips_it(r3d18_file, tmp_path):
    source, _ = r3d18_file
    state = dict(source.state_dict())
    state["layer2.0.conv1.weight"] = torch.zeros(128, 64, 1, 3, 3)
    with pytest.raises(WeightsLoadError) as info:
        build_model("r3d18", num_classes=CLASSES, pretrained=state)
    assert "SHAPE MISMATCH: layer2.0.conv1.weight (checkpoint [128, 64, 1, 3, 3] vs model [128, 64, 3, 3, 3])" in str(info.value)
    assert not isinstance(info.value, WrongArchitectureError)
    model = build_model("r3d18", num_classes=CLASSES, pretrained=state, pretrained_ignore=("layer2.0.conv1.*",))
    assert model.load_report.ignored == ["layer2.0.conv1.weight"]
    assert torch.equal(model.layer2[0].conv2.weight, source.layer2[0].conv2.weight)


def test_missing_backbone_tensor_is_an_error_listing_it(r3d18_file):
    source, _ = r3d18_file
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("layer4.1.bn2.")}
    with pytest.raises(WeightsLoadError, match=r"MISSING from the checkpoint: layer4\.1\.bn2\.weight"):
        build_model("r3d18", num_classes=CLASSES, pretrained=state)
    model = build_model("r3d18", num_classes=CLASSES, pretrained=state, pretrained_ignore=("layer4.1.bn2.*",))
    assert len(model.load_report.ignored) == 5


def test_error_leaves_nothing_half_loaded(r3d18_file):
    source, _ = r3d18_file
    state = {k: v for k, v in source.state_dict().items() if k != "layer1.0.conv1.weight"}
    with pytest.raises(WeightsLoadError):
        build_model("r3d18", num_classes=CLASSES, pretrained=state)


def test_ignore_without_weights_is_an_error():
    with pytest.raises(ValueError, match="pretrained_ignore=.*without pretrained weights"):
        build_model("r3d10", num_classes=3, pretrained_ignore=("fc.*",))


class _WouldRunCode:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_running_pickle_is_refused_through_build_model(r3d18_file, tmp_path):
    source, _ = r3d18_file
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": source.state_dict(), "arch": "resnet-18", "hook": _WouldRunCode(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match="allow_unsafe_pickle"):
        build_model("r3d18", num_classes=CLASSES, pretrained=path)
    assert not marker.exists()


def test_registry_entry_object_is_checked_too(tmp_path, monkeypatch):
    from snl_video.weights import get_weights

    monkeypatch.setenv("SNL_VIDEO_CACHE", str(tmp_path))
    with pytest.raises(WrongArchitectureError, match="are for r3d_18, but the model is mc3_18"):
        build_model("mc3_18", num_classes=101, pretrained=get_weights("r3d_18.torchvision_k400"))


def test_registry_name_loads_the_file_dropped_in_the_cache(tmp_path, monkeypatch):
    """The documented offline path: the registry's file name in $SNL_VIDEO_CACHE, then a registry name."""
    from pytorchvideo.models import hub

    monkeypatch.setenv("SNL_VIDEO_CACHE", str(tmp_path))
    torch.manual_seed(0)
    upstream = hub.slow_r50(pretrained=False).state_dict()
    torch.save({"model_state": upstream}, tmp_path / "SLOW_8x8_R50.pyth")
    model = build_model("slow_r50", num_classes=101, nonlocal_blocks="snl", pretrained="slow_r50.pytorchvideo_k400")
    report = model.load_report
    assert report.reinitialised_head == ["fc.weight", "fc.bias"] and report.new
    assert str(tmp_path / "SLOW_8x8_R50.pyth") in report.source
    assert torch.equal(model.layer3[2].conv1.weight, upstream["blocks.3.res_blocks.2.branch2.conv_a.weight"])


def test_a_2017_shortcut_a_file_loads_into_a_shortcut_a_model_and_explains_otherwise(tmp_path, monkeypatch):
    # Hara's 2017 resnet-18/34 use shortcut A: the file has no downsample tensors
    torch.manual_seed(5)
    source = build_model("r3d18", num_classes=CLASSES, shortcut="A").eval()
    path = tmp_path / "resnet-18-kinetics.pth"
    save_hara2017(source, path)
    ours = build_model("r3d18", num_classes=CLASSES, shortcut="A", pretrained=path).eval()
    clip = sample_clip(4, 32)
    with torch.no_grad():
        assert torch.equal(ours(clip), source(clip))
    # the default (shortcut B) model: a clear error saying what to build
    with pytest.raises(WeightsLoadError, match=r"has no shortcut \(downsample\) tensors.*shortcut='A'"):
        build_model("r3d18", num_classes=101, pretrained=path)
    # and the other way round: a shortcut-B file into a shortcut-A model
    b_file = tmp_path / "b.pth"
    save_hara2017(build_model("r3d18", num_classes=CLASSES), b_file)
    with pytest.raises(WeightsLoadError, match=r"has shortcut \(downsample\) tensors.*shortcut='B'"):
        build_model("r3d18", num_classes=101, shortcut="A", pretrained=b_file)
    # the registry entry builds the model it needs (offline path: the file in the cache)
    monkeypatch.setenv("SNL_VIDEO_CACHE", str(tmp_path))
    via_name = build_model("r3d18", num_classes=CLASSES, pretrained="r3d18.hara2017_k400").eval()
    assert via_name.spec.shortcut == "A"
    with torch.no_grad():
        assert torch.equal(via_name(clip), source(clip))
    # another depth is still "another architecture", not a shortcut problem
    with pytest.raises(WrongArchitectureError, match=r"that of r3d18 with shortcut A.*build_model\('r3d18', shortcut='A'"):
        build_model("r3d34", num_classes=101, pretrained=path)
    with pytest.raises(ValueError, match="needs r3d18 built with shortcut='A', but shortcut='B' was given"):
        build_model("r3d18", num_classes=CLASSES, shortcut="B", pretrained="r3d18.hara2017_k400")
