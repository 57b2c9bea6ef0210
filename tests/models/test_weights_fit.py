"""The model families' own explanations of a checkpoint that does not fit (unit level; the
end-to-end errors through build_model are in tests/weights/test_loading_finetune.py, test_ffc.py and
tests/weights/test_formats_converters.py)."""

from __future__ import annotations

import pytest
import torch

from snl_video.models import build_model
from snl_video.models.architectures import explain_shortcut_mismatch, hara_resnet, pytorchvideo_resnet50
from snl_video.models.ffc import explain_ffc_mismatch
from snl_video.models.placement import explain_nonlocal_mismatch
from snl_video.models.weights_fit import FAMILY_HINTS, WeightsMismatch, check_weights_fit
from snl_video.weights import WeightsLoadError, detect_format

BACKBONE = {"conv1.weight": (8, 3, 7, 7, 7), "layer2.0.conv1.weight": (16, 8, 3, 3, 3)}
SHORTCUT_B = {**BACKBONE, "layer2.0.downsample.0.weight": (16, 8, 1, 1, 1)}


def _mismatch(spec, mine, theirs) -> WeightsMismatch:
    return WeightsMismatch(source="f.pth", description="a checkpoint", spec=spec, model_signature=mine,
                           checkpoint_signature=theirs)


def test_shortcut_hint_names_the_shortcut_the_file_needs():
    a_model = hara_resnet(18, shortcut="A")
    assert "it is a shortcut-B network" in explain_shortcut_mismatch(_mismatch(a_model, BACKBONE, SHORTCUT_B))
    b_model = hara_resnet(18)
    message = explain_shortcut_mismatch(_mismatch(b_model, SHORTCUT_B, BACKBONE))
    assert "shortcut-A network (3D-ResNets-PyTorch 2017 resnet-18/34)" in message and "shortcut='A'" in message


def test_shortcut_hint_stays_out_of_other_families_and_other_differences():
    other_family = pytorchvideo_resnet50("i3d")
    assert explain_shortcut_mismatch(_mismatch(other_family, SHORTCUT_B, BACKBONE)) is None
    wider = {**SHORTCUT_B, "conv1.weight": (16, 3, 7, 7, 7)}
    assert explain_shortcut_mismatch(_mismatch(hara_resnet(18), wider, BACKBONE)) is None


def test_ffc_hint_only_speaks_for_ffc_models():
    assert explain_ffc_mismatch(_mismatch(hara_resnet(50), BACKBONE, SHORTCUT_B)) is None
    assert explain_ffc_mismatch in FAMILY_HINTS and explain_shortcut_mismatch in FAMILY_HINTS


def test_nonlocal_hint_is_silent_when_the_model_has_the_blocks():
    state = {"nonlocal_blocks.layer3_after_4.theta.weight": torch.zeros(1)}
    fits = explain_nonlocal_mismatch(state, model_keys=set(state), model_blocks=["layer3_after_4"], ignored=set(),
                                     fmt="generic")
    assert fits is None
    missing = explain_nonlocal_mismatch(state, model_keys=set(), model_blocks=[], ignored=set(), fmt="mmaction2")
    assert "['layer3_after_4']" in missing and "mmaction2_nonlocal_spec" in missing
    assert explain_nonlocal_mismatch(state, model_keys=set(), model_blocks=[], ignored=set(state), fmt="generic") is None


def test_check_weights_fit_accepts_a_matching_backbone_and_explains_a_wrong_shortcut():
    torch.manual_seed(0)
    model = build_model("r3d10", num_classes=3)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    check_weights_fit(model, detect_format(state), state, model_name="r3d10")  # fits: no error
    no_shortcut = {k: v for k, v in state.items() if ".downsample." not in k}
    with pytest.raises(WeightsLoadError, match="Set model.options.shortcut=A"):
        check_weights_fit(model, detect_format(no_shortcut), no_shortcut, model_name="r3d10")
