"""A rough guess of the network a state dict belongs to, from its key names and shapes.

Works on every known format (and on snl_video models, whose names follow torchvision's
``layerX.Y``); used to say *which* architecture a checkpoint belongs to when it does not
fit a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

__all__ = ["ArchitectureGuess", "guess_architecture"]


@dataclass(frozen=True)
class ArchitectureGuess:
    """What the keys and shapes of a state dict suggest about the network.

    ``blocks_per_stage`` counts residual blocks in the four ResNet stages; ``depth`` is the
    usual ResNet depth derived from it (3 convs per bottleneck block, 2 per basic block,
    plus stem and classifier). ``stem_time_kernel`` is the temporal size of the first
    conv (``None`` for a 2-D stem).
    """

    blocks_per_stage: tuple[int, ...] = ()
    bottleneck: bool | None = None
    stem_time_kernel: int | None = None
    has_nonlocal: bool = False

    @property
    def depth(self) -> int | None:
        if len(self.blocks_per_stage) != 4 or self.bottleneck is None:
            return None
        return (3 if self.bottleneck else 2) * sum(self.blocks_per_stage) + 2

    def describe(self) -> str:
        if not self.blocks_per_stage:
            return "an unrecognised network (no ResNet stages found)"
        kind = "bottleneck" if self.bottleneck else "basic-block" if self.bottleneck is not None else "?"
        depth = f"ResNet-{self.depth}" if self.depth else "ResNet-like"
        stem = (
            "2-D stem"
            if self.stem_time_kernel is None
            else f"3-D stem with temporal kernel {self.stem_time_kernel}"
        )
        nl = ", with non-local blocks" if self.has_nonlocal else ""
        blocks = "-".join(map(str, self.blocks_per_stage))
        return f"{depth} ({kind}, blocks per stage {blocks}, {stem}{nl})"


# (regex capturing "stage id, block index", regex for a key only bottleneck blocks have).
# Stages are ordered by their id, whatever it starts at: pytorchvideo's I3D and C2D put a
# pooling layer at blocks.2, so their stages are blocks.1,3,4,5 (Slow: blocks.1-4).
_STAGE_PATTERNS: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    # torchvision / Hara / mmaction2 (after backbone.): layer1..4.J.
    (re.compile(r"^(?:backbone\.)?layer(\d+)\.(\d+)\."), re.compile(r"^(?:backbone\.)?layer\d+\.\d+\.conv3\.")),
    # pytorchvideo: blocks.S.res_blocks.J.
    (re.compile(r"^blocks\.(\d+)\.res_blocks\.(\d+)\."), re.compile(r"\.branch2\.conv_c\.")),
    # PySlowFast: sS.pathway0_resJ.
    (re.compile(r"^s(\d+)\.pathway0_res(\d+)\."), re.compile(r"\.branch2\.c\.")),
    # Caffe2: resS_J_branch2*
    (re.compile(r"^res(\d+)_(\d+)_branch2"), re.compile(r"^res\d+_\d+_branch2c_")),
)

# The first conv's key in each format (torchvision video stems, stem.0, are 5-D too).
_STEM_KEYS = (
    "conv1.weight",
    "backbone.conv1.conv.weight",
    "blocks.0.conv.weight",
    "s1.pathway0_stem.conv.weight",
    "conv1_w",
    "stem.0.weight",
)


def guess_architecture(state: Mapping[str, torch.Tensor]) -> ArchitectureGuess:
    """Infer ResNet stage depths, block type and stem from key names and shapes."""
    best: tuple[int, ArchitectureGuess] | None = None
    for stage_re, bottleneck_re in _STAGE_PATTERNS:
        blocks: dict[int, set[int]] = {}
        matched = 0
        for key in state:
            m = stage_re.match(key)
            if m:
                matched += 1
                blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
        if not matched:
            continue
        per_stage = tuple(len(blocks[s]) for s in sorted(blocks))
        bottleneck = any(bottleneck_re.search(k) for k in state)
        guess = ArchitectureGuess(blocks_per_stage=per_stage, bottleneck=bottleneck)
        if best is None or matched > best[0]:
            best = (matched, guess)
    stem_t: int | None = None
    for key in _STEM_KEYS:
        t = state.get(key)
        if isinstance(t, (torch.Tensor, np.ndarray)) and t.ndim == 5:
            stem_t = int(t.shape[2])
            break
    has_nonlocal = any(("non_local" in k or "nonlocal" in k or k.startswith("nonlocal_")) for k in state)
    guess = best[1] if best else ArchitectureGuess()
    return ArchitectureGuess(
        blocks_per_stage=guess.blocks_per_stage,
        bottleneck=guess.bottleneck,
        stem_time_kernel=stem_t,
        has_nonlocal=has_nonlocal,
    )
