"""Old spellings of renamed command-line options, accepted for one release with a deprecation line.

A renamed option is added once with its new spelling first and the old ones after it; when a
user's script still passes an old spelling, the value is used as before and one warning line
names the new spelling. Only the spelling changed: the option's meaning, type and default did not.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

logger = logging.getLogger(__name__)

#: The release after which the old spellings stop being accepted.
REMOVED_AFTER = "the next release"


class _RenamedStore(argparse._StoreAction):
    """``store`` that warns when the option was given under one of its ``old`` spellings."""

    old: tuple[str, ...] = ()

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if option_string in self.old:
            logger.warning("%s is deprecated: use %s (the old spelling is accepted until %s)",
                           option_string, self.option_strings[0], REMOVED_AFTER)
        super().__call__(parser, namespace, values, option_string)


def add_renamed_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, new: str, *old: str,
                       **kwargs: Any) -> argparse.Action:
    """``parser.add_argument(new, *old, **kwargs)`` where each of ``old`` still works, with a warning.

    ``dest`` defaults to the new spelling (``--output-dir`` → ``output_dir``), so the code that
    reads the value knows only the new name.
    """
    if not old:
        return parser.add_argument(new, **kwargs)
    action = type("RenamedStore", (_RenamedStore,), {"old": tuple(old)})
    kwargs.setdefault("dest", new.lstrip("-").replace("-", "_"))
    return parser.add_argument(new, *old, action=action, **kwargs)
