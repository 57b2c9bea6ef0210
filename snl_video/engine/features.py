"""Per-video features of a trained model: pooled pre-head features or a stage's map.

Inputs: video files / folders (searched recursively), a list file (one path per line,
relative paths taken from the list's folder), or a prepared dataset (a folder holding the
``index.csv`` of ``snl-video prepare``: every video of it, read from its frames). Each
video is sampled as the video-level protocol does (``num_clips`` uniform clips x
``num_crops`` crops, the model's normalisation); its features are averaged over those views
or kept per view (``per_clip``).

Outputs in ``out_dir``: one ``.npy`` per video at the video's relative path (``Class/v.avi``
-> ``Class/v.npy``), written atomically, and ``index.csv`` (``video, features, shape,
status, label, class_name, subset``: status ``ok`` or the reason it failed; label, class name
and subset (``train`` / ``val`` / ``test``; ``1:train 2:test 3:train`` for a dataset prepared
for several splits) from a prepared dataset's index, empty for files and list files, which do not say), a row appended as each video finishes, so a run
that dies late (a full disk, a kill) keeps an index of what it finished. A re-run skips
videos whose ``.npy`` exists (a file under its final name is complete), so an interrupted
job resumes where it stopped; a re-run with other settings is refused (``overwrite`` replaces the earlier files):
``features.json`` records what made the files (weights digest, layer, clip protocol, input spec).
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..data.datasets import ClipDataset, VideoEntry, read_prepared_entry
from ..data.video import count_entry_frames, failure_reason, find_videos, read_entry_clips, read_entry_frames
from ..fileio import OutputWriteError, append_line, atomic_write, atomic_write_text
from ..models import RegistryModel
from ..models.resnet3d import feature_map
from .loading import InferenceModel
from .records import check_features_record, features_record, write_features_record
from ..progress import progress as progress_bar
from ..errors import InvalidValueError, MissingFileError

logger = logging.getLogger(__name__)

__all__ = ["FeatureSource", "FeaturesReport", "layer_names", "collect_sources", "extract_features", "read_video_list",
           "subset_cell"]


@dataclass(frozen=True)
class FeatureSource:
    """A video to featurise: how to read it, and its name in the output tree."""

    entry: VideoEntry
    name: str
    prepared: bool = False
    #: the class name where the input says it (a prepared dataset's index), else "" (the label is ``entry.label``, -1 when unknown)
    class_name: str = ""
    #: the video's subset (``train`` / ``val`` / ``test``) where a prepared index says it, else ""
    #: (several splits: ``1:train 2:test 3:train``, see :func:`subset_cell`)
    subset: str = ""

    def known(self) -> list[str]:
        """The index's ``label, class_name, subset`` cells: empty where the input does not say."""
        return [str(self.entry.label) if self.entry.label >= 0 else "", self.class_name, self.subset]


def subset_cell(row: Any, split_columns: Sequence[str]) -> str:
    """The ``subset`` cell of a prepared index ``row``: its ``subset_<split>`` value when the
    dataset was prepared for one split, else ``<split>:<subset>`` for each split, space-separated
    (a video outside a split's lists has an empty subset there and is left out)."""
    values = {}
    for column in split_columns:
        value = getattr(row, column, "")
        values[column.removeprefix("subset_")] = value if isinstance(value, str) else ""  # NaN: not in the split
    if len(values) == 1:
        return next(iter(values.values()))
    return " ".join(f"{split}:{value}" for split, value in values.items() if value)


@dataclass
class FeaturesReport:
    """Counts of the run and the index written."""

    index: Path
    written: int
    skipped: int
    failed: list[tuple[str, str]]


def layer_names(model: nn.Module) -> list[str]:
    """Valid ``--layer`` values: the stages (their last residual block's output) and the placed blocks."""
    stages = [n for n in ("layer1", "layer2", "layer3", "layer4") if hasattr(model, n)]
    return stages + list(getattr(model, "nonlocal_blocks", {}).keys())


def _layer_module(model: nn.Module, layer: str) -> nn.Module:
    valid = layer_names(model)
    if layer not in valid:
        raise InvalidValueError(f"--layer {layer!r} does not exist in this model; valid layers: {', '.join(valid)}")
    blocks = getattr(model, "nonlocal_blocks", {})
    if layer in blocks:
        return blocks[layer]
    return getattr(model, layer)[-1]


def collect_sources(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[FeatureSource]:
    """Videos of folders / files, of a list file (``.txt`` / ``.lst`` / ``.list``), or of a prepared dataset."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    sources: list[FeatureSource] = []
    for item in items:
        path = Path(item)
        if path.is_dir() and (path / "index.csv").is_file():
            from ..data.prepared import load_index

            index = load_index(path)
            splits = [c for c in index.columns if str(c).startswith("subset_")]
            sources += [FeatureSource(VideoEntry(str(path / r.frames_file), int(r.label), int(r.video_frames)),
                                      str(Path(r.path).with_suffix("")), prepared=True,
                                      class_name=str(r.class_name), subset=subset_cell(r, splits))
                        for r in index.itertuples()]
            continue
        if path.is_file() and path.suffix.lower() in (".txt", ".lst", ".list"):
            sources += _file_sources(read_video_list(path))
            continue
        sources += _file_sources(find_videos(path))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InvalidValueError(f"two inputs map to the same output name {dup!r}; featurise them into separate --output-dir folders")
    return sources


def read_video_list(path: Path) -> list[Path]:
    """The videos of a list file: one path per line, as is (spaces included) or quoted
    (``"My clip.avi"``); relative paths from the list's folder; ``#`` starts a comment line.

    Raises:
        InvalidValueError: the list names no video.
        MissingFileError: a listed video does not exist (the first one named with its line number).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidValueError(f"list file {path} is not UTF-8 text ({exc}); save it as UTF-8") from None
    numbered = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) >= 2 and line[0] == line[-1] and line[0] in ("'", '"'):
            line = line[1:-1]
        numbered.append((line_no, Path(line) if Path(line).is_absolute() else path.parent / line))
    if not numbered:
        raise InvalidValueError(f"list file {path} names no videos; put one video path per line")
    missing = [(n, f) for n, f in numbered if not f.is_file()]
    if missing:
        line_no, first = missing[0]
        raise MissingFileError(f"list file {path} names {len(missing)} missing video(s), e.g. line {line_no}: {first}; "
                               "fix the paths (one per line; relative ones are taken from the list's folder)")
    return [f for _, f in numbered]


def _file_sources(files: Sequence[Path]) -> list[FeatureSource]:
    """Names relative to the files' common folder, without suffix (``Class/v``)."""
    resolved = [f.resolve() for f in files]
    common = Path(os.path.commonpath([str(f.parent) for f in resolved]))
    return [FeatureSource(VideoEntry(str(f), -1, None), str(r.relative_to(common).with_suffix("")))
            for f, r in zip(files, resolved)]


class _SourceViews(Dataset):
    """The views ``(V, C, T, H, W)`` of each source (the video-level item of eval), or why it failed."""

    def __init__(self, sources: Sequence[FeatureSource], make: Callable[[list[VideoEntry], bool], ClipDataset]) -> None:
        self.sources = list(sources)
        self.where: list[tuple[bool, int]] = []
        entries: dict[bool, list[VideoEntry]] = {False: [], True: []}
        for src in self.sources:
            self.where.append((src.prepared, len(entries[src.prepared])))
            entries[src.prepared].append(src.entry)
        self.datasets = {kind: make(videos, kind) for kind, videos in entries.items() if videos}

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> dict[str, Any]:
        kind, position = self.where[index]
        try:
            return {"index": index, "views": self.datasets[kind][position]["clip"], "error": None}
        except Exception as exc:  # noqa: BLE001 - reported per video; the run goes on
            return {"index": index, "views": None, "error": failure_reason(exc, self.sources[index].entry.path)}


def _first(batch: list[Any]) -> Any:
    return batch[0]


def extract_features(
    loaded: InferenceModel,
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    layer: str | None = None,
    per_clip: bool = False,
    num_clips: int | None = None,
    num_crops: Literal[1, 3] | None = None,
    backend: Any = None,
    batch_size: int = 16,
    num_workers: int = 0,
    progress: bool = False,
    overwrite: bool = False,
) -> FeaturesReport:
    """Write one ``.npy`` per video and ``index.csv`` to ``out_dir`` (see the module doc).

    Shapes: ``(C,)`` pooled (``(V, C)`` with ``per_clip``); with ``layer`` the map
    ``(C, t, h, w)`` (``(V, C, t, h, w)``). Bad videos are listed in the index with their
    reason; the others are written. Resumable: existing ``.npy`` files are kept — only when
    ``out_dir``'s record (``features.json``: weights, layer, clips, input spec) matches this
    run; other settings are an error naming the difference, unless ``overwrite``
    (:func:`~snl_video.engine.records.check_features_record`).
    """
    model = loaded.model.eval()
    module = _layer_module(model, layer) if layer is not None else None
    sources = collect_sources(inputs)
    out = Path(out_dir)
    crops = num_crops if num_crops is not None else loaded.num_crops
    clips = num_clips if num_clips is not None else loaded.num_clips
    record = features_record(loaded, layer=layer, per_clip=per_clip, backend=backend, num_crops=crops, num_clips=clips)
    check_features_record(out, record, overwrite=overwrite)  # before anything in out is touched
    out.mkdir(parents=True, exist_ok=True)
    write_features_record(out, record)
    make = _dataset_maker(loaded, crops=crops, num_clips=clips, backend=backend)
    rows, todo = _resume_rows(sources, out)
    skipped = len(sources) - len(todo)
    if skipped:
        logger.info("features: %d of %d videos already done in %s (resuming)", skipped, len(sources), out)
    items = _SourceViews([sources[i] for i in todo], make)
    index, written, failed = _extract_pending(loaded, model, module, items, todo, rows, out, per_clip=per_clip,
                                              batch_size=batch_size, num_workers=num_workers, progress=progress)
    if written + skipped == 0:
        first = failed[0] if failed else ("?", "?")
        raise InvalidValueError(f"no features could be extracted: all {len(sources)} video(s) failed "
                         f"(e.g. {first[0]}: {first[1]}); see {index}")
    return FeaturesReport(index, written, skipped, failed)


def _dataset_maker(loaded: InferenceModel, *, crops: Literal[1, 3], num_clips: int,
                   backend: Any) -> Callable[[list[VideoEntry], bool], ClipDataset]:
    """How :class:`_SourceViews` reads its videos: the video-level clip protocol of eval with the
    model's transform, from a prepared dataset's frames or from video files through ``backend``."""
    transform = loaded.transform(crops=crops)
    clip_dataset = functools.partial(ClipDataset, mode="video", transform=transform, num_frames=loaded.num_frames,
                                     stride=loaded.sampling_stride, num_clips=num_clips)

    def make(videos: list[VideoEntry], prepared: bool) -> ClipDataset:
        if prepared:
            return clip_dataset(videos, read_prepared_entry)
        return clip_dataset(videos, functools.partial(read_entry_frames, backend=backend),
                            count_frames=count_entry_frames,
                            read_clips=functools.partial(read_entry_clips, backend=backend))

    return make


def _resume_rows(sources: Sequence[FeatureSource], out: Path) -> tuple[list[list[str]], list[int]]:
    """The index rows of the videos whose ``.npy`` already exists in ``out`` (a file under its final
    name is complete), an empty row for each other video, and the positions of those still to do."""
    rows: list[list[str]] = []
    todo: list[int] = []
    for i, src in enumerate(sources):
        target = out / f"{src.name}.npy"
        if target.is_file():
            shape = np.load(target, mmap_mode="r").shape
            rows.append([src.entry.path, str(target.relative_to(out)), "x".join(map(str, shape)), "ok", *src.known()])
        else:
            rows.append([])
            todo.append(i)
    return rows, todo


def _extract_pending(loaded: InferenceModel, model: nn.Module, module: nn.Module | None, items: _SourceViews,
                     todo: Sequence[int], rows: list[list[str]], out: Path, *, per_clip: bool, batch_size: int,
                     num_workers: int, progress: bool) -> tuple[Path, int, list[tuple[str, str]]]:
    """Featurise the videos still to do, writing each ``.npy`` and its index row as it finishes
    (``rows`` is filled in place); returns the index, the number written and the failures."""
    loader = DataLoader(items, batch_size=1, num_workers=num_workers, collate_fn=_first)
    failed: list[tuple[str, str]] = []
    written = 0
    # The index grows as each video finishes (appended and flushed), so a run killed or
    # failing late (a full disk) keeps an index of everything done; it is rewritten in
    # input order at the end.
    index = _write_index(out, rows)
    try:
        for item in progress_bar(loader, total=len(items), desc="features", unit="video", enabled=progress):
            src = items.sources[item["index"]]
            row = todo[item["index"]]
            if item["error"] is not None:
                failed.append((src.entry.path, item["error"]))
                logger.warning("%s: %s", src.entry.path, item["error"])
                rows[row] = [src.entry.path, "", "", f"failed: {item['error']}", *src.known()]
                append_line(index, _csv_line(rows[row]))
                continue
            feats = _features(model, module, item["views"], device=loaded.device, batch_size=batch_size,
                              amp_dtype=loaded.amp_dtype, channels_last=loaded.channels_last)
            array = (feats if per_clip else feats.mean(0)).numpy().astype(np.float32)
            target = out / f"{src.name}.npy"
            atomic_write(target, lambda f: np.save(f, array))  # (called at once: no late binding)
            written += 1
            rows[row] = [src.entry.path, str(target.relative_to(out)), "x".join(map(str, array.shape)), "ok",
                         *src.known()]
            append_line(index, _csv_line(rows[row]))
    finally:  # the index of what exists, in input order, even when interrupted
        try:
            _write_index(out, rows)
        except OutputWriteError as exc:  # the disk is full: the appended index already lists every row
            logger.warning("%s; the index as appended so far is kept", exc)
    return index, written, failed


def _csv_line(row: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(row)
    return buffer.getvalue()


def _write_index(out: Path, rows: Sequence[Sequence[str]]) -> Path:
    """``index.csv`` of the rows done so far (atomically)."""
    lines = [_csv_line(["video", "features", "shape", "status", "label", "class_name", "subset"])] + [_csv_line(r) for r in rows if r]
    return atomic_write_text(out / "index.csv", "\n".join(lines) + "\n")


@torch.no_grad()
def _features(model: nn.Module, module: nn.Module | None, views: Tensor, *, device: torch.device,
              batch_size: int, amp_dtype: torch.dtype | None = None, channels_last: bool = False) -> Tensor:
    """``(V, C)`` pooled features, or ``(V, C, t, h, w)`` of ``module``'s output (float32;
    ``amp_dtype``: the forward under that autocast, see :mod:`snl_video.engine.precision`)."""
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        return _features_fp(model, module, views, device=device, batch_size=batch_size, channels_last=channels_last)


def _features_fp(model: nn.Module, module: nn.Module | None, views: Tensor, *, device: torch.device,
                 batch_size: int, channels_last: bool) -> Tensor:
    backbone = cast(RegistryModel, model)  # every registry model class has forward_features
    outs = []
    for chunk in views.split(batch_size):
        x = chunk.to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        if module is None:
            outs.append(backbone.forward_features(x).float().cpu())
            continue
        store: dict[str, Tensor] = {}
        # feature_map: an FFC block's (local, global) pair as one map
        handle = module.register_forward_hook(lambda m, i, o: store.setdefault("out", feature_map(o)))
        try:
            backbone.forward_features(x)
        finally:
            handle.remove()
        outs.append(store["out"].float().cpu())
    return torch.cat(outs)
