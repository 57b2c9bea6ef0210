"""What a dataset source is, as data: the record every source fills in and the registry reads.

A source (:mod:`snl_video.data.sources` lists them) turns its own files into the common
manifest. Its record says everything the rest of the toolkit needs, so that ``prepare``,
``demo``, ``make-synthetic`` and the config's check dispatch through the registry instead of
naming sources in if/elif chains:

* ``options``: the inputs ``snl-video prepare <source>`` asks for (``--videos``, ``--splits``,
  ...), as :class:`SourceOption` records (``commands`` turns them into argparse options; the
  data layer knows nothing about argparse);
* ``inputs``: those options (parsed) → :class:`SourceInputs` (the manifest and the folder
  the manifest's paths are relative to);
* ``synthetic``: how ``make-synthetic <source>`` and ``demo --dataset <source>`` write a small
  synthetic set in the source's format (:class:`SyntheticFormat`), or ``None``.

Adding a source is one module that builds a :class:`DatasetSource` and one line in
:data:`snl_video.data.sources.SOURCES`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from ..errors import InvalidValueError

__all__ = ["DatasetSource", "DemoSize", "SourceInputs", "SourceOption", "SyntheticFormat", "parse_options"]


@dataclass(frozen=True)
class SourceOption:
    """One input of a source (or of its synthetic writer): ``--flag`` on the command line,
    ``dest`` as a key of the options mapping the source's functions receive.

    ``type`` parses the command-line text (an argparse ``type``: raise ``ValueError`` or
    ``argparse.ArgumentTypeError`` for a bad value); ``default`` is used as given (not parsed).
    """

    flag: str
    help: str
    type: Callable[[str], Any] = str
    default: Any = None
    required: bool = False
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    #: Earlier spellings of ``flag``, still accepted for one release with a deprecation line.
    old_flags: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        """The option's key: ``--group-regex`` → ``group_regex``."""
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class SourceInputs:
    """What ``prepare`` needs from a source: the manifest and the folder its paths are relative to."""

    manifest: pd.DataFrame
    videos_dir: Path


@dataclass(frozen=True)
class DemoSize:
    """The demo's dataset size, the same for every source: ``held_out_per_class`` of each class's
    ``videos_per_class`` go to the test subset (whole groups, so an even number)."""

    num_classes: int
    videos_per_class: int
    held_out_per_class: int
    video_frames: int
    seed: int


@dataclass(frozen=True)
class SyntheticFormat:
    """A small synthetic dataset in a source's format (classes that differ only in motion).

    ``options`` are ``make-synthetic <source>``'s own flags (``--output-dir`` and ``--no-progress``
    are every format's); ``write(out, options, progress=...)`` writes the files and returns
    the prepare options (command-line text, see :func:`parse_options`) that read them back;
    ``demo(out, size)`` does the same at the demo's size.
    """

    help: str
    options: tuple[SourceOption, ...]
    write: Callable[..., dict[str, str]]
    demo: Callable[[Path, DemoSize], dict[str, str]]


@dataclass(frozen=True)
class DatasetSource:
    """A registered source: its name, what it reads, its split names (``None``: named by the
    user, one split per preparation), how a video's group is found from its class and path
    (used for prepared directories written before groups were recorded), and how it is
    prepared (``options`` → ``inputs``) and synthesised (``synthetic``).

    ``read(splits_dir, splits)`` reads an official split layout straight from its files (the
    ``videos`` backend of a training run); sources without one (``split_names is None``)
    raise on it.
    """

    name: str
    description: str
    split_names: tuple[str, ...] | None
    group_of: Callable[[str, str], str]
    read: Callable[..., pd.DataFrame]
    options: tuple[SourceOption, ...] = ()
    #: How messages name the dataset ("UCF-101"); the name when empty.
    title: str = ""
    inputs: Callable[[Mapping[str, Any]], SourceInputs] | None = None
    synthetic: SyntheticFormat | None = field(default=None)

    def __post_init__(self) -> None:
        if not self.title:
            object.__setattr__(self, "title", self.name)


def parse_options(options: tuple[SourceOption, ...], given: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """``given`` (keys are :attr:`SourceOption.dest`; string values are command-line text) parsed
    as the command line would: each string through its option's ``type``, a missing key its
    default. An unknown key, a missing required one or a bad value is an error naming the flag."""
    by_dest = {o.dest: o for o in options}
    unknown = sorted(set(given) - set(by_dest))
    if unknown:
        raise InvalidValueError(f"{where}: unknown option(s) {unknown}; valid: {sorted(by_dest)}")
    parsed: dict[str, Any] = {}
    for option in options:
        if option.dest not in given:
            if option.required:
                raise InvalidValueError(f"{where}: {option.flag} is required")
            parsed[option.dest] = option.default
            continue
        value = given[option.dest]
        if isinstance(value, str):
            try:
                value = option.type(value)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                raise InvalidValueError(f"{where}: {option.flag} {given[option.dest]!r}: {exc}") from None
        if option.choices is not None and value not in option.choices:
            raise InvalidValueError(f"{where}: {option.flag} {value!r}: choose from {list(option.choices)}")
        parsed[option.dest] = value
    return parsed
