"""Non-local blocks for video (and images), unified as graph filters.

``build_nonlocal(kind, in_channels, inter_channels=None, **options)`` builds any block of
the family studied in *Unifying Nonlocal Blocks for Neural Networks* (ICCV 2021) and the
transform-domain blocks beside it; ``list_nonlocal_kinds()`` names them all and
``snl-video nonlocal`` prints each with its options.

Where things live: graph operators in :mod:`.affinity`, the builders that make them from
``θ``, ``φ`` in :mod:`.affinity_builders`, polynomial filters in :mod:`.filters`, rational
(Cayley, ARMA) filters with their option checks in :mod:`.rational`, the one block class in
:mod:`.block`, the graph kinds (presets of the paper's Table 1) in :mod:`.presets`, the
transform kinds in :mod:`.srb` and :mod:`.bat`, and the kind registry in :mod:`.registry`.
(The package is not called ``nonlocal``: that is a Python keyword and could not be imported.)
"""

from .affinity import (
    CrissCrossAffinity,
    DenseAffinity,
    GraphOperator,
    LowRankAffinity,
    SumAffinity,
    TaylorChannelAffinity,
    inverse_sqrt_degrees,
    softmax_affinity,
    spectral_affinity,
)
from .affinity_builders import AUTO_LINEAR_NODES_PER_CHANNEL, resolve_impl
from .bat import BATBlock, build_bat
from .block import NonLocalBlock
from .filters import FilterTerm, apply_graph_filter, chebyshev_terms
from .registry import build_nonlocal, describe_nonlocal, list_nonlocal_kinds, nonlocal_options, register_block_kind
from .srb import SpectralResidualBlock, attach_orthogonal_retraction, build_srb, retract_orthogonal_

__all__ = [
    "AUTO_LINEAR_NODES_PER_CHANNEL",
    "BATBlock",
    "SpectralResidualBlock",
    "attach_orthogonal_retraction",
    "build_bat",
    "build_srb",
    "register_block_kind",
    "retract_orthogonal_",
    "CrissCrossAffinity",
    "DenseAffinity",
    "FilterTerm",
    "GraphOperator",
    "LowRankAffinity",
    "NonLocalBlock",
    "SumAffinity",
    "TaylorChannelAffinity",
    "apply_graph_filter",
    "build_nonlocal",
    "chebyshev_terms",
    "describe_nonlocal",
    "inverse_sqrt_degrees",
    "list_nonlocal_kinds",
    "nonlocal_options",
    "resolve_impl",
    "softmax_affinity",
    "spectral_affinity",
]
