"""InputSpec: one frozen record of what a network is fed, with a plain-data form."""

from __future__ import annotations

import json

import pytest

from snl_video.inputspec import HARA_KINETICS_MEAN, HARA_KINETICS_STD, InputSpec


def _spec(**changes):
    base = dict(num_frames=16, sampling_stride=2, crop_size=112, mean=(0.4, 0.45, 0.5), std=(0.2, 0.25, 0.3))
    return InputSpec(**{**base, **changes})


@pytest.mark.parametrize("changes", [{}, {"value_scale": 255.0, "resize": (128, 171), "fps": 15.0}, {"resize": 128}])
def test_to_dict_is_plain_json_and_round_trips(changes):
    spec = _spec(**changes)
    data = json.loads(json.dumps(spec.to_dict()))  # plain data only
    assert InputSpec.from_dict(data) == spec


def test_from_dict_names_unknown_and_missing_keys():
    data = _spec().to_dict()
    with pytest.raises(ValueError, match=r"unknown keys \['frames'\]"):
        InputSpec.from_dict({**data, "frames": 8})
    with pytest.raises(ValueError, match=r"missing keys \['crop_size'\]"):
        InputSpec.from_dict({k: v for k, v in data.items() if k != "crop_size"})


@pytest.mark.parametrize("changes, words", [({"num_frames": 0}, "num_frames"), ({"std": (1.0, 0.0, 1.0)}, "std"),
                                            ({"mean": (0.5, 0.5)}, "3 values"), ({"fps": -1.0}, "fps"),
                                            ({"resize": (1, 2, 3)}, "resize")])
def test_bad_values_are_refused_with_their_name(changes, words):
    with pytest.raises(ValueError, match=words):
        _spec(**changes)


def test_short_side_and_legacy_checkpoint_dicts():
    assert _spec().short_side == 112 and _spec(resize=(128, 171)).short_side == 128 and _spec(resize=144).short_side == 144
    legacy = InputSpec.from_legacy_checkpoint({"mean": list(HARA_KINETICS_MEAN), "std": list(HARA_KINETICS_STD)},
                                              {"num_frames": 8, "sampling_stride": 1, "crop_size": 56})
    assert legacy == InputSpec(num_frames=8, sampling_stride=1, crop_size=56, mean=HARA_KINETICS_MEAN,
                               std=HARA_KINETICS_STD, value_scale=1.0)


def test_registry_entries_and_the_deprecated_names_are_the_one_type():
    from snl_video.weights import ClipSpec, EvalTransformParams, eval_transform_params, get_weights, list_weights

    assert ClipSpec is InputSpec and EvalTransformParams is InputSpec
    for name in list_weights():
        entry = get_weights(name)
        assert isinstance(entry.input_spec, InputSpec) and entry.clip is entry.input_spec
        assert eval_transform_params(name) is entry.input_spec
        assert InputSpec.from_dict(entry.input_spec.to_dict()) == entry.input_spec


def test_the_two_kinetics_normalisations_are_named_by_source():
    from snl_video.data.transforms import HARA_KINETICS_NORMALIZATION, TORCHVISION_KINETICS_NORMALIZATION
    from snl_video.weights import get_weights

    # torchvision's r3d_18 weights use torchvision's statistics; Hara's 2020 release its own
    assert get_weights("r3d_18.torchvision_k400").input_spec.mean == TORCHVISION_KINETICS_NORMALIZATION.mean
    assert get_weights("r3d50.hara2020_k700").input_spec.mean == HARA_KINETICS_NORMALIZATION.mean
    assert get_weights("r3d50.hara2017_k400").input_spec.value_scale == 255  # the ActivityNet mean, 0-255
    assert HARA_KINETICS_NORMALIZATION.mean != TORCHVISION_KINETICS_NORMALIZATION.mean
