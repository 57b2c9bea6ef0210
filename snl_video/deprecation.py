"""Old names of renamed Python keyword arguments and attributes, accepted for one release.

The Python counterpart of :mod:`snl_video.commands.renamed` (which does the same for
command-line spellings): when a name changes so that one concept has one name everywhere,
code that still passes the old keyword, or reads the old attribute, keeps working for one
release and is told the new name by a :class:`DeprecationWarning`. Only the name changed:
the meaning, type and default did not.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, TypeVar, cast

__all__ = ["REMOVED_AFTER", "renamed_attribute", "renamed_keywords"]

#: The release after which the old names stop being accepted.
REMOVED_AFTER = "the next release"

F = TypeVar("F", bound=Callable[..., Any])


def _warn(old: str, new: str, where: str, stacklevel: int) -> None:
    warnings.warn(f"{where}: {old!r} is deprecated, use {new!r} (the old name is accepted until {REMOVED_AFTER})",
                  DeprecationWarning, stacklevel=stacklevel + 1)


def renamed_keywords(**renames: str) -> Callable[[F], F]:
    """Decorate a function so that each ``old=new`` keyword it was renamed from still works.

    A call that passes ``old=...`` runs as if it passed ``new=...`` and warns (a
    ``DeprecationWarning`` naming the new keyword); passing both is a ``TypeError``, as Python
    does for any argument given twice.
    """

    def decorate(func: F) -> F:
        name = func.__qualname__
        where = f"{name[:-len('.__init__')] if name.endswith('.__init__') else name}()"

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{where} got both {old!r} and {new!r}; {old!r} is the old name of "
                                        f"{new!r}: pass only {new}=...")
                    _warn(old, new, where, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def renamed_attribute(old: str, new: str) -> property:
    """A read-only property under the ``old`` name that warns and returns attribute ``new``.

    Use it in a class body as ``clip_len = renamed_attribute("clip_len", "num_frames")``.
    """

    def get(self: Any) -> Any:
        _warn(old, new, f"{type(self).__name__}.{old}", stacklevel=2)
        return getattr(self, new)

    return property(get, doc=f"Deprecated: the old name of ``{new}``.")
