"""An independent restatement of BA-Transform/BAT-Video-Classification's ResNet-50 (``models/resnet.py``)
and of its BAT block (``models/non_local.py``), for parity tests.

Written from the released semantics with the released module names (so ``state_dict()`` has
the checkpoints' keys): Conv3d stem ``(1 + 2u)×7×7`` with padding ``(u, 3, 3)``, a stem
max-pool ``1×3×3`` / ``(1, 2, 2)`` **without padding**, bottlenecks whose first conv is
``(1 + 2u)×1×1`` (``use_temp_convs``), temporal max-pool by 2 after ``layer1``, non-local
blocks inside the stages as ``layerX.nlJ`` after residual block J, and the head
``avg_pool3d(x, (T, 7, 7), stride=1)`` → dropout → ``fc`` (a 1×1×1 Conv3d with bias) → mean
of the scores. Only the ``s | H`` path of BATransform is restated (the sizes tested here),
with the Kronecker expansion written as ``torch.kron``. It shares no code with snl_video.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

# use_temp_convs of the released c2d_resnet50 / i3d_resnet50: stem, then the four stages.
TEMP_CONVS = {
    "c2d": ([0], [0, 0, 0], [0, 0, 0, 0], [0] * 6, [0, 0, 0]),
    "i3d": ([2], [1, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0, 1, 0], [0, 1, 0]),
}


def _cbr(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class RefBATransform(nn.Module):
    def __init__(self, channels: int, s: int, ts: int, k: int, tk: int) -> None:
        super().__init__()
        self.s, self.ts, self.k, self.tk = s, ts, k, tk
        self.conv1 = _cbr(channels, k)
        self.conv_p = nn.Conv3d(k, s * s * k, (1, s, 1))
        self.conv_q = nn.Conv3d(k, s * s * k, (1, 1, s))
        if tk > 0:
            self.conv_t = nn.Conv3d(k, ts * ts * tk, (ts, 1, 1))
        self.conv2 = _cbr(channels, channels)

    def forward(self, x):
        n, c, t, h, w = x.shape
        s, k = self.s, self.k
        assert h % s == 0 and w % s == 0, "only the s | H, s | W path is restated"
        o = self.conv1(x)
        p = self.conv_p(F.adaptive_max_pool3d(o, (t, s, 1))).view(n, k, s, s, t).softmax(dim=3)
        q = self.conv_q(F.adaptive_max_pool3d(o, (t, 1, s))).view(n, k, s, s, t).softmax(dim=2)
        eye_h, eye_w = torch.eye(h // s, dtype=x.dtype), torch.eye(w // s, dtype=x.dtype)
        y = torch.empty_like(x)
        per = c // k  # group g serves channels [g·per, (g+1)·per)
        for b in range(n):
            for g in range(k):
                for f in range(t):
                    big_p = torch.kron(p[b, g, :, :, f], eye_h)
                    big_q = torch.kron(q[b, g, :, :, f], eye_w)
                    y[b, g * per : (g + 1) * per, f] = big_p @ x[b, g * per : (g + 1) * per, f] @ big_q
        if self.tk > 0:
            tm = self.conv_t(F.adaptive_avg_pool3d(o, (self.ts, 1, 1))).view(n, self.tk, self.ts, self.ts).softmax(dim=3)
            eye_t = torch.eye(t // self.ts, dtype=x.dtype)
            mixed = torch.empty_like(y)
            per_t = c // self.tk
            for b in range(n):
                for g in range(self.tk):
                    big_t = torch.kron(tm[b, g], eye_t)  # (t, t)
                    sl = slice(g * per_t, (g + 1) * per_t)
                    mixed[b, sl] = torch.einsum("ij,cjhw->cihw", big_t, y[b, sl])
            y = mixed
        return self.conv2(y)


class RefBATBlock(nn.Module):
    def __init__(self, channels: int, *, r: int = 2, s: int = 7, ts: int = 4, k: int = 8, tk: int = 4, dropout: float = 0.2):
        super().__init__()
        inter = channels // r
        self.conv1 = _cbr(channels, inter)
        self.batransform = RefBATransform(inter, s, ts, k, tk)
        self.conv2 = _cbr(inter, channels)
        self.dropout = nn.Dropout3d(dropout)

    def forward(self, x):
        return x + self.dropout(self.conv2(self.batransform(self.conv1(x))))


class RefBottleneck(nn.Module):
    def __init__(self, cin, planes, stride, temp, downsample):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, planes, (1 + 2 * temp, 1, 1), padding=(temp, 0, 0), bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class RefBATResNet50(nn.Module):
    """``c2d_resnet50`` / ``i3d_resnet50`` of the released code; ``nonlocal_mod=2`` places BAT blocks
    after blocks 1, 3 of layer2 and 1, 3, 5 of layer3 when ``bat`` options are given."""

    def __init__(self, variant: str, *, num_classes: int = 400, bat: dict | None = None, dropout: float = 0.5):
        super().__init__()
        temps = TEMP_CONVS[variant]
        u = temps[0][0]
        self.conv1 = nn.Conv3d(3, 64, (1 + 2 * u, 7, 7), stride=(1, 2, 2), padding=(u, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=0)
        cin = 64
        for i, (planes, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))):
            layers = []
            for j in range(blocks):
                down = None
                if j == 0 and (stride != 1 or cin != planes * 4):
                    down = nn.Sequential(
                        nn.Conv3d(cin, planes * 4, 1, stride=(1, stride, stride), bias=False), nn.BatchNorm3d(planes * 4)
                    )
                layers.append((str(j), RefBottleneck(cin, planes, stride if j == 0 else 1, temps[i + 1][j], down)))
                cin = planes * 4
                if bat is not None and i in (1, 2) and j % 2 == 1:
                    layers.append((f"nl{j}", RefBATBlock(cin, **bat)))
            self.add_module(f"layer{i + 1}", nn.Sequential(OrderedDict(layers)))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Conv3d(2048, num_classes, 1, bias=True)

    def features(self, x):
        """The res5 map before the head."""
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = F.max_pool3d(x, (2, 1, 1), (2, 1, 1))
        return self.layer4(self.layer3(self.layer2(x)))

    def forward(self, x):
        x = self.features(x)
        x = F.avg_pool3d(x, (x.shape[2], 7, 7), stride=1)
        return self.fc(self.dropout(x)).mean(dim=(2, 3, 4))
