"""VideoBackbone: the non-local plumbing every backbone shares (keys, where blocks run, init, clip check)."""

import pytest
import torch
from torch import nn

from snl_video.models.backbone import VideoBackbone, nonlocal_key


class _Times(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class _Plus(nn.Module):
    def forward(self, x):
        return x + 1


class _Spec:
    in_channels = 3


class _Tiny(VideoBackbone):
    def __init__(self, zero_conv_bias: bool = False) -> None:
        super().__init__()
        self.zero_conv_bias = zero_conv_bias
        self.spec = _Spec()
        self.layer1 = nn.Sequential(_Times(2), _Times(2), _Times(2))
        self.conv = nn.Conv3d(3, 3, 1, bias=True)
        self.nonlocal_blocks = nn.ModuleDict()


def test_keys_name_the_stage_and_the_block_they_follow():
    assert nonlocal_key("layer3", 4) == "layer3_after_4"
    assert nonlocal_key("slow.layer3", 0) == "slow_layer3_after_0" == VideoBackbone.nonlocal_key("slow.layer3", 0)


def test_a_placed_block_runs_right_after_its_residual_block():
    model = _Tiny()
    x = torch.ones(1)
    assert model.run_stage("layer1", model.layer1, x).item() == 8  # no block placed
    model.nonlocal_blocks[nonlocal_key("layer1", 0)] = _Plus()
    assert model.run_stage("layer1", model.layer1, x).item() == (2 + 1) * 4
    # a custom way to meet the map (an FFC pair, say) goes through ``apply``
    seen = []
    model.run_stage("layer1", model.layer1, x, lambda block, t: seen.append(t.item()) or block(t))
    assert seen == [2]


def test_backbone_state_dict_leaves_the_blocks_out():
    model = _Tiny()
    model.nonlocal_blocks["layer1_after_0"] = nn.Linear(1, 1)
    assert set(model.state_dict()) - set(model.backbone_state_dict()) == {"nonlocal_blocks.layer1_after_0.weight",
                                                                          "nonlocal_blocks.layer1_after_0.bias"}


@pytest.mark.parametrize("zero", [False, True])
def test_init_zeroes_conv_biases_only_where_the_model_asks(zero):
    model = _Tiny(zero_conv_bias=zero)
    nn.init.constant_(model.conv.bias, 0.5)
    model.reset_parameters()
    assert bool((model.conv.bias == 0).all()) is zero


def test_anything_but_a_clip_batch_is_refused_naming_the_shape():
    with pytest.raises(ValueError, match=r"expected a clip batch \(B, 3, T, H, W\), got shape \(1, 2, 4, 8, 8\)"):
        _Tiny().check_clip(torch.zeros(1, 2, 4, 8, 8))
    _Tiny().check_clip(torch.zeros(1, 3, 4, 8, 8))
