"""Spectral Residual Block (SRB / SRL; Chi, Tian, Mu, Xie, Tian, ACM MM 2019) for video.

``y = x + α · f⁻¹(φ(f(x)))``: residual learning in a transformed ("spectral") domain.

* ``transform="fft"`` (the released block, applied per frame): ``f`` = the unnormalised
  2-D real FFT over (H, W) of every channel and frame, its real and imaginary parts
  **interleaved per channel** (``[c0.re, c0.im, c1.re, …]``, 2C channels, ``W' = W//2 + 1``
  columns); ``φ`` = grouped 1×1 conv 2C→2C with bias (``conv_layer``, initialised to the
  per-group identity) → BatchNorm over the 2C spectral channels (``bn``) → ReLU; ``f⁻¹`` =
  ``irfft2(·, s=(H, W))``.
* ``transform="lo"``: learnable orthogonal ``P ∈ O(H)`` (``source_P``), ``Q ∈ O(W)``
  (``source_Q``), shared by every channel and frame: ``f(x) = P x Q``, ``f⁻¹(u) = Pᵀ u Qᵀ``;
  ``φ`` = grouped 1×1 conv C→C with bias → BN(C) → ReLU.
* ``temporal`` adds what the talk's spatio-temporal extension describes (the ``C·HWT²``
  term): ``"conv"`` a depth-wise temporal conv (kernel ``temporal_kernel × 1 × 1``, zero
  "same" padding, no bias, identity-initialised) over the T frames of every spectral
  channel, after ``conv_layer``; ``"fft3d"`` (FFT only) transforms over (T, H, W) with
  ``rfftn`` instead of per frame (time becomes circular).
* ``spectrum_relu=True``: the ReLU becomes ``relu(w ⊙ z + b)`` with one weight and bias per
  spatial frequency (``(H, W')`` for FFT, ``(H, W)`` for LO), shared over channels (and
  over temporal frequencies with ``fft3d``) — the talk's "frequency-sensitive filtering".

Every variant starts as the identity: ``alpha`` (one parameter) is 0 at initialisation, as
in the released FFT block. The released LO block has no ``alpha`` and is *not* the
identity at init; here LO gets the same ``alpha`` (a deviation, so that it can be inserted
into a pretrained backbone). State-dict names follow the released code: ``alpha``,
``conv_layer``, ``bn``, ``source_P``, ``source_Q`` (and ``relu.weight/bias`` for the
spectrum ReLU, ``temporal_conv`` for ``temporal="conv"``).

LO and the spectrum ReLU bind a block to one map size. Give ``spatial_size=(H, W)``, or
let the placement bind each placed block to the map of its position
(:meth:`SpectralResidualBlock.bind_map_size`, computed from the model's nominal input
size; see :mod:`snl_video.models.placement`). The LO matrices are kept orthogonal by a
sign-stable QR retraction applied *after* each optimizer step
(:func:`attach_orthogonal_retraction`), never inside ``forward``.

The spectral branch (FFTs, the LO products and φ) runs in a float32 island: ``torch.fft``
rejects float16/bfloat16 on the CPU and takes float16 on CUDA only for power-of-two sizes.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Literal, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.hooks import RemovableHandle

from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = [
    "SpectralResidualBlock",
    "SpectrumReLU",
    "build_srb",
    "attach_orthogonal_retraction",
    "retract_orthogonal_",
    "sign_stable_orthogonalize",
]

Transform = Literal["fft", "lo"]
Temporal = Literal["none", "conv", "fft3d"]
_DEFAULT_GROUPS = {"fft": 8, "lo": 2}
_HALF = (torch.float16, torch.bfloat16)


def sign_stable_orthogonalize(matrix: Tensor) -> Tensor:
    """The orthogonal factor of ``matrix`` with a QR whose ``R`` has a positive diagonal.

    Plain ``torch.linalg.qr(m).Q`` may flip the sign of a column from one call to the next
    on a slightly perturbed matrix; multiplying by ``sign(diag(R))`` makes the factor the
    nearest-continuation one, so an (almost) orthogonal matrix maps to (almost) itself.
    Computed in float64 and returned in ``matrix``'s dtype.
    """
    q, r = torch.linalg.qr(matrix.detach().double())
    signs = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return (q * signs.unsqueeze(-2)).to(matrix.dtype)


class SpectrumReLU(nn.Module):
    """``relu(weight ⊙ z + bias)`` with one weight and bias per frequency (``size``)."""

    def __init__(self, size: Sequence[int]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(tuple(size)))
        self.bias = nn.Parameter(torch.zeros(tuple(size)))

    def forward(self, z: Tensor) -> Tensor:
        return torch.relu(z * self.weight + self.bias)


def _pointwise(conv: nn.Conv3d, z: Tensor) -> Tensor:
    """``conv`` (1×1×1, maybe grouped) on ``(B, C, T, H, W)`` as a 1×1 conv2d on
    ``(B, C, T·H, W)``: the same function, but PyTorch's CPU Conv3d runs 1×1×1 kernels
    through a slow unfold, and a conv (not ``bmm``) is what the MAC counters count."""
    b, c, t, h, w = z.shape
    weight = conv.weight.reshape(conv.weight.shape[0], conv.weight.shape[1], 1, 1)
    out = F.conv2d(z.reshape(b, c, t * h, w), weight, conv.bias, groups=conv.groups)
    return out.reshape(b, -1, t, h, w)


def _temporal_depthwise(conv: nn.Conv3d, z: Tensor) -> Tensor:
    """A depth-wise ``k×1×1`` conv on ``(B, C, T, H, W)`` as a ``k×1`` conv2d on ``(B, C, T, H·W)``."""
    b, c, t, h, w = z.shape
    weight = conv.weight.reshape(conv.weight.shape[0], 1, conv.weight.shape[2], 1)
    time_padding = conv.padding[0]
    assert isinstance(time_padding, int)  # the block builds it with padding=(k // 2, 0, 0), not a string mode
    out = F.conv2d(z.reshape(b, c, t, h * w), weight, None, padding=(time_padding, 0), groups=conv.groups)
    return out.reshape(b, c, t, h, w)


def _interleave(spectrum: Tensor) -> Tensor:
    """Complex ``(B, C, T, H, W')`` → real ``(B, 2C, T, H, W')``, ``[c0.re, c0.im, c1.re, …]``."""
    b, c, t, h, w = spectrum.shape
    return torch.view_as_real(spectrum).permute(0, 1, 5, 2, 3, 4).reshape(b, 2 * c, t, h, w)


def _deinterleave(z: Tensor) -> Tensor:
    """Inverse of :func:`_interleave`."""
    b, c2, t, h, w = z.shape
    return torch.view_as_complex(z.reshape(b, c2 // 2, 2, t, h, w).permute(0, 1, 3, 4, 5, 2).contiguous())


class SpectralResidualBlock(nn.Module):
    """``y = x + α · f⁻¹(φ(f(x)))`` for ``(B, C, T, H, W)`` or ``(B, C, H, W)`` input.

    Build it with :func:`build_srb` / ``build_nonlocal("srb", C, ...)``; see the module
    docstring for what each option computes.
    """

    kind = "srb"

    def __init__(
        self,
        in_channels: int,
        *,
        transform: Transform = "fft",
        temporal: Temporal = "none",
        groups: int | None = None,
        spectrum_relu: bool = False,
        spatial_size: Sequence[int] | None = None,
        temporal_kernel: int = 3,
    ) -> None:
        super().__init__()
        _check_int("in_channels", in_channels)
        if transform not in _DEFAULT_GROUPS:
            raise InvalidValueError(f"srb: transform must be one of {list(_DEFAULT_GROUPS)}, got {transform!r}")
        if temporal not in ("none", "conv", "fft3d"):
            raise InvalidValueError(f"srb: temporal must be one of ['none', 'conv', 'fft3d'], got {temporal!r}")
        if temporal == "fft3d" and transform != "fft":
            raise InvalidValueError("srb: temporal='fft3d' is a 3-D Fourier transform; it needs transform='fft' (got 'lo')")
        if not isinstance(spectrum_relu, bool):
            raise InvalidValueError(f"srb: spectrum_relu must be true or false, got {spectrum_relu!r}")
        if groups is None:
            groups = _DEFAULT_GROUPS[transform]
        _check_int("groups", groups)
        _check_int("temporal_kernel", temporal_kernel)
        if temporal_kernel % 2 == 0:
            raise InvalidValueError(f"srb: temporal_kernel must be odd (zero 'same' padding), got {temporal_kernel}")
        self.in_channels = in_channels
        self.transform = transform
        self.temporal = temporal
        self.groups = groups
        self.spectrum_relu = spectrum_relu
        self.temporal_kernel = temporal_kernel
        # FFT: 2C interleaved spectral channels; LO: C channels of P x Q.
        channels = 2 * in_channels if transform == "fft" else in_channels
        if channels % groups:
            raise InvalidValueError(
                f"srb: groups={groups} must divide the {channels} channels of the "
                f"{'spectral (2C)' if transform == 'fft' else 'LO'} conv (C={in_channels})"
            )
        self.alpha = nn.Parameter(torch.zeros(1))
        self.conv_layer = nn.Conv3d(channels, channels, kernel_size=1, groups=groups, bias=True)
        self.temporal_conv: nn.Conv3d | None = None
        if temporal == "conv":
            self.temporal_conv = nn.Conv3d(
                channels, channels, (temporal_kernel, 1, 1), padding=(temporal_kernel // 2, 0, 0),
                groups=channels, bias=False,
            )
        self.bn = nn.BatchNorm3d(channels)
        self.relu: nn.Module = nn.ReLU()
        self.spatial_size: tuple[int, int] | None = None
        if transform == "lo":
            # Created by bind_map_size (P is H×H, Q is W×W).
            self.register_parameter("source_P", None)
            self.register_parameter("source_Q", None)
        self.reset_parameters()
        if spatial_size is not None:
            size = tuple(spatial_size)
            if len(size) != 2:
                raise InvalidValueError(f"srb: spatial_size must be (H, W), got {spatial_size!r}")
            self.bind_map_size((None, *size))

    # ------------------------------------------------------------------ size binding
    @property
    def requires_map_size(self) -> bool:
        """Whether this block is bound to one (H, W): LO and the spectrum ReLU are."""
        return self.transform == "lo" or self.spectrum_relu

    def bind_map_size(self, size: Sequence[int | None]) -> None:
        """Bind the block to maps of ``size = (T, H, W)`` (T is not used): creates ``P``, ``Q``
        and the spectrum-ReLU weights. A no-op for a size-agnostic block; binding an already
        bound block to another size is an error."""
        h, w = int(size[-2]), int(size[-1])  # type: ignore[arg-type]
        _check_int("H", h)
        _check_int("W", w)
        if not self.requires_map_size:
            return
        if self.spatial_size is not None:
            if self.spatial_size != (h, w):
                raise InvalidValueError(
                    f"srb ({self._describe()}) is bound to {self.spatial_size[0]}x{self.spatial_size[1]} maps; "
                    f"it cannot also serve {h}x{w}"
                )
            return
        device = self.alpha.device
        if self.transform == "lo":
            self.source_P = nn.Parameter(sign_stable_orthogonalize(torch.randn(h, h, dtype=torch.float64)).float().to(device))
            self.source_Q = nn.Parameter(sign_stable_orthogonalize(torch.randn(w, w, dtype=torch.float64)).float().to(device))
        if self.spectrum_relu:
            freq = (h, w // 2 + 1) if self.transform == "fft" else (h, w)
            self.relu = SpectrumReLU(freq).to(device)
        self.spatial_size = (h, w)

    def check_map_size(self, h: int, w: int) -> None:
        """A clear error if this block cannot take ``h×w`` maps."""
        if not self.requires_map_size:
            return
        if self.spatial_size is None:
            raise InvalidValueError(
                f"srb ({self._describe()}) binds to one map size and has none yet: build it with "
                f"spatial_size=(H, W), or place it with an input_size so each block gets the size of its map"
            )
        if self.spatial_size != (h, w):
            H, W = self.spatial_size
            raise InvalidValueError(
                f"srb ({self._describe()}) was built for {H}x{W} maps, got {h}x{w}: LO and spectrum_relu bind a "
                f"block to the map size of its position; run clips of the size it was built for, or use "
                f"transform='fft' without spectrum_relu (size-agnostic)"
            )

    def _describe(self) -> str:
        parts = [f"transform={self.transform!r}"]
        if self.spectrum_relu:
            parts.append("spectrum_relu=True")
        return ", ".join(parts)

    # ------------------------------------------------------------------ init / retraction
    def reset_parameters(self) -> None:
        """``alpha`` = 0 (identity), per-group identity ``conv_layer`` with zero bias, BN (1, 0),
        identity temporal conv (centre tap 1); as the released ``init_modules``."""
        with torch.no_grad():
            self.alpha.zero_()
            weight = self.conv_layer.weight  # (C_out, C_out / g, 1, 1, 1)
            per_group = weight.shape[1]
            eye = torch.eye(per_group, dtype=weight.dtype, device=weight.device)
            weight.copy_(eye.repeat(self.groups, 1).reshape(weight.shape))
            bias = self.conv_layer.bias
            assert bias is not None  # conv_layer is built with bias=True
            bias.zero_()
            if self.temporal_conv is not None:
                self.temporal_conv.weight.zero_()
                self.temporal_conv.weight[:, :, self.temporal_kernel // 2] = 1.0
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    @torch.no_grad()
    def retract_(self) -> None:
        """Put ``P`` and ``Q`` back on the orthogonal group (sign-stable QR); LO only.

        Call it after each optimizer step (:func:`attach_orthogonal_retraction` does)."""
        if self.transform != "lo" or self.source_P is None:
            return
        self.source_P.copy_(sign_stable_orthogonalize(self.source_P))
        self.source_Q.copy_(sign_stable_orthogonalize(self.source_Q))

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Tensor:
        squeeze = x.dim() == 4
        x5 = x.unsqueeze(2) if squeeze else x
        if x5.dim() != 5:
            raise ValueError(f"srb block expects (B, C, T, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
        if x5.shape[1] != self.in_channels:
            raise ValueError(
                f"srb block was built for {self.in_channels} channels, got input with {x5.shape[1]} "
                f"(shape {tuple(x.shape)})"
            )
        self.check_map_size(x5.shape[3], x5.shape[4])
        dtype = torch.float32 if x5.dtype in _HALF else x5.dtype
        # Float32 island: torch.fft has no bf16 (and only power-of-two fp16) kernels.
        with torch.autocast(device_type=x5.device.type, enabled=False):
            branch = self._branch(x5.to(dtype))
            out = x5 + (self.alpha.to(dtype) * branch).to(x5.dtype)
        return out.squeeze(2) if squeeze else out

    def _phi(self, z: Tensor) -> Tensor:
        z = _pointwise(self.conv_layer, z)
        if self.temporal_conv is not None:
            z = _temporal_depthwise(self.temporal_conv, z)
        return self.relu(self.bn(z))

    def _branch(self, x: Tensor) -> Tensor:
        t, h, w = x.shape[2:]
        if self.transform == "lo":
            p, q = self.source_P.to(x.dtype), self.source_Q.to(x.dtype)
            u = torch.matmul(torch.matmul(p, x), q)
            return torch.matmul(torch.matmul(p.t(), self._phi(u)), q.t())
        if self.temporal == "fft3d":
            spectrum = torch.fft.rfftn(x, dim=(-3, -2, -1), norm="backward")
            z = self._phi(_interleave(spectrum))
            return torch.fft.irfftn(_deinterleave(z), s=(t, h, w), dim=(-3, -2, -1), norm="backward")
        spectrum = torch.fft.rfft2(x, norm="backward")
        z = self._phi(_interleave(spectrum))
        return torch.fft.irfft2(_deinterleave(z), s=(h, w), norm="backward")

    def extra_repr(self) -> str:
        size = f", spatial_size={self.spatial_size}" if self.spatial_size else ""
        return (
            f"in_channels={self.in_channels}, transform={self.transform!r}, temporal={self.temporal!r}, "
            f"groups={self.groups}, spectrum_relu={self.spectrum_relu}{size}"
        )


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidValueError(f"srb: {name} must be a positive int, got {value!r}")


def build_srb(
    in_channels: int,
    *,
    inter_channels: int | None = None,
    transform: Transform = "fft",
    temporal: Temporal = "none",
    groups: int | None = None,
    spectrum_relu: bool = False,
    spatial_size: Sequence[int] | None = None,
    temporal_kernel: int = 3,
) -> SpectralResidualBlock:
    """Spectral residual block (Chi et al., ACM MM 2019): y = x + alpha * f^-1(phi(f(x))),
    f = per-frame rFFT2 (transform='fft', re/im interleaved, 2C channels) or learnable
    orthogonal P x Q (transform='lo'); phi = grouped 1x1 conv (groups: 8 fft, 2 lo) -> BN ->
    ReLU (spectrum_relu: per-frequency weight and bias first); temporal='conv' adds a
    depth-wise temporal_kernel x 1 x 1 conv over the spectra, 'fft3d' transforms over
    (T, H, W). Full width (no inter_channels); alpha = 0, so it starts as the identity. LO
    and spectrum_relu bind the block to its map size (spatial_size, or the placement's)."""
    if inter_channels is not None:
        raise InvalidValueError(
            f"srb works at the full width of its stage (C={in_channels}); it has no inter_channels "
            f"(got {inter_channels}): remove inter_channels from the non-local spec"
        )
    return SpectralResidualBlock(
        in_channels,
        transform=transform,
        temporal=temporal,
        groups=groups,
        spectrum_relu=spectrum_relu,
        spatial_size=spatial_size,
        temporal_kernel=temporal_kernel,
    )


def _lo_blocks(module: nn.Module) -> list[SpectralResidualBlock]:
    return [m for m in module.modules() if isinstance(m, SpectralResidualBlock) and m.transform == "lo"]


def retract_orthogonal_(module: nn.Module) -> int:
    """Retract the ``P``, ``Q`` of every LO SRB in ``module``; returns how many blocks."""
    blocks = _lo_blocks(module)
    for block in blocks:
        block.retract_()
    return len(blocks)


def attach_orthogonal_retraction(
    module: nn.Module, optimizers: torch.optim.Optimizer | Iterable[torch.optim.Optimizer]
) -> list[RemovableHandle]:
    """Retract the LO SRBs of ``module`` after every ``step()`` of ``optimizers``.

    Registers an optimizer step post-hook (nothing is written inside ``forward``). Returns
    the hook handles (empty when ``module`` has no LO block), so callers may remove them.
    """
    if isinstance(optimizers, torch.optim.Optimizer):
        optimizers = [optimizers]
    if not _lo_blocks(module):
        return []

    def retract(optimizer: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        retract_orthogonal_(module)

    handles = []
    for optimizer in optimizers:
        handles.append(optimizer.register_step_post_hook(retract))
    logger.debug("orthogonal retraction attached for %d LO SRB(s)", len(_lo_blocks(module)))
    return handles
