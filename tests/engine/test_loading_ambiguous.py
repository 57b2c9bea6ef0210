"""A foreign file whose tensors fit several registered architectures fed different clips.

X3D-XS, -S and -M are one network (pytorchvideo's ``create_x3d`` with depth factor 2.2)
fed 4x12, 13x6 and 16x5 frames. A file of that network under a name that is not a registry
file name cannot say which clip it expects; the loader used to take the first fitting
architecture (x3d_xs) and feed it 4-frame clips with no error.
"""

from __future__ import annotations

import pytest
import torch

from snl_video.errors import InvalidValueError
from snl_video.engine.loading import load_inference_model
from snl_video.weights.registry import get_weights


@pytest.fixture(scope="module")
def x3d_state():
    from pytorchvideo.models.x3d import create_x3d

    torch.manual_seed(0)
    return {"model_state": create_x3d(model_num_class=400).state_dict()}


def test_an_x3d_file_under_another_name_is_refused_naming_the_choices(x3d_state, tmp_path):
    path = tmp_path / "my_x3d.pyth"
    torch.save(x3d_state, path)
    with pytest.raises(InvalidValueError) as info:
        load_inference_model(weights=path)
    message = str(info.value)
    for arch in ("x3d_xs", "x3d_s", "x3d_m"):
        assert get_weights(f"{arch}.pytorchvideo_k400").file_name in message
    assert "13x6" in message and "rename" in message


def test_the_same_file_under_its_registry_file_name_gets_that_entrys_clip(x3d_state, tmp_path):
    entry = get_weights("x3d_s.pytorchvideo_k400")
    path = tmp_path / entry.file_name
    torch.save(x3d_state, path)
    loaded = load_inference_model(weights=path)
    assert loaded.architecture == "x3d_s"
    assert (loaded.input_spec.num_frames, loaded.input_spec.sampling_stride) == (13, 6)
    assert loaded.input_spec == entry.input_spec
