"""Why a checkpoint does not fit a model, said in the model family's own terms.

The weights layer's load report knows keys and shapes; it cannot know that a Hara
ResNet-18 file without ``downsample`` tensors wants ``shortcut="A"``, or that an FFC file
was trained with another ``ratio_global``. :func:`check_weights_fit` is the hook
:func:`~snl_video.models.registry.load_backbone_weights` passes down to
:func:`snl_video.weights.load_pretrained` (its ``check``): it runs before anything is
copied and raises with the advice of the first hint that recognises the mismatch.

Each hint lives with its family: :func:`.placement.explain_nonlocal_mismatch` (non-local
tensors, mmaction2's and BAT's included; it looks at the converted state and runs first),
and the backbone hints :func:`.ffc.explain_ffc_mismatch` and
:func:`.architectures.explain_shortcut_mismatch`, which take a :class:`WeightsMismatch`. A
new family adds its backbone hint to :data:`FAMILY_HINTS`. When no family hint applies, the
checkpoint's backbone is compared with every registered model's, so an r3d18 file into
r3d50 is an error naming r3d18.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence, cast

from torch import Tensor

from .architectures import explain_shortcut_mismatch, without_shortcuts
from .ffc import explain_ffc_mismatch
from .placement import explain_nonlocal_mismatch

if TYPE_CHECKING:
    from snl_video.weights import DetectedCheckpoint

    from torch import nn

    from .placement import RegistryModel
    from .registry import ModelSpec

__all__ = ["WeightsMismatch", "FAMILY_HINTS", "check_weights_fit"]

Signature = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class WeightsMismatch:
    """A checkpoint's backbone that differs from the model's, as the family hints see it.

    ``model_signature`` / ``checkpoint_signature``: backbone key → shape (no head, no
    non-local blocks, no BN counters, nothing ignored), see
    :func:`~snl_video.models.registry.backbone_signature`.
    """

    source: str
    description: str
    spec: "ModelSpec | None"
    model_signature: Signature
    checkpoint_signature: Signature


#: Family hints, tried in order; each returns a message when it recognises the mismatch.
FAMILY_HINTS: tuple[Callable[[WeightsMismatch], "str | None"], ...] = (
    explain_ffc_mismatch,
    explain_shortcut_mismatch,
)


def _blocks_of(model: "nn.Module") -> "nn.ModuleDict":
    """``model.nonlocal_blocks``: every model class of the registry has that ModuleDict."""
    return cast("RegistryModel", model).nonlocal_blocks


def check_weights_fit(
    model: "nn.Module",
    detected: "DetectedCheckpoint",
    state: dict[str, Tensor],
    *,
    ignore: Sequence[str] = (),
    model_name: str | None = None,
) -> None:
    """Raise with the model family's advice if converted ``state`` cannot fit ``model``.

    Non-local tensors the model cannot take come first, then the family hints when the
    backbones differ, then a registered architecture whose backbone the checkpoint has.
    Returns quietly when the backbones match (the load report handles heads and new blocks)
    or when nothing here recognises the difference (the load report lists the keys).
    """
    from snl_video.weights.errors import WeightsLoadError, WrongArchitectureError

    from .registry import backbone_signature, list_models, registered_signature

    own = model.state_dict()
    ignored = {k for k in state if any(fnmatch.fnmatchcase(k, p) for p in ignore)}
    message = explain_nonlocal_mismatch(state, model_keys=set(own), model_blocks=list(_blocks_of(model)),
                                        ignored=ignored, fmt=str(detected.format))
    if message:
        raise WeightsLoadError(message)
    mine = backbone_signature(own, ignore)
    theirs = backbone_signature(state, ignore)
    if mine == theirs:
        return
    mismatch = WeightsMismatch(source=detected.source, description=detected.describe(),
                               spec=getattr(model, "spec", None), model_signature=mine, checkpoint_signature=theirs)
    for hint in FAMILY_HINTS:
        message = hint(mismatch)
        if message:
            raise WeightsLoadError(message)
    model_desc = model_name or type(model).__name__
    matches = [n for n in list_models() if n != model_name and registered_signature(n, ignore) == theirs]
    shortcut_a = False
    if not matches and not any(".downsample." in k for k in theirs):  # a shortcut-A file: compare the rest
        matches = [n for n in list_models(pattern="r3d[0-9]*") if n != model_name
                   and without_shortcuts(registered_signature(n, ignore)) == without_shortcuts(theirs)]
        shortcut_a = True
    if matches:
        raise WrongArchitectureError(
            f"{detected.source} holds a {detected.describe()} whose backbone is that of "
            f"{' / '.join(matches)}{' with shortcut A' if shortcut_a else ''}, but the model is {model_desc}: "
            f"set model.name={matches[0]}{' model.options.shortcut=A' if shortcut_a else ''} (Python: "
            f"build_model({matches[0]!r}{', shortcut=' + repr('A') if shortcut_a else ''}, ...)) or use a "
            f"checkpoint made for {model_desc}"
        )

