"""Model sources and checkpoint writers shared by the weights tests (plain names, no fixtures).

The upstream-style containers themselves are in :mod:`.layouts`; here are the snl_video and
hand-inflated models those tests save, the clip they feed, and the logits comparison.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from snl_video.models import build_model

from ..helpers import randomize_batchnorm

CLASSES = 400


def randomise_model(model: nn.Module, *, seed: int) -> None:
    """Random values for every parameter and buffer, at a scale that keeps a deep net's activations finite."""
    randomize_batchnorm(model, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.num_batches_tracked.fill_(int(torch.randint(1, 1000, (), generator=gen)))
            elif isinstance(module, (nn.Conv3d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)


def assert_same_logits(reference: nn.Module, ours: nn.Module, clip: torch.Tensor, *, atol: float = 1e-4) -> None:
    """Eval-mode logits of ``ours`` equal ``reference``'s within ``atol`` of their scale (and are not all zero)."""
    reference.eval()
    ours.eval()
    with torch.no_grad():
        expected = reference(clip)
        actual = ours(clip)
    assert actual.shape == expected.shape == (clip.shape[0], CLASSES)
    scale = expected.abs().max().item()
    assert scale > 1e-3  # vacuous on all-zero logits
    torch.testing.assert_close(actual, expected, atol=atol * max(scale, 1.0), rtol=0)


def sample_clip(frames: int, size: int) -> torch.Tensor:
    """A fixed random ``(1, 3, frames, size, size)`` clip."""
    return torch.randn(1, 3, frames, size, size, generator=torch.Generator().manual_seed(7))


def save_hara2017(model: nn.Module, path) -> None:
    """3D-ResNets-PyTorch 2017 container: DataParallel keys, epoch/arch/optimizer alongside, and
    no BatchNorm ``num_batches_tracked`` (the release predates PyTorch 0.4, which added it)."""
    state = {f"module.{k}": v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"epoch": 200, "arch": "resnet-18", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, path)


def hara_source(name: str, *, classes: int = CLASSES, seed: int = 3) -> nn.Module:
    """Registered model ``name`` with every tensor random (seeded), in eval mode: what a Hara file holds."""
    torch.manual_seed(seed)
    source = build_model(name, num_classes=classes)
    randomise_model(source, seed=seed)
    return source.eval()


class Block3d(nn.Module):
    """torchvision's BasicBlock in 3-D, names kept; temporal kernel ``kt`` on conv1, no temporal padding."""

    def __init__(self, c_in: int, c_out: int, stride: int, kt: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(c_in, c_out, (kt, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)
        self.bn1 = nn.BatchNorm3d(c_out)
        self.conv2 = nn.Conv3d(c_out, c_out, (1, 3, 3), 1, (0, 1, 1), bias=False)
        self.bn2 = nn.BatchNorm3d(c_out)
        self.kt = kt
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv3d(c_in, c_out, 1, (1, stride, stride), bias=False), nn.BatchNorm3d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # Valid temporal conv shortens T by kt-1: crop the shortcut to the centre frames.
        identity = x if self.downsample is None else self.downsample(x)
        trim = (self.kt - 1) // 2
        identity = identity[:, :, trim : identity.shape[2] - trim]
        return F.relu(out + identity)


class ResNet18In3d(nn.Module):
    """A hand-inflated torchvision resnet18 (same key names), temporally valid convolutions."""

    def __init__(self, stem_kt: int = 5, block_kt: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, (stem_kt, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        layers, c_in = [], 64
        for i, c in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(Block3d(c_in, c, stride, block_kt), Block3d(c, c, 1, block_kt)))
            c_in = c
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(512, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3, 4)))
