"""Bilinear Attentional Transform (BAT / 3D-BAT; Chi, Yuan, Mu, Wang, CVPR 2020) for video.

The released video block (BA-Transform/BAT-Video-Classification, ``models/non_local.py``)::

    xl = ReLU(BN(conv 1×1×1, C → C')(x))                 C' = C / r  (or inter_channels)
    o  = ReLU(BN(conv 1×1×1, C' → k)(xl))                k descriptor maps = k groups
    p  = conv_p(max-pool of o to (T, s, 1))  → (B, k, s, s, T), softmax over columns (rows of P sum to 1)
    q  = conv_q(max-pool of o to (T, 1, s))  → (B, k, s, s, T), softmax over rows (columns of Q sum to 1)
    y  = (p ⊗ I_{H/s}) · xl · (q ⊗ I_{W/s})              per frame, per channel (group g serves
                                                          channels [g·C'/k, (g+1)·C'/k))
    tk > 0 (3D-BAT):  tm = conv_t(avg-pool of o to (ts, 1, 1)) → (B, tk, ts, ts), softmax over
                      columns; y[:, c, :, h, w] ← (tm ⊗ I_{T/ts}) · y[:, c, :, h, w]
    y  = ReLU(BN(conv 1×1×1, C' → C'))                   (end of the transform)
    y  = Dropout3d(ReLU(BN(conv 1×1×1, C' → C)))
    return x + y

The Kronecker operators are applied without materialising ``H×H`` / ``W×W`` / ``T×T``
matrices: ``(p ⊗ I_m) x`` views the rows of ``x`` as ``(s, m)`` (row ``i·m + a``) and
contracts ``p`` over the ``s`` axis (an ``einsum``), ``2·C'·T·H·W·s`` multiply-adds instead
of ``C'·T·H·W·H``. Sizes: H and W must be multiples of ``s`` (so H ≥ s) and, with
``tk > 0``, T a multiple of ``ts``; the released code's sliding-window path for other
sizes (hard-wired to two window positions) is not reproduced — those sizes are errors.

Module and state-dict names are the released ones (``conv1.0/1``, ``batransform.conv1``,
``batransform.conv_p/conv_q/conv_t``, ``batransform.conv2``, ``conv2.0/1``), so released
checkpoints map key for key. Initialisation as released (kaiming fan-out convs, zero
biases, BN γ = 1): **not** the identity at init. ``zero_init=True`` zeroes the last BN
(``conv2.1``), making the block exactly the identity (ReLU(0) = 0); its ReLU then passes
the gradient at 0 so the block can leave the identity. The softmaxes run in float32.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import InvalidValueError
from .block import ReLUOpenAtZero

logger = logging.getLogger(__name__)

__all__ = ["BATBlock", "BATransform", "build_bat"]


class _OpenReLU(nn.Module):
    """ReLU whose gradient at exactly 0 is 1 (see :class:`.block.ReLUOpenAtZero`)."""

    def forward(self, x: Tensor) -> Tensor:
        # The open-at-zero gradient matters only for training; eval uses the plain ReLU
        # (same values) so the block traces and exports like any other module.
        return ReLUOpenAtZero.apply(x) if self.training else F.relu(x)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


def _pointwise(conv: nn.Conv3d, x: Tensor) -> Tensor:
    """A 1×1×1 conv as a 1×1 conv2d on ``(B, C, T·H, W)`` (same function; fast on CPU)."""
    b, c, t, h, w = x.shape
    weight = conv.weight.reshape(conv.weight.shape[0], conv.weight.shape[1], 1, 1)
    return F.conv2d(x.reshape(b, c, t * h, w), weight, conv.bias).reshape(b, -1, t, h, w)


def _softmax(logits: Tensor, dim: int) -> Tensor:
    """Softmax in float32 (or the input's wider dtype): half-precision exponentials of
    data-dependent logits lose the small entries the bilinear products sum."""
    dtype = torch.float32 if logits.dtype in (torch.float16, torch.bfloat16) else logits.dtype
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return torch.softmax(logits.to(dtype), dim=dim)


def _conv_bn_relu_forward(seq: nn.Sequential, x: Tensor) -> Tensor:
    """A :func:`_conv_bn_relu` sequence on ``x``, its 1×1×1 conv run by :func:`_pointwise`."""
    conv = cast(nn.Conv3d, seq[0])  # _conv_bn_relu puts a Conv3d first
    return seq[2](seq[1](_pointwise(conv, x)))


class BATransform(nn.Module):
    """The grouped, data-dependent bilinear transform on ``C'`` channels (see module doc)."""

    def __init__(self, in_channels: int, s: int, ts: int, k: int, tk: int) -> None:
        super().__init__()
        self.in_channels, self.s, self.ts, self.k, self.tk = in_channels, s, ts, k, tk
        self.conv1 = _conv_bn_relu(in_channels, k)
        self.conv_p = nn.Conv3d(k, s * s * k, (1, s, 1))
        self.conv_q = nn.Conv3d(k, s * s * k, (1, 1, s))
        if tk > 0:
            self.conv_t = nn.Conv3d(k, ts * ts * tk, (ts, 1, 1))
        self.conv2 = _conv_bn_relu(in_channels, in_channels)

    def matrices(self, xl: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """The small matrices of input ``xl`` (at least float32): ``p`` ``(B, k, T, s, s)`` with rows
        summing to 1, ``q`` ``(B, k, T, s, s)`` with columns summing to 1 and, if ``tk > 0``,
        ``tm`` ``(B, tk, ts, ts)`` with rows summing to 1."""
        b, _, t, h, w = xl.shape
        s, k = self.s, self.k
        o = _conv_bn_relu_forward(self.conv1, xl)
        # adaptive_max_pool3d(o, (T, s, 1)) and (T, 1, s): with s | H and s | W its bins are
        # contiguous blocks of H/s rows (W/s columns), so a reshape + amax is the same
        # function — and one that ONNX export can translate (it has no adaptive pooling).
        rows = o.reshape(b, k, t, s, (h // s) * w).amax(dim=-1).unsqueeze(-1)
        cols = o.reshape(b, k, t, h, s, w // s).amax(dim=(3, 5)).unsqueeze(-2)
        # conv output channel k·s² + i·s + j holds entry (i, j) of group k's matrix.
        p = self.conv_p(rows).reshape(b, k, s, s, t).permute(0, 1, 4, 2, 3)
        q = self.conv_q(cols).reshape(b, k, s, s, t).permute(0, 1, 4, 2, 3)
        p = _softmax(p, dim=-1)  # each row of P sums to 1
        q = _softmax(q, dim=-2)  # each column of Q sums to 1
        tm = None
        if self.tk > 0:
            # adaptive_avg_pool3d(o, (ts, 1, 1)) with ts | T: means over blocks of T/ts frames.
            pooled = o.reshape(b, k, self.ts, -1).mean(dim=-1)[..., None, None]
            tm = _softmax(self.conv_t(pooled).reshape(b, self.tk, self.ts, self.ts), dim=-1)
        return p, q, tm

    def forward(self, xl: Tensor) -> Tensor:
        b, c, t, h, w = xl.shape
        s, k = self.s, self.k
        p, q, tm = self.matrices(xl)
        p, q = p.to(xl.dtype), q.to(xl.dtype)
        mh, mw = h // s, w // s
        # (p ⊗ I_mh) x: rows i·mh + a; contract p over the s row-blocks, per group and frame.
        y = xl.reshape(b, k, c // k, t, s, mh * w)
        y = torch.einsum("bgtij,bgctjr->bgctir", p, y)
        # x (q ⊗ I_mw): columns i·mw + a; contract q's rows with the s column-blocks.
        y = y.reshape(b, k, c // k, t, h, s, mw)
        y = torch.einsum("bgcthja,bgtji->bgcthia", y, q)
        if tm is not None:
            mt = t // self.ts
            y = y.reshape(b, self.tk, c // self.tk, self.ts, mt * h * w)
            y = torch.einsum("bgij,bgcjr->bgcir", tm.to(y.dtype), y)
        y = y.reshape(b, c, t, h, w)
        return _conv_bn_relu_forward(self.conv2, y)


class BATBlock(nn.Module):
    """``y = x + Dropout3d(ReLU(BN(conv(BAT(ReLU(BN(conv(x))))))))`` for ``(B, C, T, H, W)``
    or ``(B, C, H, W)`` (``T = 1``). Build it with :func:`build_bat`."""

    kind = "bat"
    requires_map_size = False

    def __init__(
        self,
        in_channels: int,
        *,
        inter_channels: int,
        s: int = 7,
        k: int = 8,
        tk: int = 4,
        ts: int = 4,
        dropout: float = 0.2,
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.inter_channels = in_channels, inter_channels
        self.s, self.k, self.tk, self.ts = s, k, tk, ts
        self.zero_init = zero_init
        self.conv1 = _conv_bn_relu(in_channels, inter_channels)
        self.batransform = BATransform(inter_channels, s, ts, k, tk)
        self.conv2 = _conv_bn_relu(inter_channels, in_channels)
        if zero_init:
            self.conv2[2] = _OpenReLU()
        self.dropout = nn.Dropout3d(p=dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As the released ``init_modules(zero_bn=False)``: kaiming-normal (fan-out) convs,
        zero biases, BN (1, 0); with ``zero_init`` the last BN (``conv2.1``) at (0, 0)."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:  # (every conv here has one: _conv_bn_relu's default bias=True)
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.zero_init:
            nn.init.zeros_(cast(nn.BatchNorm3d, self.conv2[1]).weight)  # _conv_bn_relu: conv, BN, ReLU

    def check_map_size(self, t: int, h: int, w: int) -> None:
        """A clear error (naming the size and the option to change) if a ``t×h×w`` map
        does not fit ``s`` / ``ts``."""
        s = self.s
        if h < s or h % s or w % s:
            fits = [d for d in range(2, min(h, w) + 1) if h % d == 0 and w % d == 0]
            hint = f"s={fits[-1]}" if fits else "a larger map (no s >= 2 divides both)"
            raise InvalidValueError(
                f"bat: the feature map is {t}x{h}x{w} (T x H x W) but s={s} needs H and W to be multiples "
                f"of s (H >= s): set options.s to a common divisor of {h} and {w} (e.g. {hint}) or place "
                f"the block in a stage whose map fits"
            )
        if self.tk > 0 and t % self.ts:
            divisors = [d for d in range(1, t + 1) if t % d == 0]
            raise InvalidValueError(
                f"bat: the feature map is {t}x{h}x{w} (T x H x W) but ts={self.ts} needs T to be a multiple "
                f"of ts: set options.ts to a divisor of {t} ({', '.join(map(str, divisors))}; e.g. ts={t}) "
                f"or tk=0 (2D-BAT, no temporal matrix)"
            )

    def bind_map_size(self, size: Sequence[int]) -> None:
        """BAT is not bound to a size; the placement calls this to check each position's map."""
        t, h, w = (int(v) for v in size)
        self.check_map_size(t, h, w)

    def forward(self, x: Tensor) -> Tensor:
        squeeze = x.dim() == 4
        x5 = x.unsqueeze(2) if squeeze else x
        if x5.dim() != 5:
            raise ValueError(f"bat block expects (B, C, T, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
        if x5.shape[1] != self.in_channels:
            raise ValueError(
                f"bat block was built for {self.in_channels} channels, got input with {x5.shape[1]} "
                f"(shape {tuple(x.shape)})"
            )
        self.check_map_size(*x5.shape[2:])
        y = _conv_bn_relu_forward(self.conv1, x5)
        y = self.batransform(y)
        y = self.dropout(_conv_bn_relu_forward(self.conv2, y))
        out = x5 + y
        return out.squeeze(2) if squeeze else out

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, inter_channels={self.inter_channels}, s={self.s}, k={self.k}, "
            f"tk={self.tk}, ts={self.ts}, zero_init={self.zero_init}"
        )


def _check_int(name: str, value: Any, *, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidValueError(f"bat: {name} must be an int >= {minimum}, got {value!r}")


def build_bat(
    in_channels: int,
    *,
    inter_channels: int | None = None,
    r: int = 2,
    s: int = 7,
    k: int = 8,
    tk: int = 4,
    ts: int = 4,
    dropout: float = 0.2,
    zero_init: bool = False,
) -> BATBlock:
    """Bilinear attentional transform (Chi et al., CVPR 2020), the released video block:
    per frame, data-dependent grouped P X Q (k groups of s x s matrices from row/column
    max-pooled descriptors, softmax-normalised, Kronecker-expanded to H x H / W x W), plus a
    T x T temporal matrix per tk groups (3D-BAT; tk=0 is 2D-BAT), between 1x1x1 convs
    C -> C/r (or inter_channels) -> C; Dropout3d(dropout). H, W multiples of s; T of ts.
    Not the identity at init as released; zero_init=True zeroes the last BN (identity)."""
    _check_int("in_channels", in_channels)
    _check_int("r", r)
    _check_int("s", s)
    _check_int("k", k)
    _check_int("tk", tk, minimum=0)
    _check_int("ts", ts)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise InvalidValueError(f"bat: dropout must be in [0, 1), got {dropout!r}")
    if not isinstance(zero_init, bool):
        raise InvalidValueError(f"bat: zero_init must be true or false, got {zero_init!r}")
    if inter_channels is None:
        if in_channels % r:
            raise InvalidValueError(f"bat: r={r} must divide in_channels={in_channels} (C' = C / r)")
        inter_channels = in_channels // r
    _check_int("inter_channels", inter_channels)
    for name, groups in (("k", k), ("tk", tk)):
        if groups and inter_channels % groups:
            raise InvalidValueError(
                f"bat: {name}={groups} groups must divide the block's inner channels C'={inter_channels} "
                f"(C={in_channels}, {'inter_channels' if inter_channels != in_channels // r else f'r={r}'})"
            )
    return BATBlock(
        in_channels, inter_channels=inter_channels, s=s, k=k, tk=tk, ts=ts, dropout=float(dropout), zero_init=zero_init
    )
