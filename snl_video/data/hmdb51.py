"""HMDB-51 split files: parse, check the 70/30 protocol, and turn them into the common manifest.

The official ``testTrainMulti_7030_splits/`` folder holds 153 files
``<class>_test_split<k>.txt`` (51 classes x splits 1-3). Each line is ``<video>.avi <id>``
with ``1`` = train, ``2`` = test, ``0`` = not used in this split; the files carry trailing
spaces and some tools add CRLF endings, both tolerated. The id is the line's last field, so a
video name holding spaces (or ``#``, ``(``, ``!``, ``&``) is read whole. Videos live in the class-folder
tree of the official archive (``hmdb51_org/<class>/<video>.avi`` once the per-class RARs
are extracted), so a video's path is ``<class>/<video>.avi``.

Rules enforced here:

* The classes are the ones the file names give; labels follow their sorted names (string
  order: ``climb`` before ``climb_stairs``) and are 0-based. The name → label mapping is
  made in exactly one function, :func:`class_labels`.
* Every split of the official protocol has exactly 70 train and 30 test videos per class
  (3,570 / 1,530 in all). That is checked right after parsing, before any video is
  decoded; a subset or a synthetic set states its own counts (``per_class``).
* A video listed twice in one file, an id other than 0/1/2, a malformed line, a split file
  missing for one class: errors naming the file and the line.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from ..errors import InvalidValueError, MissingFileError
from .ucf101 import SplitFileError, numbered_lines

logger = logging.getLogger(__name__)

__all__ = [
    "OFFICIAL_PER_CLASS",
    "NUM_CLASSES",
    "class_labels",
    "hmdb51_group",
    "list_split_files",
    "read_hmdb51_split",
    "read_hmdb51_splits",
]

#: (train, test) videos per class in every official split.
OFFICIAL_PER_CLASS: tuple[int, int] = (70, 30)
NUM_CLASSES = 51
_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>[0-9]+)\.txt$")
_SUBSET_OF_ID = {"1": "train", "2": "test", "0": None}
# <source title>_<class>_<body part>_<camera motion>_<people>_<viewpoint>_<quality>_<clip number>.avi
_META_TAIL = r"_[a-z]+_[a-z]+_np[0-9]+_[a-z]+_[a-z]+_[0-9]+$"


def class_labels(class_names: Iterable[str]) -> dict[str, int]:
    """THE one place where HMDB-51 class names become 0-based labels: sorted string order."""
    return {name: label for label, name in enumerate(sorted(set(class_names)))}


def hmdb51_group(class_name: str, file_name: str) -> str:
    """The source video a clip was cut from (its title prefix): clips of one source share it.

    ``April_09_brush_hair_u_nm_np1_ba_goo_0.avi`` in ``brush_hair`` → ``April_09``. A name
    that does not follow the official pattern falls back to the stem without a trailing
    ``_<number>``.
    """
    stem = Path(file_name).stem
    match = re.match(rf"^(?P<title>.+)_{re.escape(class_name)}{_META_TAIL}", stem)
    if match:
        return match.group("title")
    return re.sub(r"_[0-9]+$", "", stem)


def list_split_files(splits_dir: str | Path) -> dict[int, dict[str, Path]]:
    """``{split: {class: file}}`` of the ``<class>_test_split<k>.txt`` files in ``splits_dir``."""
    splits_dir = Path(splits_dir)
    if not splits_dir.is_dir():
        raise MissingFileError(
            f"--splits {splits_dir} is not a directory (expected the official testTrainMulti_7030_splits/ folder)"
        )
    found: dict[int, dict[str, Path]] = {}
    for path in sorted(splits_dir.iterdir()):
        match = _SPLIT_FILE.match(path.name)
        if match and path.is_file():
            found.setdefault(int(match.group("k")), {})[match.group("cls")] = path
    if not found:
        raise MissingFileError(
            f"{splits_dir} holds no '<class>_test_split<k>.txt' files (expected the official testTrainMulti_7030_splits/)"
        )
    return found


def _read_file(path: Path, class_name: str) -> list[dict]:
    rows: list[dict] = []
    seen: dict[str, int] = {}
    for line_no, line in numbered_lines(path):
        # The id is the last field; the name is everything before it, so a name with spaces
        # (HMDB's titles carry '#', '(', '!', '&' and a few spaces) stays one name.
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise SplitFileError(path, line_no, f"expected '<video>.avi <0|1|2>', got {line!r}")
        video, flag = parts[0].strip(), parts[1]
        if flag not in _SUBSET_OF_ID:
            raise SplitFileError(path, line_no, f"id {flag!r} is not 0 (unused), 1 (train) or 2 (test)")
        if "/" in video or "\\" in video or not video.lower().endswith(".avi"):
            raise SplitFileError(path, line_no, f"expected a file name '<video>.avi', got {video!r}")
        if video in seen:
            raise SplitFileError(path, line_no, f"{video} is listed twice (first on line {seen[video]})")
        seen[video] = line_no
        subset = _SUBSET_OF_ID[flag]
        if subset is not None:
            rows.append({"path": f"{class_name}/{video}", "class_name": class_name, "subset": subset,
                         "group": hmdb51_group(class_name, video), "_where": (path, line_no)})
    return rows


def read_hmdb51_split(
    splits_dir: str | Path, split: int, *, per_class: tuple[int, int] | None = OFFICIAL_PER_CLASS
) -> pd.DataFrame:
    """One split as the common manifest: ``path``, ``class_name``, ``label``, ``subset``, ``group``.

    ``per_class`` = (train, test) videos every class must have (the official 70/30);
    ``None`` skips the count check (a subset of the data). With the official counts the
    split must also have the 51 classes. Rows are by class (sorted), then in file order.
    """
    if split not in (1, 2, 3):
        raise InvalidValueError(f"HMDB-51 has splits 1, 2 and 3, got {split!r}")
    files = list_split_files(splits_dir)
    if split not in files:
        raise MissingFileError(f"{splits_dir} has no '<class>_test_split{split}.txt' files")
    by_class = files[split]
    all_classes = sorted({c for per_split in files.values() for c in per_split})
    lacking = [c for c in all_classes if c not in by_class]
    if lacking:
        raise MissingFileError(
            f"{splits_dir}: split {split} has no file for classes {lacking} (expected '<class>_test_split{split}.txt')"
        )
    labels = class_labels(by_class)
    rows: list[dict] = []
    problems: list[str] = []
    for class_name in sorted(by_class):
        class_rows = _read_file(by_class[class_name], class_name)
        if per_class is not None:
            n_train = sum(r["subset"] == "train" for r in class_rows)
            n_test = len(class_rows) - n_train
            if (n_train, n_test) != tuple(per_class):
                problems.append(f"{by_class[class_name]}: {n_train} train / {n_test} test videos, "
                                f"expected {per_class[0]} / {per_class[1]}")
        for row in class_rows:
            row["label"] = labels[class_name]
        rows += class_rows
    if per_class == OFFICIAL_PER_CLASS and len(by_class) != NUM_CLASSES:
        problems.insert(0, f"{splits_dir}: split {split} has {len(by_class)} classes, the official HMDB-51 has "
                           f"{NUM_CLASSES}")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise SplitFileError(
            Path(splits_dir), None,
            f"split {split} breaks the 70/30 protocol:\n  {shown}{more}\n"
            "use the official testTrainMulti_7030_splits/ files (or state the counts of a subset with --per-class)",
        )
    frame = pd.DataFrame(rows, columns=["path", "class_name", "label", "subset", "group", "_where"])
    frame = frame.drop(columns="_where")
    frame["label"] = frame["label"].astype("int64")
    return frame


def read_hmdb51_splits(
    splits_dir: str | Path, splits: Sequence[int], *, per_class: tuple[int, int] | None = OFFICIAL_PER_CLASS
) -> pd.DataFrame:
    """Several splits stacked with a ``split`` column; see :func:`read_hmdb51_split`. The splits
    must name the same classes (one label mapping for the whole prepared directory)."""
    frames = []
    classes: tuple[str, ...] | None = None
    for split in splits:
        frame = read_hmdb51_split(splits_dir, split, per_class=per_class)
        names = tuple(sorted(frame["class_name"].unique()))
        if classes is not None and names != classes:
            raise SplitFileError(Path(splits_dir), None, f"split {split} names other classes than split {splits[0]}")
        classes = names
        frame.insert(0, "split", split)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    counts = out.groupby(["split", "subset"]).size().to_dict()
    logger.info("HMDB-51 splits %s: %s", list(splits), counts)
    return out
