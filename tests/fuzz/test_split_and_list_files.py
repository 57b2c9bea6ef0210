"""Fuzzing the dataset description files: UCF-101 split files, HMDB-51 split files, video lists
and class lists, and class/video folder names (non-ASCII, spaces, odd characters).

Each property: reading whatever the files hold either gives a manifest or raises the project's
one-line error (:func:`tests.fuzz.errors.only_project_errors`); never another exception.
The files are built from near-valid lines (real tokens in odd combinations) mixed with
arbitrary text and bytes, so the examples reach past the first line's check.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from snl_video.data.sources import check_manifest, folder_manifest, hmdb51_manifest, list_manifest, ucf101_manifest

from .errors import only_project_errors

# Names a user's tree may really have: ASCII, non-ASCII letters, spaces, dots, dashes.
_NAME_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="/\\\x00")
names = st.one_of(
    st.sampled_from(["ApplyEyeMakeup", "Biking", "brush_hair", "Tänzer", "Ça va", "a b", "x", "日本語", "-", "."]),
    st.text(_NAME_CHARS, min_size=1, max_size=12),
)
numbers = st.one_of(st.integers(-3, 105).map(str), st.sampled_from(["", "01", "1.0", "1e3", "０", "+1", "nan"]))
separators = st.sampled_from([" ", "  ", "\t", ",", ", ", " , "])


@st.composite
def text_lines(draw, line: st.SearchStrategy[str]) -> str:
    """A file: near-valid lines and arbitrary ones, joined by LF or CRLF, maybe a BOM."""
    body = draw(st.lists(st.one_of(line, line, st.text(max_size=30)), max_size=8))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    return bom + newline.join(body) + draw(st.sampled_from(["", newline]))


@st.composite
def mutated(draw, lines: list[str]) -> str:
    """A valid file's ``lines`` after a few edits (a line replaced by junk, dropped, doubled, or
    junk inserted), joined by LF or CRLF: most examples get deep into the parser."""
    lines = list(lines)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["replace", "drop", "double", "insert", "edit"]))
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        junk = draw(st.one_of(st.text(max_size=20), names, numbers))
        if op == "insert" or not lines:
            lines.insert(at, junk)
        elif op == "replace":
            lines[at] = junk
        elif op == "drop":
            del lines[at]
        elif op == "double":
            lines.insert(at, lines[at])
        else:  # a token of the line replaced
            parts = lines[at].split(" ")
            parts[draw(st.integers(0, len(parts) - 1))] = junk
            lines[at] = " ".join(parts)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(lines) + draw(st.sampled_from(["", newline]))


# Class names as real trees have them, without whitespace or '/' (a split file's separator).
tokens = st.one_of(st.sampled_from(["ApplyEyeMakeup", "Biking", "brush_hair", "Tänzer", "Ça_va", "日本語", "x"]),
                   st.text(st.characters(codec="utf-8", categories=("L", "N")), min_size=1, max_size=8))


@st.composite
def ucf101_files(draw, split: int) -> dict[str, str]:
    """classInd / trainlist / testlist of a small valid split, then mutated."""
    classes = draw(st.lists(tokens, min_size=1, max_size=4, unique=True))
    train, test = [], []
    for label, cls in enumerate(classes, start=1):
        for g in range(draw(st.integers(1, 2))):
            train.append(f"{cls}/v_{cls}_g{g + 1:02d}_c01.avi {label}")
            test.append(f"{cls}/v_{cls}_g{g + 11:02d}_c01.avi")
    return {
        "classInd.txt": draw(mutated([f"{i} {c}" for i, c in enumerate(classes, start=1)])),
        f"trainlist0{split}.txt": draw(mutated(train)),
        f"testlist0{split}.txt": draw(mutated(test)),
    }


@given(data=st.data(), split=st.sampled_from([1, 2, 3]))
def test_ucf101_split_files_near_valid(data, split):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, content in data.draw(ucf101_files(split)).items():
            _write(root / name, content)
        with only_project_errors():
            check_manifest(ucf101_manifest(root, [split]))


@st.composite
def video_lists(draw) -> dict[str, str]:
    """train/test lists (names or integer labels) of a small valid set, then mutated."""
    classes = draw(st.lists(tokens, min_size=1, max_size=3, unique=True))
    integer = draw(st.booleans())
    lines = {"train": [], "test": []}
    for label, cls in enumerate(classes):
        for subset in lines:
            for k in range(draw(st.integers(1, 2))):
                lines[subset].append(f"{cls}/{subset}_{k}.mp4{draw(separators)}{label if integer else cls}")
    return {subset: draw(mutated(content)) for subset, content in lines.items()} | {"integer": integer}


@given(lists=video_lists(), header=st.booleans())
@example(lists={"train": "ApplyEyeMakeup/train_0.mp4 ApplyEyeMakeup", "test": ". ApplyEyeMakeup", "integer": False},
         header=False)  # a listed path '.': pathlib's "has an empty name" ValueError escaped
def test_video_lists_near_valid(lists, header):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = {}
        for subset in ("train", "test"):
            paths[subset] = root / f"{subset}.txt"
            _write(paths[subset], ("path label\n" if header else "") + lists[subset])
        with only_project_errors():
            check_manifest(list_manifest(paths, root=root / "videos", label_base=0 if lists["integer"] else None))


def _write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")



@st.composite
def ucf_video(draw) -> str:
    cls = draw(names)
    return draw(st.sampled_from([f"{cls}/v_{cls}_g01_c01.avi", f"{cls}/{draw(names)}.avi", cls, f"/{cls}/x.avi",
                                 f"{cls}/../x.avi"]))


@given(
    class_index=st.one_of(text_lines(st.builds(lambda n, s, c: f"{n}{s}{c}", numbers, separators, names)),
                          st.binary(max_size=40)),
    train=text_lines(st.builds(lambda v, s, n: f"{v}{s}{n}", ucf_video(), separators, numbers)),
    test=text_lines(ucf_video()),
    split=st.sampled_from([1, 2, 3]),
)
def test_ucf101_split_files(class_index, train, test, split):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write(root / "classInd.txt", class_index)
        _write(root / f"trainlist0{split}.txt", train)
        _write(root / f"testlist0{split}.txt", test)
        with only_project_errors():
            check_manifest(ucf101_manifest(root, [split]))


@given(
    files=st.dictionaries(names, st.one_of(
        text_lines(st.builds(lambda n, s, f: f"{n}.avi{s}{f}", names, separators, numbers)),
        st.binary(max_size=40)), min_size=1, max_size=4),
    split=st.sampled_from([1, 2, 3]),
    per_class=st.sampled_from([None, (70, 30), (1, 1)]),
)
def test_hmdb51_split_files(files, split, per_class):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for class_name, content in files.items():
            if "/" in class_name or class_name in (".", ".."):
                continue
            _write(root / f"{class_name}_test_split{split}.txt", content)
        with only_project_errors():
            check_manifest(hmdb51_manifest(root, [split], per_class=per_class))


@st.composite
def list_line(draw) -> str:
    path = draw(st.sampled_from(["{c}/{v}.mp4", "{v}.avi", "/abs/{v}.mp4", "../{v}.mp4", "{c}/{v}"]))
    path = path.format(c=draw(names), v=draw(names))
    label = draw(st.one_of(numbers, names, st.sampled_from(["label", "class"])))
    extra = draw(st.sampled_from(["", " 300", " x y"]))
    return f"{path}{draw(separators)}{label}{extra}"


@given(
    train=st.one_of(text_lines(list_line()), st.binary(max_size=40)),
    test=text_lines(list_line()),
    val=st.one_of(st.none(), text_lines(list_line())),
    classes=st.one_of(st.none(), text_lines(st.one_of(names, st.builds(lambda n, c: f"{n} {c}", numbers, names)))),
    label_base=st.sampled_from([None, 0, 1]),
)
def test_video_and_class_lists(train, test, val, classes, label_base):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lists = {"train": root / "train.txt", "test": root / "test.txt"}
        _write(lists["train"], train)
        _write(lists["test"], test)
        if val is not None:
            lists["val"] = root / "val.txt"
            _write(lists["val"], val)
        if classes is not None:
            _write(root / "classes.txt", classes)
        with only_project_errors():
            check_manifest(list_manifest(lists, root=root / "videos", label_base=label_base,
                                         classes=root / "classes.txt" if classes is not None else None))


@given(
    tree=st.dictionaries(names, st.lists(st.tuples(names, st.sampled_from([".mp4", ".avi", ".MKV", ".webm", ".txt", ""])),
                                          max_size=4), max_size=4),
    test_fraction=st.sampled_from([0.0, 0.2, 0.2, 0.5, 0.5, 0.99, 1.0, -0.1]),
    val_fraction=st.sampled_from([0.0, 0.1, 0.5]),
    group_regex=st.one_of(st.none(), st.sampled_from([r"_g(\d+)_", "(", "[a-", r"(?P<x>.)", ".*"]), st.text(max_size=6)),
    split_name=st.one_of(st.just("1"), names),
)
def test_folder_trees_with_any_names(tree, test_fraction, val_fraction, group_regex, split_name):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "videos"
        root.mkdir()
        for class_name, videos in tree.items():
            if class_name in (".", ".."):
                continue
            folder = root / class_name
            folder.mkdir(exist_ok=True)
            for stem, suffix in videos:
                if stem not in (".", ".."):
                    (folder / f"{stem}{suffix}").write_bytes(b"")
        with only_project_errors():
            check_manifest(folder_manifest(root, val_fraction=val_fraction, test_fraction=test_fraction,
                                           group_regex=group_regex, split_name=split_name))
