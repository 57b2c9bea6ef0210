"""Every container format: build it as upstream writes it, save, detect + unwrap, compare tensors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torchvision

from snl_video.weights.errors import UnknownFormatError, WeightsError
from snl_video.weights.formats import (
    CONVERTERS,
    FORMATS,
    KNOWN_FORMATS,
    CheckpointFormat,
    Unwrapped,
    convert_state,
    detect_format,
    guess_architecture,
    read_checkpoint,
    register_format,
    registered_formats,
    unregister_format,
)
from snl_video.weights.formats.base import tensor_state

from .layouts import (
    R18_BLOCKS,
    caffe2_blobs,
    dump_py2_style,
    hara_resnet_state,
    mmaction2_i3d_state,
    randomise,
    sgd_state,
    slowfast_slow_state,
)


def assert_same_tensors(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype, key
        assert torch.equal(got[key], value), key


def test_hara2017_container_with_module_prefix(tmp_path):
    state = hara_resnet_state(num_classes=400)
    path = tmp_path / "resnet-50-kinetics.pth"
    torch.save(
        {"epoch": 200, "arch": "resnet-50", "state_dict": {f"module.{k}": v for k, v in state.items()},
         "optimizer": sgd_state(len(state))},
        path,
    )
    d = read_checkpoint(path)
    assert d.format == "hara2017"
    assert_same_tensors(d.state_dict, state)
    assert d.num_classes == 400 and d.metadata["epoch"] == 200 and d.metadata["arch"] == "resnet-50"
    assert d.metadata["had_module_prefix"] is True
    assert d.architecture.depth == 50 and d.architecture.blocks_per_stage == (3, 4, 6, 3)
    assert d.architecture.stem_time_kernel == 7
    assert d.head_keys == ("fc.weight", "fc.bias")
    # Hara names are snl_video's r3d names: the converter is the identity after unwrapping.
    assert_same_tensors(convert_state(d), state)


@pytest.mark.parametrize("num_classes", [700, 1039])
def test_hara2020_container(tmp_path, num_classes):
    state = hara_resnet_state(num_classes=num_classes)
    path = tmp_path / "r3d50_K_200ep.pth"
    torch.save(
        {"epoch": 200, "arch": "resnet", "state_dict": state, "optimizer": sgd_state(4),
         "scheduler": {"milestones": {50: 1}, "last_epoch": 200}},
        path,
    )
    d = read_checkpoint(path)
    assert d.format == "hara2020" and d.num_classes == num_classes
    assert_same_tensors(d.state_dict, state)
    assert_same_tensors(convert_state(d), state)


@pytest.fixture(scope="module")
def pytorchvideo_hub():
    from pytorchvideo.models.hub import resnet as hub

    return hub


@pytest.mark.parametrize(
    "builder, stem_t, head_index",
    [("i3d_r50", 5, 6), ("slow_r50", 1, 5), ("c2d_r50", 1, 6)],
)
def test_pytorchvideo_hub_container(tmp_path, pytorchvideo_hub, builder, stem_t, head_index):
    # The real hub builders (narrowed with stem_dim_out to keep the file small): same key layout.
    model = getattr(pytorchvideo_hub, builder)(pretrained=False, stem_dim_out=8)
    state = randomise(model.state_dict())
    path = tmp_path / f"{builder}.pyth"
    torch.save({"model_state": state}, path)
    d = read_checkpoint(path)
    assert d.format == "pytorchvideo"
    assert_same_tensors(d.state_dict, state)
    assert d.head_keys == (f"blocks.{head_index}.proj.weight", f"blocks.{head_index}.proj.bias")
    assert d.num_classes == 400
    assert d.architecture.blocks_per_stage == (3, 4, 6, 3) and d.architecture.depth == 50
    assert d.architecture.stem_time_kernel == stem_t
    # The unwrapped state loads strictly back into the upstream model.
    fresh = getattr(pytorchvideo_hub, builder)(pretrained=False, stem_dim_out=8)
    fresh.load_state_dict(d.state_dict, strict=True)


@pytest.mark.parametrize("builder, blocks", [("r3d_18", R18_BLOCKS), ("mc3_18", R18_BLOCKS), ("r2plus1d_18", R18_BLOCKS)])
def test_torchvision_video_plain_state_dict(tmp_path, builder, blocks):
    model = getattr(torchvision.models.video, builder)(weights=None)
    state = randomise(model.state_dict())
    path = tmp_path / f"{builder}.pth"
    torch.save(state, path)
    d = read_checkpoint(path)
    assert d.format == "torchvision_video"
    assert_same_tensors(d.state_dict, state)
    assert d.num_classes == 400
    assert d.architecture.blocks_per_stage == blocks and d.architecture.depth == 18
    assert d.container_keys[0] == "stem.0.weight"


@pytest.mark.parametrize("nonlocal_blocks", [False, True])
def test_mmaction2_container(tmp_path, nonlocal_blocks):
    state = mmaction2_i3d_state(nonlocal_blocks=nonlocal_blocks)
    path = tmp_path / "i3d_r50.pth"
    torch.save(
        {"meta": {"epoch": 100, "iter": 1000, "mmcv_version": "1.3.1", "CLASSES": None},
         "state_dict": state, "optimizer": sgd_state(3)},
        path,
    )
    d = read_checkpoint(path)
    assert d.format == "mmaction2"
    assert_same_tensors(d.state_dict, state)
    assert d.num_classes == 400 and d.metadata["epoch"] == 100
    assert d.architecture.depth == 50 and d.architecture.stem_time_kernel == 5
    assert d.architecture.has_nonlocal is nonlocal_blocks
    nl_keys = [k for k in d.state_dict if ".non_local_block." in k]
    assert bool(nl_keys) is nonlocal_blocks
    if nonlocal_blocks:
        assert "backbone.layer2.1.non_local_block.theta.conv.weight" in d.state_dict


def test_slowfast_pyth_container(tmp_path):
    state = slowfast_slow_state()
    path = tmp_path / "SLOWONLY_8x8_R50.pyth"
    torch.save({"epoch": 196, "model_state": state, "optimizer_state": sgd_state(3),
                "cfg": "MODEL:\n  ARCH: slow\n  NUM_CLASSES: 400\n"}, path)
    d = read_checkpoint(path)
    assert d.format == "slowfast"
    assert_same_tensors(d.state_dict, state)
    assert d.num_classes == 400 and d.metadata["epoch"] == 196 and "ARCH: slow" in d.metadata["cfg"]
    assert d.architecture.depth == 50 and d.architecture.blocks_per_stage == (3, 4, 6, 3)


def test_caffe2_pkl_container(tmp_path):
    blobs = caffe2_blobs()
    solver = {"conv1_w_momentum": blobs["conv1_w"] * 0, "lr": blobs["pred_b"][:1], "model_iter": blobs["pred_b"][:1]}
    path = tmp_path / "I3D_8x8_R50.pkl"
    dump_py2_style({"blobs": {**blobs, **solver}}, path)
    d = read_checkpoint(path)
    assert d.format == "caffe2"
    assert set(d.state_dict) == set(blobs)  # solver blobs dropped
    for name, value in blobs.items():
        assert torch.equal(d.state_dict[name], torch.from_numpy(value)), name
    assert d.metadata["skipped_blobs"] == 3
    assert d.num_classes == 400 and d.head_keys == ("pred_w", "pred_b")
    assert d.architecture.depth == 50 and d.architecture.stem_time_kernel == 5


def test_torchvision_2d_imagenet_resnet(tmp_path):
    state = randomise(torchvision.models.resnet18(weights=None).state_dict())
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    d = read_checkpoint(path)
    assert d.format == "torchvision_2d"
    assert_same_tensors(d.state_dict, state)
    assert d.num_classes == 1000 and d.architecture.depth == 18 and d.architecture.stem_time_kernel is None


def test_resnet50_depth_is_inferred_from_key_counts():
    guess = guess_architecture(torchvision.models.resnet50(weights=None).state_dict())
    assert guess.blocks_per_stage == (3, 4, 6, 3) and guess.bottleneck and guess.depth == 50
    assert "ResNet-50" in guess.describe()


@pytest.mark.parametrize("container_key", ["state_dict", "model", "model_state"])
def test_generic_fallback_under_common_container_keys(tmp_path, container_key):
    state = {"encoder.weight": torch.randn(3, 4), "encoder.bias": torch.randn(3)}
    path = tmp_path / "generic.pt"
    torch.save({container_key: {f"module.{k}": v for k, v in state.items()}, "step": 7}, path)
    d = read_checkpoint(path)
    assert d.format == "generic"
    assert_same_tensors(d.state_dict, state)
    assert d.metadata["container_key"] == container_key and d.num_classes is None


def test_unknown_container_lists_keys_and_known_formats():
    with pytest.raises(UnknownFormatError) as info:
        detect_format({"weights_blob": b"...", "version": 3}, source="odd.pth")
    msg = str(info.value)
    assert "odd.pth" in msg and "'weights_blob'" in msg and "'version'" in msg
    for fmt in KNOWN_FORMATS:
        assert fmt in msg


def test_non_dict_checkpoint_is_rejected():
    with pytest.raises(UnknownFormatError, match="found Tensor"):
        detect_format(torch.zeros(3))


def test_state_dict_with_non_tensor_values_is_named():
    with pytest.raises(UnknownFormatError, match="not tensors"):
        detect_format({"model_state": {"blocks.0.conv.weight": [1, 2]}})


def test_the_detection_list_holds_every_known_format_once_with_generic_last():
    names = [f.name for f in FORMATS]
    assert sorted(names) == sorted(KNOWN_FORMATS) and len(names) == len(set(names))
    assert names[-1] == "generic"
    # CONVERTERS is derived from the records, not a second registry.
    assert dict(CONVERTERS) == {f.name: f.convert for f in FORMATS}
    with pytest.raises(TypeError):
        CONVERTERS["pytorchvideo"] = lambda s: s  # type: ignore[index]


def test_converting_a_format_nobody_registered_names_the_known_ones():
    d = dataclasses.replace(detect_format({"state_dict": {"w": torch.zeros(1)}}), format="onnx")
    with pytest.raises(WeightsError, match=r"no checkpoint format named 'onnx'; known formats: .*pytorchvideo"):
        convert_state(d)


def _onnx_like_format(name: str = "my_format") -> CheckpointFormat:
    return CheckpointFormat(
        name=name,
        description="a test format: {'weights': {...}, 'my_format': 1}",
        recognise=lambda c: c.get("my_format") == 1 and isinstance(c.get("weights"), dict),
        unwrap=lambda c, source: Unwrapped(tensor_state(c["weights"], where=source), {"version": 1}),
        head_keys=("classifier.weight",),
        convert=lambda s: {k.replace("encoder.", "conv1."): v for k, v in s.items()},
    )


def test_register_format_is_explicit_and_tried_before_the_built_in_ones():
    container = {"my_format": 1, "weights": {"encoder.weight": torch.zeros(2), "classifier.weight": torch.zeros(7, 2)}}
    with pytest.raises(UnknownFormatError):
        detect_format(container)
    register_format(_onnx_like_format())
    try:
        assert registered_formats()[0].name == "my_format"
        d = detect_format(container)
        assert d.format == "my_format" and d.num_classes == 7 and d.metadata == {"version": 1}
        assert set(convert_state(d)) == {"conv1.weight", "classifier.weight"}
        assert "my_format" in CONVERTERS
        with pytest.raises(WeightsError, match="already registered"):
            register_format(_onnx_like_format())
        register_format(_onnx_like_format(), overwrite=True)
        assert [f.name for f in registered_formats()].count("my_format") == 1
    finally:
        unregister_format("my_format")
    assert "my_format" not in CONVERTERS
    with pytest.raises(WeightsError, match="built-in"):
        register_format(_onnx_like_format("hara2017"))
    with pytest.raises(WeightsError, match="no user-registered"):
        unregister_format("hara2017")


def test_mmaction2_is_recognised_by_its_keys_without_meta():
    state = mmaction2_i3d_state(nonlocal_blocks=False)
    d = detect_format({"state_dict": {f"module.{k}": v for k, v in state.items()}})
    assert d.format == "mmaction2" and d.num_classes == 400
    assert_same_tensors(d.state_dict, state)
