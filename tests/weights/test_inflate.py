"""2-D → 3-D inflation: on a clip of identical frames the inflated 3-D ResNet gives the 2-D ResNet's logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision

from snl_video.weights.errors import WeightsError
from snl_video.weights.inflate import inflate_conv_weight, inflate_state_dict

from .layouts import randomise
from .sources import ResNet18In3d


@pytest.mark.parametrize("method", ["average", "center"])
def test_inflated_resnet18_reproduces_2d_logits_on_a_constant_clip(method):
    net2d = torchvision.models.resnet18(weights=None, num_classes=10).double().eval()
    net2d.load_state_dict(randomise(net2d.state_dict()))
    net3d = ResNet18In3d().double().eval()
    state = inflate_state_dict(net2d.state_dict(), net3d.state_dict(), method=method)
    net3d.load_state_dict(state, strict=True)
    assert state["conv1.weight"].shape == (64, 3, 5, 7, 7)
    assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1, 1)
    assert torch.equal(state["bn1.running_var"], net2d.state_dict()["bn1.running_var"])

    frame = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    # 4 (stem) + 8 blocks x 2 frames consumed by valid temporal convs: 21 frames -> 1.
    clip = frame.unsqueeze(2).expand(-1, -1, 21, -1, -1).contiguous()
    with torch.no_grad():
        expected = net2d(frame)
        got = net3d(clip)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_average_inflation_of_a_single_conv_matches_per_frame_2d_conv():
    w2d = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    w3d = inflate_conv_weight(w2d, 3)
    assert w3d.shape == (6, 4, 3, 3, 3)
    torch.testing.assert_close(w3d.sum(dim=2), w2d)
    frame = torch.randn(1, 4, 9, 9, dtype=torch.float64)
    clip = frame.unsqueeze(2).repeat(1, 1, 5, 1, 1)
    out3d = F.conv3d(clip, w3d, padding=(0, 1, 1))
    out2d = F.conv2d(frame, w2d, padding=1)
    for t in range(out3d.shape[2]):
        torch.testing.assert_close(out3d[:, :, t], out2d)


def test_center_inflation_puts_the_kernel_in_the_middle():
    w2d = torch.randn(2, 3, 3, 3)
    w3d = inflate_conv_weight(w2d, 5, method="center")
    assert torch.equal(w3d[:, :, 2], w2d) and w3d[:, :, [0, 1, 3, 4]].abs().sum() == 0


def test_inflate_state_dict_leaves_non_inflatable_tensors_alone():
    state = {"conv.weight": torch.randn(4, 3, 3, 3), "fc.weight": torch.randn(1000, 4), "extra": torch.randn(2, 2, 2, 2)}
    target = {"conv.weight": torch.empty(4, 3, 3, 3, 3), "fc.weight": torch.empty(101, 4), "extra": torch.empty(2, 2, 2, 5, 5)}
    out = inflate_state_dict(state, target)
    assert out["conv.weight"].shape == (4, 3, 3, 3, 3)
    assert out["fc.weight"] is state["fc.weight"]  # head mismatch stays visible to the load report
    assert out["extra"] is state["extra"]  # spatial sizes differ: not an inflation


def test_bad_arguments_are_named():
    with pytest.raises(WeightsError, match="shape"):
        inflate_conv_weight(torch.zeros(3, 3, 3), 3)
    with pytest.raises(WeightsError, match="odd"):
        inflate_conv_weight(torch.zeros(1, 1, 3, 3), 4, method="center")
