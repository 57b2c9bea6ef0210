"""What every video backbone of the package shares: where its non-local blocks live and run.

:class:`~.resnet3d.ResNet3D`, :class:`~.slowfast.SlowFast3D` and :class:`~.x3d.X3D` differ in
their stems, blocks and heads, but hold their placed non-local blocks the same way (one
``nonlocal_blocks`` ``ModuleDict`` keyed by :func:`nonlocal_key`), run a stage the same way
(each residual block, then the non-local block placed after it, if any), answer the placement
code's questions the same way (``stage_channels``, ``stage_depths``) and initialise their
convs and norms the same way. :class:`VideoBackbone` is that common part, so a fix to it
reaches all three. It adds no modules, so the state-dict keys are those of each model.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from torch import Tensor, nn

__all__ = ["VideoBackbone", "nonlocal_key"]


def nonlocal_key(stage: str, index: int) -> str:
    """Key in a model's ``nonlocal_blocks`` of the block applied after residual block ``index``
    of ``stage`` (``layer3_after_4``; a pathway-qualified stage ``slow.layer3`` gives
    ``slow_layer3_after_4``, since module names cannot hold dots)."""
    return f"{stage.replace('.', '_')}_after_{index}"


def _call(block: nn.Module, x: Any) -> Any:
    return block(x)


class VideoBackbone(nn.Module):
    """The shared part of the video backbones (see the module doc).

    A subclass sets ``spec`` (with ``in_channels``, ``stage_channels()`` and ``stage_depths()``)
    and ``nonlocal_blocks`` (an empty ``nn.ModuleDict``, filled by placement), then calls
    :meth:`reset_parameters`. ``zero_conv_bias``: whether the initialisation also zeroes the
    biases of convs that have one (X3D's; the ResNets keep PyTorch's default for theirs).
    """

    spec: Any
    nonlocal_blocks: nn.ModuleDict
    zero_conv_bias = False

    def reset_parameters(self) -> None:
        """Kaiming (fan-out) convs, norms at (1, 0), as Hara's and torchvision's code."""
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if self.zero_conv_bias and module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @staticmethod
    def nonlocal_key(stage: str, index: int) -> str:
        """Key in ``nonlocal_blocks`` of the block applied after residual block ``index`` of ``stage``."""
        return nonlocal_key(stage, index)

    def stage_channels(self) -> dict[str, int]:
        return self.spec.stage_channels()

    def stage_depths(self) -> dict[str, int]:
        return self.spec.stage_depths()

    def check_clip(self, x: Tensor) -> None:
        """Refuse anything but a clip batch ``(B, in_channels, T, H, W)``, naming the shape received."""
        if x.dim() != 5 or x.shape[1] != self.spec.in_channels:
            raise ValueError(f"expected a clip batch (B, {self.spec.in_channels}, T, H, W), got shape {tuple(x.shape)}")

    def run_stage(self, stage: str, blocks: Iterable[nn.Module], x: Any,
                  apply: Callable[[nn.Module, Any], Any] = _call) -> Any:
        """``x`` through the residual ``blocks`` of ``stage``, each followed by the non-local
        block placed after it (``apply(block, x)``: how a block meets the map, e.g. an FFC pair)."""
        for index, block in enumerate(blocks):
            x = block(x)
            key = nonlocal_key(stage, index)
            if key in self.nonlocal_blocks:
                x = apply(self.nonlocal_blocks[key], x)
        return x

    def backbone_state_dict(self) -> dict[str, Tensor]:
        """The state dict without the non-local blocks (what a backbone checkpoint holds)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("nonlocal_blocks.")}
