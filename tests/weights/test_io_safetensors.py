"""Foreign ``.safetensors`` files (timm / Hub style: a flat ``name -> tensor`` file) are read by
the safe reader and recognised by the same format detection as pickled checkpoints."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from snl_video.weights.errors import CheckpointReadError
from snl_video.weights.formats import convert_state, detect_format, read_checkpoint
from snl_video.weights.io import read_checkpoint_file


@pytest.fixture(scope="module")
def torchvision_state():
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    return tv.models.video.r3d_18(weights=None).state_dict()


def test_a_torchvision_safetensors_file_is_detected_as_torchvision(torchvision_state, tmp_path):
    path = tmp_path / "r3d_18.safetensors"
    save_file({k: v.contiguous() for k, v in torchvision_state.items()}, str(path))
    raw = read_checkpoint_file(path)
    assert raw.keys() == torchvision_state.keys()
    assert all(torch.equal(raw[k], torchvision_state[k]) for k in raw)
    detected = detect_format(raw, source=str(path))
    assert detected.format == "torchvision_video" and detected.num_classes == 400
    # the same answer as the pickled file of the same tensors
    torch.save(torchvision_state, tmp_path / "r3d_18.pth")
    pickled = read_checkpoint(tmp_path / "r3d_18.pth")
    assert convert_state(read_checkpoint(path)).keys() == convert_state(pickled).keys()


def test_a_flat_safetensors_file_without_its_suffix_is_sniffed(tmp_path):
    state = {"conv1.weight": torch.randn(4, 3, 3, 7, 7), "fc.weight": torch.randn(5, 4), "fc.bias": torch.zeros(5)}
    save_file(state, str(tmp_path / "weights.bin"))
    detected = read_checkpoint(tmp_path / "weights.bin")
    assert detected.format == "generic" and detected.num_classes == 5
    assert torch.equal(detected.state_dict["fc.weight"], state["fc.weight"])


def test_a_truncated_safetensors_file_is_a_read_error(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"fc.weight": torch.randn(5, 4)}, str(path))
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(CheckpointReadError, match="not a readable safetensors file"):
        read_checkpoint_file(path)
