"""snl_video: spectral non-local blocks and the non-local family for video action recognition.

The package is organised in layers, bottom to top (the ``[tool.importlinter]`` contract in
``pyproject.toml`` states and enforces them; ``docs/architecture.md`` draws them): utilities
(``errors``, ``fileio``, ``progress``, ``version``), ``inputspec``, ``nonlocal_blocks`` (the
blocks of *Unifying Nonlocal Blocks for Neural Networks*, ICCV 2021), ``weights``, ``models``,
``data``, ``config``, the training / evaluation ``engine``, ``commands`` and ``cli``
(``snl-video <verb>``) at the edge.

The verbs of the command line are functions here, with one calling convention (the model
named by keyword only: ``checkpoint=``, ``weights=`` or ``config=``)::

    import snl_video
    result = snl_video.predict("clip.mp4", weights="r3d50_kinetics400")
    snl_video.evaluate(checkpoint="runs/snl/checkpoints/best.pt", output_dir="runs/snl/eval")

They are imported on first use, so ``import snl_video`` stays light (no torch).
"""

import importlib
import logging

from .version import __version__

# A library never configures logging; it only makes sure that an application
# that does not configure it sees no "No handler found" noise.
logging.getLogger(__name__).addHandler(logging.NullHandler())

#: The verbs as Python functions: name -> the module that defines the function the command runs.
VERBS = {
    "train": "snl_video.engine.api",
    "evaluate": "snl_video.engine.api",
    "predict": "snl_video.engine.api",
    "explain": "snl_video.engine.api",
    "export": "snl_video.engine.api",
    "features": "snl_video.engine.api",
    "spectrum": "snl_video.engine.api",
    "prepare": "snl_video.engine.api",
    "compare": "snl_video.engine.api",
    "study": "snl_video.engine.api",
    "publish": "snl_video.engine.api",
}

__all__ = ["__version__", *VERBS]


def __getattr__(name: str):  # lazy: `import snl_video` stays light (no torch) until a verb is used
    if name in VERBS:
        return getattr(importlib.import_module(VERBS[name]), name)
    raise AttributeError(f"module 'snl_video' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *VERBS])
