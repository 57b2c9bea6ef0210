"""snl_video: spectral non-local blocks and the non-local family for video action recognition.

The package is organised in layers (see the README): ``nonlocal_blocks`` (the blocks of
*Unifying Nonlocal Blocks for Neural Networks*, ICCV 2021), then models, weights, data and
the training / evaluation engine on top, and ``cli`` (``snl-video <verb>``) at the edge.
"""

import logging

__version__ = "0.1.0"

# A library never configures logging; it only makes sure that an application
# that does not configure it sees no "No handler found" noise.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__", "predict"]


def __getattr__(name: str):  # lazy: `import snl_video` stays light (no torch) until the API is used
    if name == "predict":
        from .engine.predict import predict

        return predict
    raise AttributeError(f"module 'snl_video' has no attribute {name!r}")
