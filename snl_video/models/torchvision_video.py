"""torchvision's transformer and separable video models as registry baselines:
``mvit_v2_s`` (MViT-v2-S), ``swin3d_t`` (Video Swin-T) and ``s3d`` (S3D).

They are built by torchvision itself (``torchvision.models.video.<arch>``), so their function
is torchvision's by construction; :class:`TorchvisionVideo` adopts the torchvision model's
top-level modules as its own, so its state-dict keys are exactly torchvision's (a released
torchvision checkpoint needs no key conversion) and its forward is torchvision's. What the
wrapper adds is the registry's model contract: ``spec``, ``num_classes``, ``head_prefixes``
(the classifier's keys, replaced when a checkpoint's class count differs: ``head.`` for
MViT and Swin, ``classifier.`` for S3D), and a refusal of non-local placement — their
attention (MViT, Swin) is already global, or the model (S3D) has no ResNet stages to name.

Input: one clip ``(B, 3, T, H, W)``; MViT-v2-S is built for 16×224² (its positional
structure is tied to that size), S3D needs at least 14×224² (its head pools a fixed 2×7×7
window), Swin3D-T takes any size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn
from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = ["TORCHVISION_BASELINES", "TorchvisionVideoSpec", "TorchvisionVideo"]

#: arch → (classifier key prefix, attention kind for the refusal message)
TORCHVISION_BASELINES: dict[str, tuple[str, str]] = {
    "mvit_v2_s": ("head.", "a transformer whose pooling attention already relates every position to every other"),
    "swin3d_t": ("head.", "a transformer whose shifted-window attention already mixes positions across the clip"),
    "s3d": ("classifier.", "a separable Inception network with no ResNet stages to place blocks in"),
}


@dataclass(frozen=True)
class TorchvisionVideoSpec:
    """Which torchvision video model, and its head dropout (``None``: torchvision's default)."""

    arch: str
    dropout: float | None = None
    in_channels: int = 3
    family: str = "torchvision-baseline"

    def __post_init__(self) -> None:
        if self.arch not in TORCHVISION_BASELINES:
            raise InvalidValueError(f"torchvision baseline must be one of {list(TORCHVISION_BASELINES)}, got {self.arch!r}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise InvalidValueError(f"dropout must be in [0, 1) or None (torchvision's default), got {self.dropout!r}")


class TorchvisionVideo(nn.Module):
    """A torchvision video model with the registry's contract (see the module doc)."""

    _net: nn.Module  # the wrapped torchvision model, kept in __dict__ (see __init__)

    def __init__(self, spec: TorchvisionVideoSpec, *, num_classes: int) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        import torchvision.models.video as video

        kwargs: dict[str, Any] = {} if spec.dropout is None else {"dropout": spec.dropout}
        net = getattr(video, spec.arch)(weights=None, num_classes=num_classes, **kwargs)
        # Adopt its modules: same keys, same parameters; the net itself only runs forward.
        assert not net._parameters and not net._buffers, f"{spec.arch} holds tensors outside its submodules"
        for name, child in net.named_children():
            self.add_module(name, child)
        self.__dict__["_net"] = net  # not a registered submodule: its modules are ours already
        self.spec = spec
        self.num_classes = num_classes
        self.head_prefixes: tuple[str, ...] = (TORCHVISION_BASELINES[spec.arch][0],)
        self.nonlocal_blocks = nn.ModuleDict()  # always empty (placement is refused)

    @property
    def nonlocal_refusal(self) -> str:
        """Why :func:`~.placement.insert_nonlocal_blocks` refuses this model."""
        return (
            f"non-local blocks cannot be placed in {self.spec.arch}: it is "
            f"{TORCHVISION_BASELINES[self.spec.arch][1]}; leave nonlocal_blocks out (null), or compare "
            f"non-local blocks on a 3D ResNet, slowfast_r50 or x3d_* (`snl-video profile --help` lists the models)"
        )

    def train(self, mode: bool = True) -> "TorchvisionVideo":
        super().train(mode)
        self._net.training = mode
        return self

    def stage_depths(self) -> dict[str, int]:
        return {}

    def stage_channels(self) -> dict[str, int]:
        return {}

    def classifier_layer(self) -> nn.Linear | nn.Conv3d:
        """The last layer of the classifier (a ``Linear``, or S3D's 1x1x1 ``Conv3d``)."""
        prefix = self.head_prefixes[0].rstrip(".")
        layers = [m for m in self.get_submodule(prefix).modules() if isinstance(m, (nn.Linear, nn.Conv3d))]
        return layers[-1]

    @property
    def feature_channels(self) -> int:
        layer = self.classifier_layer()
        return int(layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels)

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled features ``(B, feature_channels)``: what the classifier's last layer is given
        (MViT's class token after the final norm, Swin3D's pooled map; for S3D, whose 1x1x1
        classifier conv runs before its average, the map averaged over T, H, W, the same by
        linearity), so ``features`` and linear probes see the vector the head classifies."""
        store: dict[str, Tensor] = {}
        handle = self.classifier_layer().register_forward_pre_hook(lambda m, args: store.setdefault("x", args[0]))
        try:
            self.forward(x)
        finally:
            handle.remove()
        features = store["x"]
        return features.flatten(2).mean(-1) if features.dim() == 5 else features

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5 or x.shape[1] != self.spec.in_channels:
            raise ValueError(f"expected a clip batch (B, {self.spec.in_channels}, T, H, W), got shape {tuple(x.shape)}")
        return self._net(x)
