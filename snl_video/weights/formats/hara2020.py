"""3D-ResNets-PyTorch 2020 release: ``{'epoch', 'arch', 'state_dict', 'optimizer', 'scheduler'}``.

The same names as the 2017 release (plain, ``module.`` stripped defensively); told apart
by the ``scheduler`` entry.
"""

from __future__ import annotations

from .base import CheckpointFormat
from .hara2017 import convert_hara, has_hara_container, unwrap_hara

__all__ = ["FORMAT"]

FORMAT = CheckpointFormat(
    name="hara2020",
    description="3D-ResNets-PyTorch 2020 release: 'state_dict' + 'arch' + 'scheduler'",
    recognise=lambda container: has_hara_container(container) and "scheduler" in container,
    unwrap=unwrap_hara,
    head_keys=("fc.weight", "fc.bias"),
    convert=convert_hara,
)
