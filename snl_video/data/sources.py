"""Dataset sources: each turns its own files into one manifest that ``prepare`` verifies and writes.

The manifest is a table with one row per (split, video)::

    split        the split's name: "1", "2", "3" for UCF-101 / HMDB-51; "1" (or --split-name) for folder / list
    path         the video, relative to the video root (``Class/v_x.avi``)
    class_name   its class
    label        0-based class index (the same for every split of one directory)
    subset       "train", "val" or "test"
    group        clips that come from one source video share a group (UCF-101 ``g08``, HMDB-51 the
                 source-video title, a folder's --group-regex match): held-out sets never split a
                 (class, group) pair

Sources, by name (:data:`SOURCES`, :func:`get_source`; each a
:class:`~snl_video.data.source_spec.DatasetSource` record that prepare, demo, make-synthetic and
the config's check dispatch through):

* ``ucf101``: ``classInd.txt`` + ``trainlist0N`` / ``testlist0N`` (:mod:`.ucf101`);
* ``hmdb51``: the 153 ``<class>_test_split<k>.txt`` files (:mod:`.hmdb51`);
* ``folder``: ``ROOT/<class>/<video>``, subsets drawn per class (:func:`folder_manifest`);
* ``list``: train / test (/ val) list files, mmaction2 (``path label``) or CSV (``path,label``)
  (:func:`list_manifest`).

Everything after the manifest (verification, decoding, the prepared index, datasets,
train / eval / compare) is the same for every source.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import pandas as pd

from ..errors import InvalidValueError, MissingFileError
from .hmdb51 import OFFICIAL_PER_CLASS, hmdb51_group, read_hmdb51_splits
from .source_spec import DatasetSource, DemoSize, SourceInputs, SourceOption, SyntheticFormat
from .splitting import TooFewVideosError, draw_groups
from .ucf101 import SplitFileError, numbered_lines, read_class_index, read_splits
from .video import VIDEO_SUFFIXES

logger = logging.getLogger(__name__)

__all__ = [
    "SPLIT_OPTIONS_ATTR",
    "parse_list_line",
    "files_digest",
    "FOLDER",
    "HMDB51",
    "LIST",
    "MANIFEST_COLUMNS",
    "SOURCES",
    "SUBSETS",
    "UCF101",
    "VIDEO_EXTENSIONS",
    "DatasetSource",
    "DemoSize",
    "SourceInputs",
    "SourceOption",
    "SyntheticFormat",
    "ListFileError",
    "TooFewVideosError",
    "check_manifest",
    "folder_manifest",
    "get_source",
    "hmdb51_manifest",
    "list_manifest",
    "list_sources",
    "parse_per_class",
    "register_source",
    "registered_sources",
    "ucf101_group",
    "ucf101_manifest",
    "unregister_source", "SOURCE_REGISTRY",
]

MANIFEST_COLUMNS = ["split", "path", "class_name", "label", "subset", "group"]
SUBSETS = ("train", "val", "test")
#: File suffixes a folder source takes as videos (case-insensitive).
VIDEO_EXTENSIONS = VIDEO_SUFFIXES  # one list, snl_video.data.video
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ListFileError(SplitFileError):
    """A malformed or inconsistent video list; the message names the file and the line."""


def ucf101_group(class_name: str, path: str) -> str:
    """UCF-101's group of a video (``v_ApplyEyeMakeup_g08_c01.avi`` → ``g08``); clips of a group
    come from one long video. Another name falls back to its stem."""
    match = re.search(r"_g([0-9]+)_c[0-9]+$", Path(path).stem)
    return f"g{match.group(1)}" if match else Path(path).stem


def ucf101_manifest(splits_dir: str | Path, splits: Sequence[int] = (1, 2, 3)) -> pd.DataFrame:
    """The official UCF-101 splits as the common manifest (labels from ``classInd.txt``)."""
    table = read_splits(splits_dir, list(splits))
    table["group"] = [ucf101_group(c, p) for c, p in zip(table["class_name"], table["path"])]
    table["split"] = table["split"].astype(str)
    table = table[MANIFEST_COLUMNS].copy()
    table.attrs["class_names"] = read_class_index(splits_dir)  # all classes, also those no listed video has
    return table


def hmdb51_manifest(
    splits_dir: str | Path, splits: Sequence[int] = (1, 2, 3), *, per_class: tuple[int, int] | None = OFFICIAL_PER_CLASS
) -> pd.DataFrame:
    """The official HMDB-51 splits as the common manifest (70/30 checked; see :mod:`.hmdb51`)."""
    table = read_hmdb51_splits(splits_dir, list(splits), per_class=per_class)
    table["split"] = table["split"].astype(str)
    return table[MANIFEST_COLUMNS]


def _check_split_name(split_name: str) -> str:
    if not _SPLIT_NAME.match(str(split_name)):
        raise InvalidValueError(f"--split-name {split_name!r}: use letters, digits, '_', '.', '-' (e.g. '1' or 'fold_a')")
    return str(split_name)


def folder_manifest(
    videos_dir: str | Path,
    *,
    val_fraction: float = 0.0,
    test_fraction: float = 0.2,
    group_regex: str | None = None,
    seed: int = 0,
    split_name: str = "1",
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> pd.DataFrame:
    """``ROOT/<class>/<video>`` as one split: classes are the sub-folders (sorted, 0-based
    labels), subsets drawn per class by group (:func:`~snl_video.data.splitting.draw_groups`).

    ``group_regex`` is searched in each file name; its first capture group (or the whole
    match) is the video's group; a name it does not match is its own group. Without it,
    every video is its own group.
    """
    root = Path(videos_dir)
    split_name = _check_split_name(split_name)
    if not root.is_dir():
        raise MissingFileError(f"--videos {root} is not a directory (expected one sub-folder of videos per class)")
    for name, value in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise InvalidValueError(f"{name} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise InvalidValueError(f"--val-fraction + --test-fraction must be < 1 (training needs videos), got "
                         f"{val_fraction} + {test_fraction}")
    try:
        pattern = re.compile(group_regex) if group_regex else None
    except re.error as exc:
        raise InvalidValueError(f"--group-regex {group_regex!r} is not a valid regular expression: {exc}") from None
    suffixes = {e.lower() for e in extensions}
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise MissingFileError(f"{root} has no class sub-folders (expected ROOT/<class>/<video>)")
    rows = []
    empty = []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            empty.append(class_dir.name)
        for file in files:
            rel = file.relative_to(root).as_posix()
            group = file.stem
            if pattern is not None:
                match = pattern.search(file.name)
                if match:
                    group = match.group(1) if match.groups() else match.group(0)
            rows.append({"split": split_name, "path": rel, "class_name": class_dir.name, "label": label,
                         "subset": "train", "group": group})
    if empty:
        raise MissingFileError(f"class folder(s) {empty} in {root} hold no videos ({', '.join(sorted(suffixes))}); "
                                "remove them or add videos")
    table = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    table["subset"] = draw_groups(table, [("test", test_fraction), ("val", val_fraction)], seed=seed,
                                  where=f"{root}: ").to_numpy()
    _check_stems(table, where=str(root))
    return table


#: ``<path ending in a video suffix> <label>``: the path may hold spaces (``My clip.avi run``).
_PATH_WITH_SPACES = re.compile(r"^(?P<path>.*?(?:" + "|".join(re.escape(s) for s in VIDEO_SUFFIXES)
                               + r"))\s+(?P<label>\S+)$", re.IGNORECASE)


def parse_list_line(line: str) -> list[str]:
    """The columns of one video-list line: ``path label`` or ``path,label``.

    A path may hold spaces: quoted (``"My clip.avi" run``, or ``"My clip.avi",run`` in the
    CSV form, where a path with a comma must be quoted), or unquoted when it ends in a video
    suffix (``My clip.avi run``). Anything else is split on whitespace, so a malformed line
    gives another number of columns than two (the caller names the file and the line).

    Raises:
        ValueError: unbalanced quotes.
    """
    import csv
    import shlex

    if "," in line:
        try:
            return [p.strip() for p in next(csv.reader([line], skipinitialspace=True))]
        except csv.Error as exc:
            raise ValueError(str(exc)) from None
    if line[:1] in ("'", '"'):
        return shlex.split(line)
    match = _PATH_WITH_SPACES.match(line)
    if match:
        return [match["path"], match["label"]]
    return line.split()


def _read_classes(path: Path) -> list[str]:
    if not path.is_file():
        raise MissingFileError(f"--class-names {path} does not exist (one class name per line, in label order)")
    names: list[str] = []
    seen: dict[str, int] = {}
    for line_no, line in numbered_lines(path):
        parts = line.split()
        # "<name>" per line, or classInd-style "<index> <name>"
        name = parts[-1] if len(parts) == 2 and parts[0].isdigit() else line
        if name in seen:
            raise ListFileError(path, line_no, f"duplicate class name {name!r} (first on line {seen[name]})")
        seen[name] = line_no
        names.append(name)
    if not names:
        raise ListFileError(path, None, "no classes listed")
    return names


class _ListEntry(NamedTuple):
    """One video line of a list file, before its label is resolved (the file and line name it in errors)."""

    subset: str
    video: str
    label_text: str
    file: Path
    line_no: int


def list_manifest(
    lists: Mapping[str, str | Path],
    *,
    root: str | Path,
    classes: str | Path | None = None,
    label_base: int | None = None,
    split_name: str = "1",
) -> pd.DataFrame:
    """Video lists (``{"train": file, "test": file, "val": file}``) as one split.

    A line is ``path label`` (mmaction2's video list; SlowFast's ``path label`` CSV) or
    ``path,label``; a first line whose label is ``label`` is a header. Labels are class
    names, or integers when ``label_base`` is given (0 for mmaction2 / SlowFast, 1 for
    1-based files). Class names and order come from ``classes`` (one name per line, or
    ``<index> <name>``), else from the sorted names in the lists (integers: ``class_<k>``).
    Paths are relative to ``root`` (an absolute path must lie under it).
    """
    root = Path(root)
    split_name = _check_split_name(split_name)
    unknown = sorted(set(lists) - set(SUBSETS))
    if unknown:
        raise InvalidValueError(f"list subsets must be among {SUBSETS}, got {unknown}")
    if "train" not in lists or "test" not in lists:
        raise InvalidValueError("give both a --train and a --test list")
    if label_base not in (None, 0, 1):
        raise InvalidValueError(f"--label-base must be 0 or 1, got {label_base}")
    class_names = _read_classes(Path(classes)) if classes is not None else None
    entries = [entry for subset in SUBSETS if subset in lists for entry in _read_list_file(subset, Path(lists[subset]))]
    if label_base is not None:
        labels, class_names = _integer_labels(entries, label_base=label_base, class_names=class_names)
    else:
        labels, class_names = _named_labels(entries, class_names=class_names, classes=classes)
    rows = _list_rows(entries, labels, class_names, root=root, split_name=split_name)
    table = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    _check_stems(table, where="the lists")
    table.attrs["class_names"] = list(class_names)  # all classes, also those no listed video has
    return table


def _read_list_file(subset: str, path: Path) -> list[_ListEntry]:
    """The video lines of one list file (a header line skipped), refusing a malformed line, a
    rawframes list and a file that lists no videos, each with the file and line."""
    if not path.is_file():
        raise MissingFileError(f"--{subset} list {path} does not exist")
    entries: list[_ListEntry] = []
    for i, (line_no, line) in enumerate(numbered_lines(path)):
        try:
            parts = parse_list_line(line)
        except ValueError as exc:  # shlex: an unclosed quote
            raise ListFileError(path, line_no, f"{exc} in {line!r}; quote a path as \"My clip.avi\" label") from None
        if i == 0 and len(parts) >= 2 and parts[-1].lower() in ("label", "class", "class_name"):
            continue
        if len(parts) == 3 and parts[1].isdigit():  # mmaction2 "path num_frames label" is rawframes: refuse
            raise ListFileError(path, line_no, "three columns ('frame_dir total_frames label') list extracted "
                                               "frames; list the video files as 'path label'")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ListFileError(path, line_no, f"expected 'path label' or 'path,label', got {line!r} (a path with "
                                               "spaces or commas: quote it, \"My clip.avi\" label)")
        entries.append(_ListEntry(subset, parts[0], parts[1], path, line_no))
    if not entries:
        raise ListFileError(path, None, "lists no videos")
    return entries


def _integer_labels(entries: Sequence[_ListEntry], *, label_base: int,
                    class_names: list[str] | None) -> tuple[list[int], list[str]]:
    """0-based labels of integer label texts counted from ``label_base``, and the class names
    (``class_<k>`` up to the largest label when no class file names them)."""
    numbers = []
    for entry in entries:
        try:
            number = int(entry.label_text)
        except ValueError:
            raise ListFileError(entry.file, entry.line_no, f"label {entry.label_text!r} is not an integer (--label-base "
                                                           f"{label_base} says labels are integers; drop it for class "
                                                           "names)") from None
        numbers.append(number - label_base)
    if class_names is None:
        if label_base == 0 and min(numbers) == 1:
            # a 1-based list read as 0-based: every label one too high, and a class_0 no video has
            logger.warning("--label-base 0, but no listed video has label 0 (the smallest is 1): if the lists count "
                           "labels from 1 (UCF-101's trainlist, HMDB-style lists), prepare again with --label-base 1; "
                           "as it is, class_0 is a class without videos and the head gets one class too many")
        width = len(str(max(numbers)))
        class_names = [f"class_{k:0{width}d}" for k in range(max(numbers) + 1)]
    for number, entry in zip(numbers, entries):
        if not 0 <= number < len(class_names):
            hi = len(class_names) - 1 + label_base
            raise ListFileError(entry.file, entry.line_no, f"label {entry.label_text} is out of range ({label_base}.."
                                                           f"{hi} with --label-base {label_base} and "
                                                           f"{len(class_names)} classes)")
    return numbers, class_names


def _named_labels(entries: Sequence[_ListEntry], *, class_names: list[str] | None,
                  classes: str | Path | None) -> tuple[list[int], list[str]]:
    """Labels of class-name label texts, and the class names (the sorted listed names when no
    class file gives them); integer texts without ``--label-base`` are refused as ambiguous."""
    if class_names is None:
        if all(entry.label_text.lstrip("-").isdigit() for entry in entries):
            raise ListFileError(entries[0].file, entries[0].line_no, "labels are integers: say whether they count "
                                                                     "from 0 or 1 with --label-base 0|1")
        class_names = sorted({entry.label_text for entry in entries})
    to_label = {name: i for i, name in enumerate(class_names)}
    labels = []
    for entry in entries:
        if entry.label_text not in to_label:
            raise ListFileError(entry.file, entry.line_no, f"unknown label {entry.label_text!r} (not in "
                                                           f"{classes or 'the class list'})")
        labels.append(to_label[entry.label_text])
    return labels, class_names


def _list_rows(entries: Sequence[_ListEntry], labels: Sequence[int], class_names: Sequence[str], *, root: Path,
               split_name: str) -> list[dict[str, Any]]:
    """Manifest rows of the listed videos, paths relative to ``root``; a video listed twice is refused."""
    rows = []
    seen: dict[str, tuple[Path, int]] = {}
    for entry, label in zip(entries, labels):
        rel = _path_under_root(entry.video, root, file=entry.file, line_no=entry.line_no)
        key = rel.as_posix()
        if key in seen:
            first = seen[key]
            raise ListFileError(entry.file, entry.line_no, f"{key} is listed twice (first at {first[0]}:{first[1]}): "
                                                           "a video belongs to one subset")
        seen[key] = (entry.file, entry.line_no)
        rows.append({"split": split_name, "path": key, "class_name": class_names[label], "label": label,
                     "subset": entry.subset, "group": rel.stem})
    return rows


def _path_under_root(video: str, root: Path, *, file: Path, line_no: int) -> Path:
    """A listed video path relative to ``root`` (an absolute one must lie under it); refuses
    ``..`` and a path that names no file."""
    rel = Path(video)
    if rel.is_absolute():
        for base in (root, root.resolve()):
            if rel.is_relative_to(base):
                rel = rel.relative_to(base)
                break
        else:
            raise ListFileError(file, line_no, f"{video} is not under --root {root}; list paths relative to --root")
    if ".." in rel.parts:
        raise ListFileError(file, line_no, f"{video}: '..' in a listed path; list paths under --root")
    if not rel.name:  # '.', '/': a folder, not a video file
        raise ListFileError(file, line_no, f"{video!r} names no video file; list video paths under --root")
    return rel


def _check_stems(table: pd.DataFrame, *, where: str) -> None:
    """Two videos whose paths differ only in the suffix would share one prepared file."""
    stems = table.drop_duplicates("path")["path"].map(lambda p: Path(p).with_suffix("").as_posix())
    clash = stems[stems.duplicated(keep=False)]
    if len(clash):
        paths = sorted(table.drop_duplicates("path").loc[clash.index, "path"])[:6]
        raise InvalidValueError(f"{where}: videos differ only in their suffix {paths}; rename one of each pair")


def check_manifest(manifest: pd.DataFrame) -> None:
    """Checks every source's manifest must pass before anything is decoded (internal invariants
    of a reader, and the user-facing rules that hold across sources)."""
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    assert not missing, f"manifest lacks columns {missing}"
    if manifest.empty:
        raise InvalidValueError("the dataset lists no videos")
    bad = sorted(set(manifest["subset"]) - set(SUBSETS))
    if bad:
        raise InvalidValueError(f"unknown subsets {bad}; valid: {SUBSETS}")
    per_video = manifest.groupby(["split", "path"])["subset"].nunique()
    twice = per_video[per_video > 1]
    if len(twice):
        shown = [f"{p} (split {s})" for s, p in twice.index[:10]]
        raise InvalidValueError(f"videos in two subsets of one split: {shown}")
    names = manifest.drop_duplicates(["label", "class_name"])
    if names["label"].duplicated().any() or names["class_name"].duplicated().any():
        raise InvalidValueError("one label maps to two class names (or the reverse) across the splits")


def _video_tree(path: Path, expected: str) -> Path:
    if not Path(path).is_dir():
        raise MissingFileError(f"--videos {path} is not a directory (expected {expected})")
    return Path(path)


def _official_splits(split: str) -> list[int]:
    return [1, 2, 3] if split == "all" else [int(split)]


def parse_per_class(text: str) -> tuple[int, int]:
    """``--per-class TRAIN,TEST`` (e.g. ``70,30``): videos per class in every HMDB-51 split."""
    try:
        train, test = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TRAIN,TEST (e.g. 70,30), got {text!r}") from None
    if train < 1 or test < 1:
        raise argparse.ArgumentTypeError(f"both counts must be >= 1, got {text!r}")
    return train, test


_OFFICIAL_SPLIT = SourceOption("--split", "which official split(s) (default: all)", choices=("1", "2", "3", "all"),
                               default="all")
_SPLIT_NAME_OPTION = SourceOption("--split-name", "name of the split written (data.split; default: 1)", default="1")


#: ``manifest.attrs`` key: the options that decided which video is in which subset, by the
#: flag that sets each (split files by the sha256 of their content); ``prepare`` records them.
SPLIT_OPTIONS_ATTR = "split_options"


def files_digest(paths: Sequence[str | Path]) -> str:
    """sha256 over the names and contents of ``paths`` (a folder: every file in it), sorted by name."""
    import hashlib

    files: list[Path] = []
    for path in paths:
        path = Path(path)
        files += sorted(f for f in path.iterdir() if f.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda f: f.name):
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _with_split_options(manifest: pd.DataFrame, options: Mapping[str, Any]) -> pd.DataFrame:
    manifest.attrs[SPLIT_OPTIONS_ATTR] = dict(options)
    return manifest


def _ucf101_inputs(options: Mapping[str, Any]) -> SourceInputs:
    videos = _video_tree(options["videos"], "the UCF-101/ folder of class folders")
    manifest = ucf101_manifest(options["splits"], _official_splits(options["split"]))
    return SourceInputs(_with_split_options(manifest, {"--splits (content)": files_digest([options["splits"]])}), videos)


def _hmdb51_inputs(options: Mapping[str, Any]) -> SourceInputs:
    videos = _video_tree(options["videos"], "the hmdb51_org/ folder of class folders")
    per_class = options["per_class"] or OFFICIAL_PER_CLASS
    manifest = hmdb51_manifest(options["splits"], _official_splits(options["split"]), per_class=per_class)
    return SourceInputs(_with_split_options(manifest, {"--splits (content)": files_digest([options["splits"]]),
                                                       "--per-class": list(per_class)}), videos)


def _folder_inputs(options: Mapping[str, Any]) -> SourceInputs:
    manifest = folder_manifest(options["videos"], val_fraction=options["val_fraction"],
                               test_fraction=options["test_fraction"], group_regex=options["group_regex"],
                               seed=options["seed"], split_name=options["split_name"])
    split_options = {"--test-fraction": options["test_fraction"], "--val-fraction": options["val_fraction"],
                     "--seed": options["seed"], "--group-regex": options["group_regex"]}
    return SourceInputs(_with_split_options(manifest, split_options), Path(options["videos"]))


def _list_inputs(options: Mapping[str, Any]) -> SourceInputs:
    lists = {subset: options[subset] for subset in SUBSETS if options.get(subset) is not None}
    manifest = list_manifest(lists, root=options["root"], classes=options["class_names"],
                             label_base=options["label_base"], split_name=options["split_name"])
    split_options: dict[str, Any] = {f"--{subset} (content)": files_digest([path]) for subset, path in lists.items()}
    split_options["--label-base"] = options["label_base"]
    if options["class_names"] is not None:
        split_options["--class-names (content)"] = files_digest([options["class_names"]])
    return SourceInputs(_with_split_options(manifest, split_options), Path(options["root"]))


# make-synthetic's flags shared by the formats (their defaults differ: UCF-101's set is larger)
def _count(flag: str, help: str, default: int, *, old_flags: tuple[str, ...] = ()) -> SourceOption:
    return SourceOption(flag, f"{help} (default: {default})", type=int, default=default, old_flags=old_flags)


def _synthetic_common(*, frames: int, jitter: int) -> tuple[SourceOption, ...]:
    return (_count("--frames-per-video", "frames per video, before jitter", frames, old_flags=("--frames",)),
            SourceOption("--frame-jitter", f"add 0..N extra frames per video (default: {jitter})", type=int,
                         default=jitter),
            SourceOption("--seed", "seed of the videos (default: 0)", type=int, default=0))


def _ucf101_write(out: Path, o: Mapping[str, Any], *, progress: bool = True) -> dict[str, str]:
    from . import synthetic

    synthetic.make_synthetic_ucf101(out, num_classes=o["num_classes"], videos_per_class=o["videos_per_class"],
                                    video_frames=o["frames_per_video"], frame_jitter=o["frame_jitter"], seed=o["seed"],
                                    noise=o["noise"], bit_rate=o["bit_rate"], progress=progress)
    return {"videos": str(out / "UCF-101"), "splits": str(out / "ucfTrainTestlist")}


def _ucf101_demo(out: Path, size: DemoSize) -> dict[str, str]:
    from . import synthetic

    synthetic.make_synthetic_ucf101(out, num_classes=size.num_classes, videos_per_class=size.videos_per_class,
                                    video_frames=size.video_frames, frame_jitter=4, seed=size.seed, progress=False)
    return {"videos": str(out / "UCF-101"), "splits": str(out / "ucfTrainTestlist"), "split": "1"}


def _hmdb51_write(out: Path, o: Mapping[str, Any], *, progress: bool = True) -> dict[str, str]:
    from . import synthetic

    synthetic.make_synthetic_hmdb51(out, num_classes=o["num_classes"], train_per_class=o["train_per_class"],
                                    test_per_class=o["test_per_class"], unused_per_class=o["unused_per_class"],
                                    clips_per_source=o["clips_per_source"], video_frames=o["frames_per_video"],
                                    frame_jitter=o["frame_jitter"], seed=o["seed"], progress=progress)
    return {"videos": str(out / "hmdb51_org"), "splits": str(out / "testTrainMulti_7030_splits"),
            "per_class": f"{o['train_per_class']},{o['test_per_class']}"}


def _hmdb51_demo(out: Path, size: DemoSize) -> dict[str, str]:
    from . import synthetic

    train = size.videos_per_class - size.held_out_per_class - 2  # 2 per class marked unused
    synthetic.make_synthetic_hmdb51(out, num_classes=size.num_classes, train_per_class=train,
                                    test_per_class=size.held_out_per_class, unused_per_class=2, clips_per_source=2,
                                    video_frames=size.video_frames, frame_jitter=4, seed=size.seed, progress=False)
    return {"videos": str(out / "hmdb51_org"), "splits": str(out / "testTrainMulti_7030_splits"), "split": "1",
            "per_class": f"{train},{size.held_out_per_class}"}


_GROUP_REGEX = "_g([0-9]+)_"  # the group in make-synthetic folder's names (<Class>_gGG_cCC.avi)


def _folder_write(out: Path, o: Mapping[str, Any], *, progress: bool = True) -> dict[str, str]:
    from . import synthetic

    root = synthetic.make_synthetic_folder(out, num_classes=o["num_classes"], videos_per_class=o["videos_per_class"],
                                           clips_per_group=o["clips_per_group"], video_frames=o["frames_per_video"],
                                           frame_jitter=o["frame_jitter"], seed=o["seed"], progress=progress)
    return {"videos": str(root), "group_regex": _GROUP_REGEX}


def _folder_demo(out: Path, size: DemoSize) -> dict[str, str]:
    from . import synthetic

    root = synthetic.make_synthetic_folder(out, num_classes=size.num_classes, videos_per_class=size.videos_per_class,
                                           clips_per_group=2, video_frames=size.video_frames, frame_jitter=4,
                                           seed=size.seed, progress=False)
    return {"videos": str(root), "group_regex": _GROUP_REGEX, "seed": str(size.seed),
            "test_fraction": repr(size.held_out_per_class / size.videos_per_class)}


def _list_write(out: Path, o: Mapping[str, Any], *, progress: bool = True) -> dict[str, str]:
    from . import synthetic

    synthetic.make_synthetic_list(out, num_classes=o["num_classes"], videos_per_class=o["videos_per_class"],
                                  test_per_class=o["test_per_class"], list_format=o["format"],
                                  video_frames=o["frames_per_video"], frame_jitter=o["frame_jitter"], seed=o["seed"],
                                  progress=progress)
    if o["format"] == "mmaction2":
        return {"train": str(out / "train.txt"), "test": str(out / "test.txt"), "class_names": str(out / "classes.txt"),
                "label_base": "0", "root": str(out / "videos")}
    return {"train": str(out / "train.csv"), "test": str(out / "test.csv"), "root": str(out / "videos")}


def _list_demo(out: Path, size: DemoSize) -> dict[str, str]:
    from . import synthetic

    synthetic.make_synthetic_list(out, num_classes=size.num_classes, videos_per_class=size.videos_per_class,
                                  test_per_class=size.held_out_per_class, video_frames=size.video_frames, frame_jitter=4,
                                  seed=size.seed, progress=False)
    return {"train": str(out / "train.txt"), "test": str(out / "test.txt"), "class_names": str(out / "classes.txt"),
            "label_base": "0", "root": str(out / "videos")}


UCF101 = DatasetSource(
    "ucf101", "UCF-101 (official video tree + ucfTrainTestlist/)", ("1", "2", "3"), ucf101_group, ucf101_manifest,
    options=(SourceOption("--videos", "the UCF-101/ folder holding one folder per class", type=Path, required=True),
             SourceOption("--splits", "the ucfTrainTestlist/ folder", type=Path, required=True),
             _OFFICIAL_SPLIT),
    title="UCF-101",
    inputs=_ucf101_inputs,
    synthetic=SyntheticFormat(
        "UCF-101 tree + split files; classes differ only in motion over time",
        (_count("--num-classes", "number of classes", 10, old_flags=("--classes",)), _count("--videos-per-class", "videos per class", 10),
         *_synthetic_common(frames=40, jitter=8),
         SourceOption("--noise", "per-frame pixel noise std (realistic bit rates; default 0)", type=float, default=0.0),
         SourceOption("--bit-rate", "MPEG-4 target bit rate, bit/s (default: 1.5M)", type=int, default=1_500_000)),
        _ucf101_write, _ucf101_demo),
)
HMDB51 = DatasetSource(
    "hmdb51", "HMDB-51 (class-folder tree + testTrainMulti_7030_splits/)", ("1", "2", "3"),
    lambda c, p: hmdb51_group(c, Path(p).name), hmdb51_manifest,
    options=(SourceOption("--videos", "the hmdb51_org/ folder holding one folder per class (the per-class RARs "
                                      "extracted)", type=Path, required=True),
             SourceOption("--splits", "the testTrainMulti_7030_splits/ folder (153 files)", type=Path, required=True),
             _OFFICIAL_SPLIT,
             SourceOption("--per-class", "videos per class in every split (default: the official 70,30 with 51 "
                                         "classes; state other counts only for a subset or a synthetic set)",
                          type=parse_per_class, metavar="TRAIN,TEST")),
    title="HMDB-51",
    inputs=_hmdb51_inputs,
    synthetic=SyntheticFormat(
        "HMDB-51 tree + testTrainMulti_7030_splits/ (prepare with --per-class)",
        (_count("--num-classes", "number of classes", 4, old_flags=("--classes",)),
         _count("--train-per-class", "train videos per class and split", 8),
         _count("--test-per-class", "test videos per class and split", 4),
         _count("--unused-per-class", "videos marked 0 (unused) per split", 2),
         _count("--clips-per-source", "clips cut from one source video", 2),
         *_synthetic_common(frames=24, jitter=6)),
        _hmdb51_write, _hmdb51_demo),
)
FOLDER = DatasetSource(
    "folder", "your videos: ROOT/<class>/<video>, subsets drawn per class", None, lambda c, p: Path(p).stem,
    folder_manifest,
    options=(SourceOption("--videos", "ROOT: one sub-folder of videos per class", type=Path, required=True),
             SourceOption("--val-fraction", "share of each class held out for validation (default: 0)", type=float,
                          default=0.0),
             SourceOption("--test-fraction", "share of each class held out for test (default: 0.2)", type=float,
                          default=0.2),
             SourceOption("--group-regex", "videos whose names give the same match (first capture group) stay on "
                                           "one side, e.g. '_g([0-9]+)_' for UCF-style names (default: every video "
                                           "is its own group)", metavar="REGEX"),
             SourceOption("--seed", "seed of the per-class draw (default: 0)", type=int, default=0),
             _SPLIT_NAME_OPTION),
    inputs=_folder_inputs,
    synthetic=SyntheticFormat(
        "OUT/videos/<Class>/<Class>_gGG_cCC.avi for `prepare folder`",
        (_count("--num-classes", "number of classes", 4, old_flags=("--classes",)), _count("--videos-per-class", "videos per class", 10),
         _count("--clips-per-group", "clips per group gGG", 2), *_synthetic_common(frames=24, jitter=6)),
        _folder_write, _folder_demo),
)
LIST = DatasetSource(
    "list", "your videos: train/test(/val) lists (mmaction2 'path label', SlowFast, CSV)", None,
    lambda c, p: Path(p).stem, list_manifest,
    options=(SourceOption("--train", "training list: 'path label' or 'path,label' per line", type=Path, required=True),
             SourceOption("--test", "test list, same format", type=Path, required=True),
             SourceOption("--val", "validation list (optional; selects best.pt)", type=Path),
             SourceOption("--class-names", "class names in label order, one per line (or '<index> <name>'); default: "
                                       "the sorted names in the lists", type=Path, old_flags=("--classes",)),
             SourceOption("--label-base", "labels are integers counting from 0 (mmaction2, SlowFast) or 1; default: "
                                          "labels are names", type=int, choices=(0, 1)),
             SourceOption("--root", "the folder the listed paths are relative to", type=Path, required=True),
             _SPLIT_NAME_OPTION),
    inputs=_list_inputs,
    synthetic=SyntheticFormat(
        "OUT/videos/ + train/test lists for `prepare list`",
        (_count("--num-classes", "number of classes", 4, old_flags=("--classes",)), _count("--videos-per-class", "videos per class", 10),
         _count("--test-per-class", "test videos per class", 3),
         SourceOption("--format", "mmaction2: 'path label' (0-based) + classes.txt; csv: 'path,label' with class "
                                  "names", choices=("mmaction2", "csv"), default="mmaction2"),
         *_synthetic_common(frames=24, jitter=6)),
        _list_write, _list_demo),
)

#: The registered sources, in the order ``snl-video prepare --help`` lists them. A new source is
#: a module that builds its :class:`DatasetSource` and one line here.
#: A dataset source's name: any registered source (:func:`registered_sources`), checked by config validation.
DatasetName = str

SOURCES: tuple[DatasetSource, ...] = (UCF101, HMDB51, FOLDER, LIST)


def _index(sources: Sequence[DatasetSource]) -> dict[str, DatasetSource]:
    by_name: dict[str, DatasetSource] = {}
    for source in sources:
        if source.name in by_name:
            raise ValueError(f"dataset source {source.name!r} is registered twice")
        by_name[source.name] = source
    return by_name


#: The registry itself, by name: :data:`SOURCES` and any source added with :func:`register_source`.
#: Read it through :func:`get_source` and :func:`registered_sources`.
SOURCE_REGISTRY: dict[str, DatasetSource] = _index(SOURCES)


def register_source(source: DatasetSource) -> None:
    """Add ``source`` to the registry (for a plug-in or a test; the project's own sources are
    listed in :data:`SOURCES`). A name already registered is an error."""
    if source.name in SOURCE_REGISTRY:
        raise ValueError(f"dataset source {source.name!r} is registered twice")
    SOURCE_REGISTRY[source.name] = source


def unregister_source(name: str) -> None:
    """Remove a source added with :func:`register_source` (tests clean up with it)."""
    if any(s.name == name for s in SOURCES):
        raise ValueError(f"dataset source {name!r} is one of the project's own; it cannot be removed")
    SOURCE_REGISTRY.pop(name, None)


def registered_sources() -> list[DatasetSource]:
    """The registered sources: the project's own in :data:`SOURCES` order, then any added."""
    return list(SOURCE_REGISTRY.values())


def list_sources() -> list[str]:
    """Names of the registered dataset sources."""
    return sorted(SOURCE_REGISTRY)


def get_source(name: str) -> DatasetSource:
    """The source called ``name``; an unknown name is an error listing the valid ones."""
    try:
        return SOURCE_REGISTRY[name]
    except KeyError:
        raise InvalidValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(list_sources())}") from None
