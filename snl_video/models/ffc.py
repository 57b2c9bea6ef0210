"""Fast Fourier Convolution (Chi, Jiang, Mu; NeurIPS 2020) for 3-D ResNets.

An FFC splits a layer's channels into a *local* part and a *global* part (``α`` of the
channels, ``ratio_gin`` on the input and ``ratio_gout`` on the output side) and computes

* ``y_l = conv_l→l(x_l) + conv_g→l(x_g)``, ``y_g = conv_l→g(x_l) + spectral(x_g)``:
  the three ``→l`` / ``l→`` paths are ordinary convs with the layer's kernel and stride; the
  ``g→g`` path is a :class:`SpectralTransform` (1×1×1 conv, a :class:`FourierUnit` whose
  1×1×1 conv acts on the real FFT of the map, optional local Fourier unit, 1×1×1 conv);
* a path with zero channels on either side is not built and not computed (no keys), exactly
  as the released code replaces it with ``nn.Identity`` applied to the integer 0.

Networks carry ``(x_l, x_g)`` tuples between FFC layers (``x_g`` is the int 0 where a
stage has no global channels). Module and key names follow the official ImageNet code
(pkumivision/FFC, ``model_zoo/ffc.py``): ``convK.ffc.convl2l / convl2g / convg2l /
convg2g.{conv1.0, conv1.1, fu.conv_layer, fu.bn, lfu.*, conv2}``, ``convK.bn_l / bn_g``,
``downsample.ffc.*`` / ``downsample.bn_l / bn_g``, so its checkpoints map one-to-one once
the 2-D kernels are inflated.

Video semantics (the released code is 2-D only):

* ``fft="2d"`` (default): the Fourier unit transforms each frame (``rfft2`` over H, W); the
  spectra ``(B, 2c, T, H, W//2+1)`` go through a 1×1×1 conv and a BatchNorm3d, which on a
  clip is exactly the 2-D unit applied to every frame (BatchNorm statistics over B·T).
* ``fft="3d"``: ``rfftn`` over (T, H, W); time is then treated as circular.
* Both use ``norm="ortho"`` (the released ``torch.rfft(..., normalized=True)``) and always
  pass the signal size to the inverse, so odd maps (7×7 at 112² input) come back whole.
* The transforms run in a float32 island: under autocast (or for fp16/bf16 inputs) the
  Fourier unit computes in float32 and returns the input's dtype (``torch.fft`` rejects
  fp16/bf16 on CPU and takes fp16 on CUDA only for power-of-two sizes). float64 stays float64.
* The local Fourier unit (``lfu=True``) splits H and W into halves (never T) and needs even
  maps and a spectral width divisible by 4; anything else is a clear error.
* A strided global path average-pools by the stride (``AvgPool3d(kernel=stride)``, floor),
  while the local path's strided conv rounds up: on an odd map the two disagree, which the
  released code cannot run either; here it is an error naming the map and sizes that work.

Residual blocks: :class:`FFCBottleneck3D` (the released ``Bottleneck``, for ResNet-50 trunks)
and :class:`FFCBasicBlock3D` (the released ``BasicBlock`` of ``ffc_resnet18/34``, for the
basic-block trunks such as Hara's ResNet-10/18). The released ``BasicBlock.forward``
overwrites ``conv2``'s output with ``se_block(x)`` of ``conv1``'s (pkumivision/FFC issue #6,
open), so with ``use_se=False`` its second conv is built but never used; here the block adds
``conv2``'s output to the shortcut, as the bottleneck and the paper's residual block do. The
keys are the same either way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal, Union

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import InvalidValueError

if TYPE_CHECKING:
    from .weights_fit import WeightsMismatch

logger = logging.getLogger(__name__)

__all__ = [
    "explain_ffc_mismatch",
    "FFTMode",
    "FourierUnit",
    "SpectralTransform",
    "FFC3d",
    "FFCConvBN",
    "FFCBottleneck3D",
    "FFCBasicBlock3D",
    "FFCInputSizeError",
    "global_channels",
]

FFTMode = Literal["2d", "3d"]
FFT_MODES: tuple[str, ...] = ("2d", "3d")
Triple = tuple[int, int, int]
# A feature map of an FFC network: a plain tensor, or (local, global) where global may be the int 0.
FFCMaps = Union[Tensor, tuple[Tensor, Union[Tensor, int]]]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class FFCInputSizeError(InvalidValueError):
    """A feature map an FFC layer cannot process (odd size under LFU or a strided global path)."""


def global_channels(channels: int, ratio: float) -> int:
    """Channels of the global part: ``int(channels · ratio)``, as the released code rounds."""
    return int(channels * ratio)


class FourierUnit(nn.Module):
    """``irfft(ReLU(BN(conv1x1x1(rfft(x)))))`` with real/imaginary parts interleaved per channel.

    The spectrum of channel ``i`` becomes channels ``2i`` (real) and ``2i + 1`` (imaginary)
    of the conv's input, as the released code's ``permute(0, 1, 4, 2, 3)`` lays them out.
    Keys: ``conv_layer`` (no bias), ``bn``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, fft: FFTMode = "2d") -> None:
        super().__init__()
        if fft not in FFT_MODES:
            raise InvalidValueError(f"fft must be one of {FFT_MODES}, got {fft!r}")
        self.fft = fft
        self.conv_layer = nn.Conv3d(in_channels * 2, out_channels * 2, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm3d(out_channels * 2)

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = x.float() if dtype in _LOW_PRECISION else x
            b, c, t, h, w = z.shape
            dims = (-2, -1) if self.fft == "2d" else (-3, -2, -1)
            size = (h, w) if self.fft == "2d" else (t, h, w)
            spectrum = torch.fft.rfftn(z, dim=dims, norm="ortho")  # (b, c, t, h, w//2+1) complex
            wf = spectrum.shape[-1]
            # (b, c, t, h, wf, 2) -> (b, c, 2, t, h, wf) -> (b, 2c, t, h, wf): [c0.re, c0.im, c1.re, ...]
            spectrum = torch.view_as_real(spectrum).permute(0, 1, 5, 2, 3, 4).reshape(b, 2 * c, t, h, wf)
            spectrum = F.relu(self.bn(self.conv_layer(spectrum)))
            out_c = spectrum.shape[1] // 2
            spectrum = spectrum.reshape(b, out_c, 2, t, h, wf).permute(0, 1, 3, 4, 5, 2).contiguous()
            out = torch.fft.irfftn(torch.view_as_complex(spectrum), s=size, dim=dims, norm="ortho")
        return out.to(dtype)


class SpectralTransform(nn.Module):
    """The global→global path: [avg-pool by the stride] → 1×1×1 conv to ``c = out/2`` + BN +
    ReLU → ``x + FU(x) [+ LFU(x)]`` → 1×1×1 conv to ``out`` (its BN is the layer's ``bn_g``).

    Keys: ``conv1.0`` (conv), ``conv1.1`` (BN), ``fu``, ``lfu`` (only with ``lfu=True``), ``conv2``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, stride: Triple = (1, 1, 1), lfu: bool = False, fft: FFTMode = "2d"
    ) -> None:
        super().__init__()
        half = out_channels // 2
        if half < 1:
            raise InvalidValueError(f"a spectral transform needs at least 2 output channels, got {out_channels}")
        if lfu and half % 4 != 0:
            raise InvalidValueError(
                f"lfu=True stacks 4 spatial quarters of c/4 channels, so the spectral width c = {half} "
                f"(half of {out_channels} global channels) must be divisible by 4: pick ratio_global so that "
                "every stage's global channels are a multiple of 8 (e.g. 0.25 or 0.5), or lfu=False"
            )
        self.stride = tuple(stride)
        self.enable_lfu = lfu
        self.conv1 = nn.Sequential(
            nn.Conv3d(in_channels, half, kernel_size=1, bias=False), nn.BatchNorm3d(half), nn.ReLU(inplace=True)
        )
        self.fu = FourierUnit(half, half, fft=fft)
        self.lfu = FourierUnit(half, half, fft=fft) if lfu else None
        self.conv2 = nn.Conv3d(half, out_channels, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride != (1, 1, 1):
            # A dimension of size 1 stays 1 on both paths (the strided conv gives ceil(1/s) = 1).
            stride = tuple(1 if n == 1 else s for n, s in zip(x.shape[2:], self.stride))
            odd = [(name, n, s) for name, n, s in zip("THW", x.shape[2:], stride) if s > 1 and n % s]
            if odd:
                name, n, s = odd[0]
                raise FFCInputSizeError(
                    f"FFC: a strided layer sees a {'x'.join(map(str, x.shape[2:]))} (T x H x W) map whose {name} = {n} "
                    f"is not divisible by the stride {s}: the global path's average pooling would give "
                    f"{n // s} and the local path's strided conv {-(-n // s)}. Use an input whose feature maps stay "
                    "even down to res4: crop sizes that are multiples of 16 (112, 128, 160, 224) for the c2d/i3d "
                    "trunks, and clip lengths that are multiples of 16 for the Hara trunks (ffc_r3d10, ffc_r3d18, ffc_r3d50)"
                )
            x = F.avg_pool3d(x, kernel_size=stride, stride=stride)
        x = self.conv1(x)
        out = x + self.fu(x)
        if self.lfu is not None:
            out = out + self._local_fourier(x)
        return self.conv2(out)

    def _local_fourier(self, x: Tensor) -> Tensor:
        """The released LFU: the first c/4 channels, split into 2×2 spatial quarters stacked on
        channels (H halves first, then W), one Fourier unit, tiled back over the 2×2 grid."""
        assert self.lfu is not None  # forward calls this only for a block built with lfu=True
        b, c, t, h, w = x.shape
        if h % 2 or w % 2:
            raise FFCInputSizeError(
                f"FFC: lfu=True splits each map into 2x2 quarters, but a spectral layer sees a {h}x{w} map "
                "(odd). Use lfu=False, or an input whose res2-res4 maps are all even: crop sizes that are "
                "multiples of 32 (128, 160, 224; 112 gives 7x7 in res4)"
            )
        xs = x[:, : c // 4]
        xs = torch.cat(torch.split(xs, h // 2, dim=-2), dim=1)
        xs = torch.cat(torch.split(xs, w // 2, dim=-1), dim=1)
        return self.lfu(xs).repeat(1, 1, 1, 2, 2)


class FFC3d(nn.Module):
    """One fast Fourier convolution: four paths between the (local, global) in and out parts.

    ``kernel``, ``stride`` and padding (``kernel // 2``) apply to the three conv paths; the
    global→global path is a :class:`SpectralTransform` with the same stride. Paths with zero
    channels on either side are ``None`` and skipped.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Triple,
        *,
        ratio_gin: float,
        ratio_gout: float,
        stride: Triple = (1, 1, 1),
        lfu: bool = False,
        fft: FFTMode = "2d",
    ) -> None:
        super().__init__()
        in_cg = global_channels(in_channels, ratio_gin)
        out_cg = global_channels(out_channels, ratio_gout)
        in_cl, out_cl = in_channels - in_cg, out_channels - out_cg
        self.in_channels = (in_cl, in_cg)
        self.out_channels = (out_cl, out_cg)
        padding = (kernel[0] // 2, kernel[1] // 2, kernel[2] // 2)

        def conv(cin: int, cout: int) -> nn.Conv3d | None:
            if cin == 0 or cout == 0:
                return None
            return nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False)

        self.convl2l = conv(in_cl, out_cl)
        self.convl2g = conv(in_cl, out_cg)
        self.convg2l = conv(in_cg, out_cl)
        self.convg2g = (
            SpectralTransform(in_cg, out_cg, stride=stride, lfu=lfu, fft=fft) if in_cg and out_cg else None
        )

    def forward(self, x: FFCMaps) -> tuple[Tensor | int, Tensor | int]:
        x_l, x_g = x if isinstance(x, tuple) else (x, 0)
        out_l: Tensor | int = 0
        out_g: Tensor | int = 0
        for out_is_global, (path_l, path_g) in ((False, (self.convl2l, self.convg2l)), (True, (self.convl2g, self.convg2g))):
            total: Tensor | int = 0
            if path_l is not None and isinstance(x_l, Tensor):
                total = path_l(x_l)
            if path_g is not None and isinstance(x_g, Tensor):
                y = path_g(x_g)
                total = y if isinstance(total, int) else total + y
            if out_is_global:
                out_g = total
            else:
                out_l = total
        return out_l, out_g


class FFCConvBN(nn.Module):
    """``FFC3d`` → separate BN on the local and global outputs (keys ``ffc``, ``bn_l``, ``bn_g``).

    The activation (ReLU or none) is applied by the caller, as the released ``FFC_BN_ACT``
    holds no parameters for it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Triple,
        *,
        ratio_gin: float,
        ratio_gout: float,
        stride: Triple = (1, 1, 1),
        lfu: bool = False,
        fft: FFTMode = "2d",
    ) -> None:
        super().__init__()
        self.ffc = FFC3d(
            in_channels, out_channels, kernel, ratio_gin=ratio_gin, ratio_gout=ratio_gout, stride=stride, lfu=lfu, fft=fft
        )
        out_cl, out_cg = self.ffc.out_channels
        self.bn_l = nn.BatchNorm3d(out_cl) if out_cl else None
        self.bn_g = nn.BatchNorm3d(out_cg) if out_cg else None

    def forward(self, x: FFCMaps, *, relu: bool = False) -> tuple[Tensor | int, Tensor | int]:
        x_l, x_g = self.ffc(x)
        if self.bn_l is not None and isinstance(x_l, Tensor):
            x_l = self.bn_l(x_l)
            x_l = F.relu(x_l, inplace=True) if relu else x_l
        if self.bn_g is not None and isinstance(x_g, Tensor):
            x_g = self.bn_g(x_g)
            x_g = F.relu(x_g, inplace=True) if relu else x_g
        return x_l, x_g


def _shortcut_conv(in_channels: int, out_channels: int, stride: Triple, downsample: bool | None, *,
                   ratio_gin: float, ratio_gout: float, lfu: bool, fft: FFTMode) -> "FFCConvBN | None":
    """A residual block's 1x1x1 FFC shortcut (key ``downsample``), or None for the identity:
    ``downsample=None`` decides by :func:`_needs_shortcut_conv` (as the released code does)."""
    if downsample is None:
        downsample = _needs_shortcut_conv(in_channels, out_channels, stride)
    if not downsample:
        return None
    return FFCConvBN(in_channels, out_channels, (1, 1, 1), ratio_gin=ratio_gin, ratio_gout=ratio_gout, stride=stride,
                     lfu=lfu, fft=fft)


class FFCBottleneck3D(nn.Module):
    """A bottleneck residual block whose three convs and shortcut are FFCs.

    ``conv1`` (kernel ``kernels[0]``) goes ``ratio_gin → ratio_gout``; ``conv2`` (the
    strided one, ``kernels[1]``) and ``conv3`` (1×1×1) stay at ``ratio_gout``. The shortcut
    ``downsample`` (a 1×1×1 FFC + BN, strided) exists when the stride or width changes or the
    input has no global part (the released rule). Local and global parts are summed with their
    shortcuts and rectified separately; a stage with no global output returns ``(x_l, 0)``.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        width: int,
        *,
        kernels: tuple[Triple, Triple, Triple],
        stride: Triple = (1, 1, 1),
        ratio_gin: float,
        ratio_gout: float,
        lfu: bool = False,
        fft: FFTMode = "2d",
        downsample: bool | None = None,
    ) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = FFCConvBN(in_channels, width, kernels[0], ratio_gin=ratio_gin, ratio_gout=ratio_gout,
                               lfu=lfu, fft=fft)
        self.conv2 = FFCConvBN(
            width, width, kernels[1], ratio_gin=ratio_gout, ratio_gout=ratio_gout, stride=stride, lfu=lfu, fft=fft
        )
        self.conv3 = FFCConvBN(width, out_channels, kernels[2], ratio_gin=ratio_gout, ratio_gout=ratio_gout,
                               lfu=lfu, fft=fft)
        self.downsample = _shortcut_conv(in_channels, out_channels, stride, downsample, ratio_gin=ratio_gin,
                                         ratio_gout=ratio_gout, lfu=lfu, fft=fft)

    def forward(self, x: FFCMaps) -> tuple[Tensor | int, Tensor | int]:
        x = x if isinstance(x, tuple) else (x, 0)
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv1(x, relu=True)
        out = self.conv2(out, relu=True)
        return _add_shortcut(self.conv3(out), identity)


def _needs_shortcut_conv(in_channels: int, out_channels: int, stride: Triple) -> bool:
    """A block's default shortcut rule: a conv where the stride or the width changes."""
    return tuple(stride) != (1, 1, 1) or in_channels != out_channels


def _add_shortcut(
    out: tuple[Tensor | int, Tensor | int], identity: tuple[Tensor | int, Tensor | int]
) -> tuple[Tensor | int, Tensor | int]:
    """Sum a block's output with its shortcut and rectify, the local and global parts separately
    (an absent part, the int 0, stays 0: the released ``relu_g`` is the identity there)."""
    out_l, out_g = out
    id_l, id_g = identity
    out_l = F.relu(out_l + id_l) if isinstance(out_l, Tensor) else out_l
    out_g = F.relu(out_g + id_g) if isinstance(out_g, Tensor) else out_g
    return out_l, out_g


class FFCBasicBlock3D(nn.Module):
    """A basic residual block (two convs, ``expansion`` 1) whose convs and shortcut are FFCs.

    The released ``BasicBlock`` of ``ffc_resnet18/34``: ``conv1`` (kernel ``kernels[0]``,
    carrying the block's stride) goes ``ratio_gin → ratio_gout`` and is rectified; ``conv2``
    (``kernels[1]``) stays at ``ratio_gout`` and is not. The shortcut ``downsample`` (a 1×1×1
    FFC + BN with the stride, ``ratio_gin → ratio_gout``) exists where ``downsample`` says; by
    default where the stride or width changes (the network builder adds the released rule's
    third case, a stage input without global part). ``conv2``'s output is what meets the
    shortcut (see the module note on the released forward). Keys: ``conv1.ffc.*``,
    ``conv1.bn_l/bn_g``, ``conv2.*``, ``downsample.*``; a stage with no global output returns
    ``(x_l, 0)``.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        width: int,
        *,
        kernels: tuple[Triple, Triple],
        stride: Triple = (1, 1, 1),
        ratio_gin: float,
        ratio_gout: float,
        lfu: bool = False,
        fft: FFTMode = "2d",
        downsample: bool | None = None,
    ) -> None:
        super().__init__()
        if len(kernels) != 2:
            raise InvalidValueError(f"a basic FFC block has two convs, so it needs two kernels, got {len(kernels)}")
        self.conv1 = FFCConvBN(
            in_channels, width, kernels[0], ratio_gin=ratio_gin, ratio_gout=ratio_gout, stride=stride, lfu=lfu, fft=fft
        )
        self.conv2 = FFCConvBN(width, width, kernels[1], ratio_gin=ratio_gout, ratio_gout=ratio_gout,
                               lfu=lfu, fft=fft)
        self.downsample = _shortcut_conv(in_channels, width, stride, downsample, ratio_gin=ratio_gin,
                                         ratio_gout=ratio_gout, lfu=lfu, fft=fft)

    def forward(self, x: FFCMaps) -> tuple[Tensor | int, Tensor | int]:
        x = x if isinstance(x, tuple) else (x, 0)
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv1(x, relu=True)
        return _add_shortcut(self.conv2(out), identity)


# A key of res2's first block whose output width is int(width · α) in bottleneck and basic blocks
# alike (conv1 maps to the stage width): it reveals ratio_global.
_RATIO_PROBE = "layer1.0.conv1.ffc.convl2g.weight"


def explain_ffc_mismatch(mismatch: "WeightsMismatch") -> str | None:
    """Advice when FFC weights do not fit an FFC model: another ``ratio_global`` or ``lfu``.

    ``None`` for a model that is not an FFC network, or a difference these two options do
    not explain.
    """
    from .resnet3d import ResNet3DSpec  # here: resnet3d imports this module

    spec = mismatch.spec
    if not isinstance(spec, ResNet3DSpec) or spec.fourier is None:
        return None
    mine, theirs = mismatch.model_signature, mismatch.checkpoint_signature
    if _RATIO_PROBE in mine and _RATIO_PROBE in theirs and mine[_RATIO_PROBE][0] != theirs[_RATIO_PROBE][0]:
        width = spec.stages[0].width
        ratio = theirs[_RATIO_PROBE][0] / width
        return (
            f"{mismatch.source} was trained with ratio_global ≈ {ratio:.3g} "
            f"({theirs[_RATIO_PROBE][0]} of res2's {width} channels global), but the model has "
            f"ratio_global={spec.stages[0].global_ratio[1]:g}: build it with "
            f"ratio_global={ratio:.3g} (config: model.options: {{ratio_global: ...}})"
        )
    own_lfu, their_lfu = (any(".lfu." in k for k in sig) for sig in (mine, theirs))
    if own_lfu != their_lfu:
        return (
            f"{mismatch.source} {'has' if their_lfu else 'has no'} local Fourier units, but the model was "
            f"built with lfu={own_lfu}: build it with lfu={their_lfu} (config: model.options: "
            f"{{lfu: {str(their_lfu).lower()}}})"
        )
    return None
