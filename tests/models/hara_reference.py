"""An independent statement of Hara et al.'s 3D ResNet (3D-ResNets-PyTorch, 2020 version),
written from the paper and the project's description, for the parity tests only.

It deliberately shares no code with ``snl_video.models``: plain per-block classes, the
project's attribute names (so its state dict has the project's keys), stride on the
3×3×3 conv, shortcut "B" (1×1×1 conv + BN) when the shape changes, conv1 7×7×7 stride
(1, 2, 2) padding 3, max-pool 3 / stride 2 / padding 1, global average pool, fc.
Shortcut "A" (the 2017 ResNet-18/34) as the project describes it: a 1×1×1 average pool
with the block's stride, then zero channels concatenated up to the output width.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_LAYERS = {
    10: ("basic", [1, 1, 1, 1]),
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
    152: ("bottleneck", [3, 8, 36, 3]),
    200: ("bottleneck", [3, 24, 36, 3]),
}


def _conv3(cin, cout, stride=1):
    return nn.Conv3d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1(cin, cout, stride=1):
    return nn.Conv3d(cin, cout, kernel_size=1, stride=stride, bias=False)


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, downsample):
        super().__init__()
        self.conv1 = _conv3(cin, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, downsample):
        super().__init__()
        self.conv1 = _conv1(cin, planes)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3(planes, planes, stride)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = _conv1(planes, planes * 4)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class _ShortcutA(nn.Module):
    def __init__(self, planes, stride):
        super().__init__()
        self.planes, self.stride = planes, stride

    def forward(self, x):
        out = F.avg_pool3d(x, kernel_size=1, stride=self.stride)
        zeros = torch.zeros(out.size(0), self.planes - out.size(1), *out.shape[2:], dtype=out.dtype)
        return torch.cat([out, zeros], dim=1)


class HaraReferenceResNet(nn.Module):
    def __init__(self, block, layers, num_classes, shortcut="B"):
        super().__init__()
        self.shortcut = shortcut
        self.in_planes = 64
        self.conv1 = nn.Conv3d(3, 64, kernel_size=(7, 7, 7), stride=(1, 2, 2), padding=(3, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._layer(block, 64, layers[0], 1)
        self.layer2 = self._layer(block, 128, layers[1], 2)
        self.layer3 = self._layer(block, 256, layers[2], 2)
        self.layer4 = self._layer(block, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _layer(self, block, planes, blocks, stride):
        downsample = None
        if (stride != 1 or self.in_planes != planes * block.expansion) and self.shortcut == "A":
            downsample = _ShortcutA(planes * block.expansion, stride)
        elif stride != 1 or self.in_planes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1(self.in_planes, planes * block.expansion, stride), nn.BatchNorm3d(planes * block.expansion)
            )
        layers = [block(self.in_planes, planes, stride, downsample)]
        self.in_planes = planes * block.expansion
        layers += [block(self.in_planes, planes, 1, None) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def hara_reference_resnet(depth: int, *, num_classes: int, shortcut: str = "B") -> HaraReferenceResNet:
    kind, layers = _LAYERS[depth]
    return HaraReferenceResNet(_Basic if kind == "basic" else _Bottleneck, layers, num_classes, shortcut)
