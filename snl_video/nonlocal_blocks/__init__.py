"""Non-local blocks for video (and images), unified as graph filters.

``build_nonlocal(kind, in_channels, inter_channels=None, **options)`` builds any block of
the family studied in *Unifying Nonlocal Blocks for Neural Networks* (ICCV 2021):
``nl``, ``nl_dot``, ``ns``, ``a2``, ``cgnl``, ``cc``, ``dnl`` and the spectral ``snl``;
beside them the transform-domain blocks ``srb`` (:mod:`.srb`) and ``bat`` (:mod:`.bat`).
Affinities live in :mod:`.affinity`, the graph filter in :mod:`.filters`, the block and
its presets in :mod:`.blocks`. (The package is not called ``nonlocal``: that is a Python
keyword and could not be imported.)
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
from .blocks import (
    AUTO_LINEAR_NODES_PER_CHANNEL,
    NonLocalBlock,
    build_nonlocal,
    describe_nonlocal,
    list_nonlocal_kinds,
    nonlocal_options,
    register_block_kind,
    resolve_impl,
)
from .filters import FilterTerm, apply_graph_filter, chebyshev_terms
from .bat import BATBlock, build_bat
from .srb import SpectralResidualBlock, attach_orthogonal_retraction, build_srb, retract_orthogonal_

register_block_kind("srb", build_srb)
register_block_kind("bat", build_bat)

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
