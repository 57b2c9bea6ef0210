"""An independent restatement of pkumivision/FFC's 2-D FFC-ResNets (ImageNet), for parity tests.

``RefFFCResNet50`` is the released ``ffc_resnet50``; ``RefFFCResNetBasic`` its basic-block
networks (``ffc_resnet18`` = layers ``(2, 2, 2, 2)``; ``(1, 1, 1, 1)`` is the ResNet-10 layout),
with a ``base_width`` for the widened/narrowed trunks the released code fixes at 64.

Written from the released ``model_zoo/ffc.py`` / ``ffc_resnet.py`` semantics (2-D convs, the
``(x_l, x_g)`` tuples with the integer 0 for an absent part, ``nn.Identity`` for paths with
no channels, ``torch.rfft(..., normalized=True)`` = ``rfft2(norm="ortho")`` with real and
imaginary parts interleaved per channel, the LFU's 2×2 quarter stacking and tiling, the
``_make_layer`` shortcut rule) and with the same module names, so its ``state_dict()`` has
the released checkpoints' keys. It shares no code with ``snl_video.models.ffc``.
"""

from __future__ import annotations

import torch
from torch import nn


class RefFourierUnit(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_layer = nn.Conv2d(2 * channels, 2 * channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(2 * channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        n, c, h, w = x.shape
        f = torch.fft.rfft2(x, norm="ortho")
        f = torch.stack([f.real, f.imag], dim=2).reshape(n, 2 * c, h, f.shape[-1])  # c0.re, c0.im, c1.re, ...
        f = self.relu(self.bn(self.conv_layer(f)))
        f = f.reshape(n, c, 2, h, -1)
        return torch.fft.irfft2(torch.complex(f[:, :, 0], f[:, :, 1]), s=(h, w), norm="ortho")


class RefSpectralTransform(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, lfu: bool) -> None:
        super().__init__()
        self.down = nn.AvgPool2d(2, 2) if stride == 2 else nn.Identity()
        self.conv1 = nn.Sequential(nn.Conv2d(cin, cout // 2, 1, bias=False), nn.BatchNorm2d(cout // 2), nn.ReLU(True))
        self.fu = RefFourierUnit(cout // 2)
        self.use_lfu = lfu
        if lfu:
            self.lfu = RefFourierUnit(cout // 2)
        self.conv2 = nn.Conv2d(cout // 2, cout, 1, bias=False)

    def forward(self, x):
        x = self.conv1(self.down(x))
        y = self.fu(x)
        if self.use_lfu:
            n, c, h, w = x.shape
            q = x[:, : c // 4]
            top, bottom = q[:, :, : h // 2], q[:, :, h // 2 :]
            # split along H first (top, bottom), then each along W: order tl, bl, tr, br
            quarters = [top[..., : w // 2], bottom[..., : w // 2], top[..., w // 2 :], bottom[..., w // 2 :]]
            z = self.lfu(torch.cat(quarters, dim=1))
            y = y + torch.cat([torch.cat([z, z], dim=-1)] * 2, dim=-2)
        return self.conv2(x + y)


class RefFFC(nn.Module):
    def __init__(self, cin, cout, k, gin, gout, stride=1, padding=0, lfu=False):
        super().__init__()
        in_g, out_g = int(cin * gin), int(cout * gout)
        in_l, out_l = cin - in_g, cout - out_g
        self.gout = gout

        def make(a, b, spectral=False):
            if a == 0 or b == 0:
                return nn.Identity()
            if spectral:
                return RefSpectralTransform(a, b, stride, lfu)
            return nn.Conv2d(a, b, k, stride, padding, bias=False)

        self.convl2l = make(in_l, out_l)
        self.convl2g = make(in_l, out_g)
        self.convg2l = make(in_g, out_l)
        self.convg2g = make(in_g, out_g, spectral=True)

    def forward(self, x):
        xl, xg = x if isinstance(x, tuple) else (x, 0)
        yl = self.convl2l(xl) + self.convg2l(xg) if self.gout != 1 else 0
        yg = self.convl2g(xl) + self.convg2g(xg) if self.gout != 0 else 0
        return yl, yg


class RefFFCBNAct(nn.Module):
    def __init__(self, cin, cout, k, gin, gout, stride=1, padding=0, act=False, lfu=False):
        super().__init__()
        self.ffc = RefFFC(cin, cout, k, gin, gout, stride, padding, lfu)
        self.bn_l = nn.BatchNorm2d(int(cout * (1 - gout))) if gout != 1 else nn.Identity()
        self.bn_g = nn.BatchNorm2d(int(cout * gout)) if gout != 0 else nn.Identity()
        self.act_l = nn.ReLU(True) if act and gout != 1 else nn.Identity()
        self.act_g = nn.ReLU(True) if act and gout != 0 else nn.Identity()

    def forward(self, x):
        xl, xg = self.ffc(x)
        return self.act_l(self.bn_l(xl)), self.act_g(self.bn_g(xg))


class RefBottleneck(nn.Module):
    def __init__(self, cin, planes, stride, downsample, gin, gout, lfu):
        super().__init__()
        self.conv1 = RefFFCBNAct(cin, planes, 1, gin, gout, act=True, lfu=lfu)
        self.conv2 = RefFFCBNAct(planes, planes, 3, gout, gout, stride=stride, padding=1, act=True, lfu=lfu)
        self.conv3 = RefFFCBNAct(planes, planes * 4, 1, gout, gout, lfu=lfu)
        self.downsample = downsample
        self.relu_l = nn.ReLU(True) if gout != 1 else nn.Identity()
        self.relu_g = nn.ReLU(True) if gout != 0 else nn.Identity()

    def forward(self, x):
        x = x if isinstance(x, tuple) else (x, 0)
        idl, idg = x if self.downsample is None else self.downsample(x)
        yl, yg = self.conv3(self.conv2(self.conv1(x)))
        return self.relu_l(yl + idl), self.relu_g(yg + idg)


class RefFFCResNet50(nn.Module):
    """``ffc_resnet50(ratio=..., lfu=...)`` of the released code (no SE, groups 1)."""

    def __init__(self, *, ratio: float = 0.25, lfu: bool = False, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.inplanes = 64
        plan = [(64, 3, 1, 0, ratio), (128, 4, 2, ratio, ratio), (256, 6, 2, ratio, ratio), (512, 3, 2, ratio, 0)]
        for i, (planes, blocks, stride, gin, gout) in enumerate(plan):
            self.add_module(f"layer{i + 1}", self._layer(planes, blocks, stride, gin, gout, lfu))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, num_classes)

    def _layer(self, planes, blocks, stride, gin, gout, lfu):
        down = None
        if stride != 1 or self.inplanes != planes * 4 or gin == 0:
            down = RefFFCBNAct(self.inplanes, planes * 4, 1, gin, gout, stride=stride, lfu=lfu)
        layers = [RefBottleneck(self.inplanes, planes, stride, down, gin, gout, lfu)]
        self.inplanes = planes * 4
        layers += [RefBottleneck(self.inplanes, planes, 1, None, gout, gout, lfu) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x[0]).flatten(1))


class RefBasicBlock(nn.Module):
    """The released ``BasicBlock`` with ``conv2``'s output meeting the shortcut (the released
    forward overwrites it with ``se_block`` of ``conv1``'s output, pkumivision/FFC issue #6)."""

    def __init__(self, cin, planes, stride, downsample, gin, gout, lfu):
        super().__init__()
        self.conv1 = RefFFCBNAct(cin, planes, 3, gin, gout, stride=stride, padding=1, act=True, lfu=lfu)
        self.conv2 = RefFFCBNAct(planes, planes, 3, gout, gout, padding=1, lfu=lfu)
        self.downsample = downsample
        self.relu_l = nn.ReLU(True) if gout != 1 else nn.Identity()
        self.relu_g = nn.ReLU(True) if gout != 0 else nn.Identity()

    def forward(self, x):
        x = x if isinstance(x, tuple) else (x, 0)
        idl, idg = x if self.downsample is None else self.downsample(x)
        yl, yg = self.conv2(self.conv1(x))
        return self.relu_l(yl + idl), self.relu_g(yg + idg)


class RefFFCResNetBasic(nn.Module):
    """``FFCResNet(BasicBlock, layers, ratio=..., lfu=...)`` of the released code (no SE), with
    stage widths ``base_width · (1, 2, 4, 8)`` (64 in the released code)."""

    def __init__(self, layers, *, ratio: float, lfu: bool = False, num_classes: int = 1000, base_width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, base_width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.inplanes = base_width
        ratios = [(0, ratio), (ratio, ratio), (ratio, ratio), (ratio, 0)]
        for i, (blocks, (gin, gout)) in enumerate(zip(layers, ratios)):
            planes, stride = base_width * 2**i, 1 if i == 0 else 2
            self.add_module(f"layer{i + 1}", self._layer(planes, blocks, stride, gin, gout, lfu))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(base_width * 8, num_classes)

    def _layer(self, planes, blocks, stride, gin, gout, lfu):
        down = None
        if stride != 1 or self.inplanes != planes or gin == 0:
            down = RefFFCBNAct(self.inplanes, planes, 1, gin, gout, stride=stride, lfu=lfu)
        layers = [RefBasicBlock(self.inplanes, planes, stride, down, gin, gout, lfu)]
        self.inplanes = planes
        layers += [RefBasicBlock(planes, planes, 1, None, gout, gout, lfu) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x[0]).flatten(1))
