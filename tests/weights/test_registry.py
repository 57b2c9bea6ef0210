"""Registry consistency: every entry valid, names unique, facts that can be checked against installed packages."""

from __future__ import annotations

import dataclasses
import re

import pytest

from snl_video.weights.errors import WeightsError
from snl_video.weights.registry import (
    WEIGHTS,
    EvalTransformParams,
    eval_transform_params,
    get_weights,
    list_weights,
    validate_entry,
)

@pytest.mark.parametrize("entry", WEIGHTS, ids=lambda e: e.name)
def test_entry_is_valid(entry):
    from snl_video.models import list_models
    from snl_video.models.registry import model_entry

    assert validate_entry(entry) == []
    assert entry.architecture in list_models()
    assert set(dict(entry.model_options)) <= set(model_entry(entry.architecture).options())
    assert entry.name.startswith(entry.architecture + ".")
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.num_classes = 1  # type: ignore[misc]


def test_names_and_file_names_are_unique():
    names = [e.name for e in WEIGHTS]
    files = [e.file_name for e in WEIGHTS]
    assert len(set(names)) == len(names) and len(set(files)) == len(files)


def test_validate_entry_catches_bad_fields():
    good = get_weights("r3d_18.torchvision_k400")
    bad = dataclasses.replace(good, sha256="XYZ", url="http://x/y.pth", input_spec=dataclasses.replace(good.input_spec, crop_size=500))
    problems = " | ".join(validate_entry(bad))
    assert "sha256" in problems and "https" in problems and "file_name" in problems and "crop" in problems


def test_validate_entry_takes_an_input_spec_without_resize():
    # resize=None means "short side to the crop" (InputSpec.short_side): a valid entry
    # (validate_entry raised TypeError on min(None) before; found by mypy)
    good = get_weights("r3d_18.torchvision_k400")
    unresized = dataclasses.replace(good, input_spec=dataclasses.replace(good.input_spec, resize=None))
    assert unresized.input_spec.short_side == unresized.input_spec.crop_size
    assert validate_entry(unresized) == []


def test_torchvision_entries_match_the_installed_torchvision():
    from torchvision.models.video import MC3_18_Weights, R2Plus1D_18_Weights, R3D_18_Weights

    for name, enum in [("r3d_18", R3D_18_Weights), ("mc3_18", MC3_18_Weights), ("r2plus1d_18", R2Plus1D_18_Weights)]:
        entry, tv = get_weights(f"{name}.torchvision_k400"), enum.KINETICS400_V1
        assert entry.url == tv.url
        # torchvision file names embed the first hex digits of the sha256 (checked by its hub code).
        assert entry.sha256 == re.search(r"-([0-9a-f]+)\.pth$", tv.url).group(1)
        assert entry.sha256_is_prefix
        assert entry.reported_top1 == pytest.approx(tv.meta["_metrics"]["Kinetics-400"]["acc@1"])
        preset = tv.transforms()
        assert list(entry.input_spec.mean) == preset.mean and list(entry.input_spec.std) == preset.std
        assert list(entry.input_spec.resize) == preset.resize_size and [entry.input_spec.crop_size] * 2 == preset.crop_size
        assert entry.num_classes == len(tv.meta["categories"])


def test_pytorchvideo_entries_match_the_installed_hub():
    from pytorchvideo.models.hub import resnet as hub

    for arch, top1 in [("i3d_r50", 73.27), ("slow_r50", 74.58), ("c2d_r50", 71.46)]:
        entry = get_weights(f"{arch}.pytorchvideo_k400")
        assert entry.url == hub.checkpoint_paths[arch]
        assert f"top1 accuracy of {top1}" in getattr(hub, arch).__doc__
        assert entry.reported_top1 == top1


def test_torchvision_baseline_entries_match_the_installed_torchvision():
    from torchvision.models.video import MViT_V2_S_Weights, S3D_Weights, Swin3D_T_Weights

    from snl_video.weights.class_names import KINETICS400

    for name, enum in [("mvit_v2_s", MViT_V2_S_Weights), ("swin3d_t", Swin3D_T_Weights), ("s3d", S3D_Weights)]:
        entry, tv = get_weights(f"{name}.torchvision_k400"), enum.KINETICS400_V1
        assert entry.url == tv.url and entry.format == "torchvision_baseline" and entry.architecture == name
        assert entry.sha256 == re.search(r"-([0-9a-f]+)\.pth$", tv.url).group(1) and entry.sha256_is_prefix
        assert entry.reported_top1 == pytest.approx(tv.meta["_metrics"]["Kinetics-400"]["acc@1"])
        preset = tv.transforms()
        spec = entry.input_spec
        assert list(spec.mean) == preset.mean and list(spec.std) == preset.std
        resize = [spec.resize] if isinstance(spec.resize, int) else list(spec.resize)
        assert resize == preset.resize_size and [spec.crop_size] * 2 == preset.crop_size
        # "frame_rate=7.5, clips_per_video=5, and clip_len=16" in the weights' docs
        docs = dict(re.findall(r"`(\w+)=([\d.]+)`", tv.meta["_docs"]))
        assert spec.fps == float(docs["frame_rate"]) and spec.num_frames == int(docs["clip_len"])
        assert entry.eval_num_clips == int(docs["clips_per_video"]) and spec.sampling_stride == 1
        assert entry.class_names == KINETICS400 == tuple(tv.meta["categories"])


def test_pytorchvideo_slowfast_and_x3d_entries_match_the_installed_hub():
    from pytorchvideo.models.hub import slowfast as hub_slowfast
    from pytorchvideo.models.hub import x3d as hub_x3d

    for hub, arch, top1 in [(hub_slowfast, "slowfast_r50", 76.4), (hub_x3d, "x3d_xs", 69.12),
                            (hub_x3d, "x3d_s", 73.33), (hub_x3d, "x3d_m", 75.94)]:
        entry = get_weights(f"{arch}.pytorchvideo_k400")
        assert entry.url == hub.checkpoint_paths[arch] and entry.sha256 is None
        assert f"top1 accuracy of {top1}" in getattr(hub, arch).__doc__
        assert entry.reported_top1 == top1
        assert entry.format == ("pytorchvideo_slowfast" if arch == "slowfast_r50" else "pytorchvideo_x3d")


def test_hara_entries_are_offline_only_with_their_documented_preprocessing():
    k400 = get_weights("r3d50.hara2017_k400")
    assert k400.url is None and k400.input_spec.value_scale == 255 and k400.input_spec.std == (1.0, 1.0, 1.0)
    assert k400.input_spec.mean == (114.7748, 107.7354, 99.4750)
    assert {get_weights("r3d50.hara2020_k700").num_classes, get_weights("r3d50.hara2020_kmit").num_classes} == {700, 1039}


def test_lookup_and_listing():
    assert list_weights("*pytorchvideo*") == [
        "c2d_r50.pytorchvideo_k400", "i3d_r50.pytorchvideo_k400", "slow_r50.pytorchvideo_k400",
        "slowfast_r50.pytorchvideo_k400", "x3d_m.pytorchvideo_k400", "x3d_s.pytorchvideo_k400",
        "x3d_xs.pytorchvideo_k400",
    ]
    assert list_weights() == sorted(e.name for e in WEIGHTS)
    with pytest.raises(WeightsError) as info:
        get_weights("i3d_r101")
    assert "i3d_r101" in str(info.value) and "i3d_r50.pytorchvideo_k400" in str(info.value)


def test_eval_transform_params_come_from_the_entry():
    params = eval_transform_params("slow_r50.pytorchvideo_k400")
    assert params == EvalTransformParams(
        mean=(0.45,) * 3, std=(0.225,) * 3, value_scale=1, resize=256, crop_size=256, num_frames=8, sampling_stride=8
    )
    hara = eval_transform_params(get_weights("r3d50.hara2017_k400"))
    assert hara.value_scale == 255 and hara.num_frames == 16 and hara.crop_size == 112


def test_entry_for_file_by_upstream_name_then_by_family():
    from snl_video.weights.registry import entry_for_file

    # the upstream file under its own name: that entry, whatever format is guessed
    assert entry_for_file("I3D_8x8_R50.pyth", architecture="i3d_r50", format="pytorchvideo").name == \
        "i3d_r50.pytorchvideo_k400"
    # the same family under another name: the entry of that format and architecture
    assert entry_for_file("my r3d18.pth", architecture="r3d_18", format="torchvision_video").name == \
        "r3d_18.torchvision_k400"
    assert entry_for_file("x.pth", architecture="swin3d_t", format="torchvision_baseline").name == \
        "swin3d_t.torchvision_k400"  # not mvit_v2_s's, whose normalisation differs
    # 2-D ImageNet weights inflate into other trunks (also_fits)
    assert entry_for_file("x.pth", architecture="ffc_i3d_r50", format="ffc").name.startswith("ffc_c2d_r50.")
    # no entry of that family: nothing is guessed
    assert entry_for_file("x.pth", architecture="r3d10", format="hara2017") is None
    assert entry_for_file("x.pth", architecture="r3d_18", format="generic") is None
