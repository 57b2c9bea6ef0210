"""UCF-101 split files: parse, validate, and turn into one manifest table.

The official ``ucfTrainTestlist/`` folder holds ``classInd.txt`` (``<1-based index> <Class>``),
``trainlist0N.txt`` (``<Class>/<file>.avi <1-based label>``) and ``testlist0N.txt``
(``<Class>/<file>.avi``, no label), all with CRLF line endings.

Two rules this module enforces, because the anchors get them wrong in practice:

* Labels are 0-based inside the toolkit. The 1-based numbers of ``classInd.txt`` and
  ``trainlist0N.txt`` are converted in exactly one function, :func:`_official_to_label`.
* A video's class comes from its FOLDER, looked up in ``classInd.txt``, never from its file
  name: the folder ``HandstandPushups`` holds files named ``v_HandStandPushups_*``. The
  label column of a train list is only checked against that lookup.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import pandas as pd

from ..errors import InvalidValueError, MissingFileError

logger = logging.getLogger(__name__)

__all__ = [
    "SplitFileError",
    "OFFICIAL_SPLIT_SIZES",
    "numbered_lines",
    "read_class_index",
    "read_split",
    "read_splits",
]

SplitId = Literal[1, 2, 3]

#: (train, test) video counts of the official splits, for a sanity message on real data.
OFFICIAL_SPLIT_SIZES: dict[int, tuple[int, int]] = {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)}


class SplitFileError(InvalidValueError):
    """A malformed or inconsistent split file; the message names the file and the line."""

    def __init__(self, path: Path, line_no: int | None, message: str) -> None:
        where = f"{path}:{line_no}" if line_no is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line_no = line_no


def _official_to_label(value: str, *, path: Path, line_no: int, num_classes: int | None) -> int:
    """THE one place where an official 1-based class number becomes a 0-based label."""
    try:
        number = int(value)
    except ValueError:
        raise SplitFileError(path, line_no, f"class number {value!r} is not an integer") from None
    if number < 1 or (num_classes is not None and number > num_classes):
        bound = f"1..{num_classes}" if num_classes is not None else ">= 1"
        raise SplitFileError(path, line_no, f"class number {number} is out of range (expected {bound}, 1-based)")
    return number - 1


def numbered_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; CRLF, LF and a missing final newline all work."""
    if not path.is_file():
        raise MissingFileError(f"split file {path} does not exist (expected the official ucfTrainTestlist/ layout)")
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SplitFileError(path, None, f"not UTF-8/ASCII text ({exc})") from None
    out = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r").strip()
        if line:
            out.append((line_no, line))
    return out


def read_class_index(splits_dir: str | Path) -> list[str]:
    """Class names in label order (``names[label]``), from ``classInd.txt``.

    The 1-based numbers must be exactly 1..K with unique names.
    """
    path = Path(splits_dir) / "classInd.txt"
    by_label: dict[int, tuple[str, int]] = {}
    seen_names: dict[str, int] = {}
    for line_no, line in numbered_lines(path):
        parts = line.split()
        if len(parts) != 2:
            raise SplitFileError(path, line_no, f"expected '<1-based index> <ClassName>', got {line!r}")
        label = _official_to_label(parts[0], path=path, line_no=line_no, num_classes=None)
        name = parts[1]
        if label in by_label:
            raise SplitFileError(path, line_no, f"duplicate class number {label + 1} (first on line {by_label[label][1]})")
        if name in seen_names:
            raise SplitFileError(path, line_no, f"duplicate class name {name!r} (first on line {seen_names[name]})")
        by_label[label] = (name, line_no)
        seen_names[name] = line_no
    if not by_label:
        raise SplitFileError(path, None, "no classes listed")
    missing = sorted(set(range(len(by_label))) - set(by_label))
    if missing:
        raise SplitFileError(path, None, f"class numbers are not 1..{len(by_label)}: missing {[m + 1 for m in missing]}")
    return [by_label[i][0] for i in range(len(by_label))]


def _parse_video_path(value: str, *, path: Path, line_no: int, class_to_label: dict[str, int]) -> tuple[str, int]:
    parts = value.split("/")
    if len(parts) != 2 or not parts[0] or not parts[1] or not parts[1].lower().endswith(".avi"):
        raise SplitFileError(path, line_no, f"expected '<Class>/<file>.avi', got {value!r}")
    class_name = parts[0]
    if class_name not in class_to_label:
        raise SplitFileError(path, line_no, f"unknown class {class_name!r} (not in classInd.txt)")
    return class_name, class_to_label[class_name]


def _read_list(
    path: Path, *, subset: Literal["train", "test"], class_names: list[str], class_to_label: dict[str, int]
) -> list[dict]:
    rows = []
    for line_no, line in numbered_lines(path):
        parts = line.split()
        if subset == "train" and len(parts) != 2:
            raise SplitFileError(path, line_no, f"expected '<Class>/<file>.avi <1-based label>', got {line!r}")
        if subset == "test" and len(parts) not in (1, 2):
            raise SplitFileError(path, line_no, f"expected '<Class>/<file>.avi', got {line!r}")
        class_name, label = _parse_video_path(parts[0], path=path, line_no=line_no, class_to_label=class_to_label)
        if len(parts) == 2:  # train lists always; tolerated on test lists, but must agree
            listed = _official_to_label(parts[1], path=path, line_no=line_no, num_classes=len(class_names))
            if listed != label:
                raise SplitFileError(
                    path,
                    line_no,
                    f"label {listed + 1} disagrees with classInd.txt, which gives folder {class_name!r} "
                    f"the number {label + 1}",
                )
        rows.append(
            {"path": parts[0], "label": label, "class_name": class_name, "subset": subset, "_where": (path, line_no)}
        )
    return rows


def read_split(splits_dir: str | Path, split: int) -> pd.DataFrame:
    """One official split as a table: ``path``, ``label`` (0-based), ``class_name``, ``subset``.

    ``path`` is as listed (``Class/v_....avi``). Rows are train first, then test, each in
    list order. Raises :class:`SplitFileError` (naming file and line) on a malformed line,
    an unknown class, a label that disagrees with ``classInd.txt`` or a video listed twice
    (within a list or in both lists).
    """
    if split not in (1, 2, 3):
        raise InvalidValueError(f"split must be 1, 2 or 3, got {split!r}")
    splits_dir = Path(splits_dir)
    class_names = read_class_index(splits_dir)
    class_to_label = {name: i for i, name in enumerate(class_names)}
    rows = []
    for subset in ("train", "test"):
        rows += _read_list(
            splits_dir / f"{subset}list0{split}.txt",
            subset=subset,
            class_names=class_names,
            class_to_label=class_to_label,
        )
    first_seen: dict[str, tuple[Path, int]] = {}
    for row in rows:
        key = row["path"]
        if key in first_seen:
            where = first_seen[key]
            raise SplitFileError(row["_where"][0], row["_where"][1], f"{key} is listed twice (first at {where[0]}:{where[1]})")
        first_seen[key] = row["_where"]
    frame = pd.DataFrame(rows, columns=["path", "label", "class_name", "subset", "_where"]).drop(columns="_where")
    frame["label"] = frame["label"].astype("int64")
    n_train = int((frame["subset"] == "train").sum())
    n_test = len(frame) - n_train
    if len(class_names) == 101 and (n_train, n_test) != OFFICIAL_SPLIT_SIZES[split]:
        logger.warning(
            "split %d lists %d train / %d test videos; the official lists have %d / %d",
            split, n_train, n_test, *OFFICIAL_SPLIT_SIZES[split],
        )
    return frame


def read_splits(splits_dir: str | Path, splits: list[int]) -> pd.DataFrame:
    """Several splits stacked, with a ``split`` column; see :func:`read_split`."""
    frames = []
    for split in splits:
        frame = read_split(splits_dir, split)
        frame.insert(0, "split", split)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
