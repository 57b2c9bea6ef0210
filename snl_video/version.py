"""The toolkit's version, read once from the installed package's metadata.

``pyproject.toml`` is the one place the version is written; an installed package
(``pip install -e .`` included) carries it as metadata. Run from a source tree that was never
installed, there is no metadata to read: the version is then ``0+unknown`` (a valid PEP 440
local version that sorts below every release), so nobody mistakes it for a release.
"""

from __future__ import annotations

import logging
from importlib import metadata

logger = logging.getLogger(__name__)

__all__ = ["UNKNOWN_VERSION", "__version__", "package_version"]

#: The version reported when the package's metadata cannot be found (a source tree that is not installed).
UNKNOWN_VERSION = "0+unknown"


def package_version(distribution: str = "snl_video") -> str:
    """The installed version of ``distribution``, or :data:`UNKNOWN_VERSION` when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        logger.debug("%s is not installed (run from a source tree?): version %s", distribution, UNKNOWN_VERSION)
        return UNKNOWN_VERSION


__version__: str = package_version()
