"""The recipes shipped inside the package (``snl_video/configs/``): names, listing and lookup.

The YAML recipes (Table 7 rows, HMDB-51, the demo) and the study specs live in the package, so
an installed wheel carries them and ``snl-video train --config ucf101/r3d50_snl`` works with no
repository checkout. A shipped recipe is *named* by its path under ``snl_video/configs/`` without
the ``.yaml`` suffix (``ucf101/r3d50_snl``, ``studies/smoke``). In a checkout the repository's
``configs`` is a link to that folder, so ``configs/ucf101/r3d50_snl.yaml`` keeps working as a path.

:func:`resolve_recipe_path` is the one rule from what a user typed to a file: an existing file
is that file (as before); otherwise a value without a YAML suffix is looked up among the shipped
recipes. ``defaults:`` includes inside a recipe stay relative to the recipe file, wherever it
lives (:func:`~snl_video.config.files.load_yaml_with_includes`).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from ..errors import MissingFileError

logger = logging.getLogger(__name__)

__all__ = ["RECIPE_SUFFIXES", "RecipeInfo", "find_recipe", "list_recipes", "packaged_recipes_dir",
           "recipe_description", "resolve_recipe_path"]

#: File suffixes of a recipe; a ``--config`` value without one may name a shipped recipe.
RECIPE_SUFFIXES = (".yaml", ".yml")

#: How long ``config list``'s description may be before it is cut (at a word, with "…").
_DESCRIPTION_WIDTH = 100
#: A full stop that ends a sentence: followed by a space and a capital ("Hara et al. 2017" goes on).
_SENTENCE_END = re.compile(r"\.\s+(?=[A-Z])")


def packaged_recipes_dir() -> Path:
    """The folder of the shipped recipes: ``snl_video/configs/`` next to this package's code.

    A plain path (not an :mod:`importlib.resources` traversable) on purpose: a recipe's
    ``defaults:`` includes are files relative to it, so it must be a real file; setuptools
    installs the package as files, never zipped.
    """
    return Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class RecipeInfo:
    """One shipped YAML file: its name, its path, what it is and its one-line description."""

    #: ``ucf101/r3d50_snl``: the path under ``snl_video/configs/`` without the suffix.
    name: str
    path: Path
    #: ``recipe`` (a train recipe, ``--config``) or ``study`` (a study spec, ``snl-video study``).
    kind: Literal["recipe", "study"]
    description: str


def recipe_description(text: str) -> str:
    """The first sentence of a recipe's opening comment (the schema line skipped), on one line.

    Recipes open with a comment saying what they are; its first paragraph is joined and cut
    at the end of its first sentence, or at a word near :data:`_DESCRIPTION_WIDTH` characters.
    """
    words: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# yaml-language-server:"):
            continue
        if not stripped.startswith("#"):
            break
        body = stripped.lstrip("#").strip()
        if not body or line.lstrip().startswith("#   "):  # end of the paragraph, or a command line
            if words:
                break
            continue
        words.extend(body.split())
    joined = " ".join(words)
    sentence_end = _SENTENCE_END.search(joined)
    if sentence_end is not None:
        joined = joined[: sentence_end.start() + 1]
    if len(joined) > _DESCRIPTION_WIDTH:
        joined = joined[: _DESCRIPTION_WIDTH].rsplit(" ", 1)[0].rstrip(" ,;:—-") + " …"
    return joined


def _name_of(path: Path, root: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


def _recipe_files(root: Path) -> list[Path]:
    return sorted(p for suffix in RECIPE_SUFFIXES for p in root.rglob(f"*{suffix}") if p.is_file())


def list_recipes() -> list[RecipeInfo]:
    """Every shipped recipe and study spec, sorted by name (what ``snl-video config list`` prints)."""
    root = packaged_recipes_dir()
    infos = []
    for path in _recipe_files(root):
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        kind: Literal["recipe", "study"] = "study" if isinstance(data, dict) and "variants" in data else "recipe"
        infos.append(RecipeInfo(name=_name_of(path, root), path=path, kind=kind, description=recipe_description(text)))
    return sorted(infos, key=lambda info: info.name)


def find_recipe(name: str) -> Path:
    """The file of the shipped recipe ``name`` (``ucf101/r3d50_snl``; a suffix is allowed; a bare
    ``r3d50_snl`` when exactly one folder has it).

    Raises:
        MissingFileError: no such shipped recipe (or a bare name in several folders), with the
            closest names and where to see them all.
    """
    root = packaged_recipes_dir()
    files = _recipe_files(root)
    names = {_name_of(p, root): p for p in files}
    key = Path(name).with_suffix("").as_posix() if Path(name).suffix in RECIPE_SUFFIXES else Path(name).as_posix()
    if key in names:
        return names[key]
    same_stem = [n for n in names if n.rsplit("/", 1)[-1] == key]
    if len(same_stem) == 1:
        return names[same_stem[0]]
    if same_stem:
        raise MissingFileError(f"{name!r} names several shipped recipes: {', '.join(same_stem)}; "
                               "give the folder too, e.g. " + same_stem[0])
    close = difflib.get_close_matches(key, list(names), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise MissingFileError(f"{name!r} is neither a file nor a shipped recipe{hint} "
                           "(`snl-video config list` names them all)")


def resolve_recipe_path(value: str | os.PathLike[str]) -> Path:
    """The recipe file a user means by ``value`` (a ``--config`` or ``config check`` argument).

    An existing file is that file. A value without a YAML suffix that is not a file names a
    shipped recipe (:func:`find_recipe`). A missing ``.yaml`` path is an error that names the
    shipped recipe of the same name when there is one (``configs/ucf101/r3d50_snl.yaml`` outside
    a checkout → ``ucf101/r3d50_snl``).

    Raises:
        MissingFileError: neither a file nor a shipped recipe.
    """
    path = Path(value)
    if path.is_file():
        return path
    if path.suffix not in RECIPE_SUFFIXES:
        if path.is_dir():
            raise MissingFileError(f"{str(path)!r} is a folder; --config takes a recipe file or the name of a shipped "
                                   "recipe (`snl-video config list`)")
        found = find_recipe(str(value))
        logger.debug("recipe %s is the shipped %s", value, found)
        return found
    root = packaged_recipes_dir()
    parts = path.with_suffix("").parts
    shipped = [p for p in _recipe_files(root)
               if any(_name_of(p, root) == "/".join(parts[i:]) for i in range(len(parts)))]
    hint = f"; the shipped recipe of that name is {_name_of(shipped[0], root)} (no .yaml)" if shipped else ""
    raise MissingFileError(f"config file {str(path)!r} does not exist{hint}")
