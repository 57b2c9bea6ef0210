"""snl_video: spectral non-local blocks and the non-local family for video action recognition.

The package is organised in layers, bottom to top (the ``[tool.importlinter]`` contract in
``pyproject.toml`` states and enforces them): utilities (``errors``, ``fileio``, ``progress``,
``version``), ``nonlocal_blocks`` (the blocks of *Unifying Nonlocal Blocks for Neural
Networks*, ICCV 2021), ``weights``, ``models``, ``data``, ``config``, the training /
evaluation ``engine``, ``commands`` and ``cli`` (``snl-video <verb>``) at the edge.
"""

import logging

from .version import __version__

# A library never configures logging; it only makes sure that an application
# that does not configure it sees no "No handler found" noise.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__", "predict"]


def __getattr__(name: str):  # lazy: `import snl_video` stays light (no torch) until the API is used
    if name == "predict":
        from .engine.predict import predict

        return predict
    raise AttributeError(f"module 'snl_video' has no attribute {name!r}")
