"""Map-style clip datasets over prepared videos or the original video files.

One class, :class:`ClipDataset`, does the sampling, the decode-failure accounting and the
transform; what differs between sources is only how frames are read (a callable). Every
dataset has ``__len__`` = number of videos, so ``DistributedSampler`` shards it, and an item
is a dict ``{"clip": float (C, T, H, W) or (V, C, T, H, W), "label": int, "index": int}``:

* ``mode="train"``: one random clip (:func:`~snl_video.data.sampling.random_clip`);
* ``mode="clip"``: the centre clip (:func:`~snl_video.data.sampling.center_clip`), the
  clip-level test protocol;
* ``mode="video"``: ``num_clips`` uniform clips, each through ``transform`` (which may give
  several crops); the views are stacked as ``V = num_clips x crops`` for averaging. With
  ``read_clips`` (video files: :func:`~snl_video.data.video.read_entry_clips`) the clips of
  an item come from one decoding pass instead of one ``read`` each.

Decode failures: at train time a failed read is counted (in a shared-memory tensor that
the DataLoader worker processes all write to, so the count is over the whole run), logged with the file, and replaced by the next video; when
the count exceeds ``max_failure_fraction`` of the dataset (0 by default: any failure), it
raises. At test time a failure always raises: an evaluation must not silently drop videos.

Reproducible augmentation: after :meth:`ClipDataset.set_epoch_seed`, every random draw for
item ``i`` (the clip start, the crop, the flip) comes from generators seeded by
``(seed, i)`` alone. The training clips of an epoch are then the same whatever the number
of loader workers, the number of processes, the batch size or the order the items are
read in: a 2-process run sees exactly the clips of a 1-process run, and a resumed epoch
replays exactly.
"""

from __future__ import annotations

import functools
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..deprecation import renamed_attribute, renamed_keywords
from ..errors import InvalidValueError, SnlVideoError

from .decoding import Backend, DecodeError
from .prepared import load_index, read_clip
from .sampling import ShortPolicy, center_clip, random_clip, uniform_clips
from .video import count_entry_frames, read_entry_clips, read_entry_frames

logger = logging.getLogger(__name__)

__all__ = ["VideoEntry", "ClipDataset", "TooManyDecodeFailures", "prepared_dataset", "split_rows", "video_file_dataset",
           "read_prepared_entry"]

Mode = Literal["train", "clip", "video"]
MAX_LOADER_WORKERS = 128
Subset = Literal["train", "val", "test"]


class TooManyDecodeFailures(SnlVideoError, RuntimeError):
    """More training videos failed to decode than the dataset's threshold allows."""


@dataclass(frozen=True)
class VideoEntry:
    """One video: where its frames are, its 0-based label, and its frame count (None: ask the file).

    The frame count of the *video* is ``video_frames``; ``num_frames`` is the clip length
    everywhere (its old name here, still read and accepted for one release, with a warning).
    """

    path: str
    label: int
    video_frames: int | None = None

    num_frames = renamed_attribute("num_frames", "video_frames")


# VideoEntry(..., num_frames=...) is its old spelling: accepted for one release, with a warning
setattr(VideoEntry, "__init__", renamed_keywords(num_frames="video_frames")(VideoEntry.__init__))


class ClipDataset(Dataset):
    """Clips of ``videos`` read by ``read``, sampled by ``mode`` (see the module doc): ``num_frames``
    frames ``stride`` apart per clip (``clip_len``, the old name of ``num_frames``, is accepted
    for one release)."""

    clip_len = renamed_attribute("clip_len", "num_frames")

    @renamed_keywords(clip_len="num_frames")
    def __init__(
        self,
        videos: Sequence[VideoEntry],
        read: Callable[[VideoEntry, list[int]], Tensor],
        *,
        mode: Mode = "train",
        transform: Callable[[Tensor], Tensor] | None = None,
        num_frames: int = 16,
        stride: int = 1,
        num_clips: int = 10,
        short_policy: ShortPolicy = "loop",
        max_failure_fraction: float = 0.0,
        count_frames: Callable[[VideoEntry], int] | None = None,
        read_clips: Callable[[VideoEntry, list[list[int]]], list[Tensor]] | None = None,
    ) -> None:
        if mode not in ("train", "clip", "video"):
            raise InvalidValueError(f"mode must be 'train', 'clip' or 'video', got {mode!r}")
        if not videos:
            raise InvalidValueError("no videos: check the split, the subset and the prepared index")
        if not 0.0 <= max_failure_fraction <= 1.0:
            raise InvalidValueError(f"max_failure_fraction must be in [0, 1], got {max_failure_fraction}")
        self.videos = list(videos)
        self.read = read
        self.mode = mode
        self.transform = transform
        self.num_frames, self.stride, self.num_clips = num_frames, stride, num_clips
        self.short_policy = short_policy
        self.max_failure_fraction = max_failure_fraction
        self.count_frames = count_frames
        # several clips of one video at once (a video file: one decoding pass for all its views)
        self.read_clips = read_clips
        self.epoch_seed: int | None = None
        # (reads, failures) per process: row 0 the main process, row 1 + k DataLoader worker k.
        # A shared-memory tensor survives fork and spawn alike, and one writer per row needs no lock.
        self._counters = torch.zeros(MAX_LOADER_WORKERS + 1, 2, dtype=torch.int64).share_memory_()

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def labels(self) -> list[int]:
        return [v.label for v in self.videos]

    def failure_report(self) -> dict:
        """Reads and decode failures so far, summed over the main process and all loader workers."""
        reads, failures = self._counters.sum(0).tolist()
        return {"reads": reads, "failures": failures, "allowed": self.allowed_failures}

    def _row(self) -> int:
        info = torch.utils.data.get_worker_info()
        if info is None:
            return 0
        if info.id >= MAX_LOADER_WORKERS:
            raise RuntimeError(f"ClipDataset counts failures for at most {MAX_LOADER_WORKERS} loader workers")
        return 1 + info.id

    def set_epoch_seed(self, seed: int | None) -> None:
        """Seed every random draw of item ``i`` by ``(seed, i)`` (``None``: the global generators).

        Call it before building the epoch's DataLoader (workers copy the dataset when they
        start). Only ``mode="train"`` draws anything at random.
        """
        self.epoch_seed = None if seed is None else int(seed)

    def item_seed(self, index: int) -> int:
        """The seed of item ``index`` under the current epoch seed (a SeedSequence mix, so
        neighbouring seeds and indices give unrelated streams)."""
        if self.epoch_seed is None:
            raise ValueError("no epoch seed set: call set_epoch_seed first")
        return int(np.random.SeedSequence([self.epoch_seed, index]).generate_state(1, np.uint64)[0] >> 1)

    @property
    def allowed_failures(self) -> int:
        return int(self.max_failure_fraction * len(self))

    def _clips(self, entry: VideoEntry, generator: random.Random | None = None) -> list[list[int]]:
        video_frames = entry.video_frames
        if video_frames is None:
            if self.count_frames is None:
                raise ValueError(f"{entry.path}: frame count unknown and no count_frames given")
            video_frames = self.count_frames(entry)
        num_frames, stride, short_policy = self.num_frames, self.stride, self.short_policy
        if self.mode == "train":
            return random_clip(video_frames, generator=generator, num_frames=num_frames, stride=stride,
                               short_policy=short_policy)
        if self.mode == "clip":
            return center_clip(video_frames, num_frames=num_frames, stride=stride, short_policy=short_policy)
        return uniform_clips(video_frames, num_clips=self.num_clips, num_frames=num_frames, stride=stride,
                             short_policy=short_policy)

    def _load(self, entry: VideoEntry, index: int) -> Tensor:
        if self.epoch_seed is not None and self.mode == "train":
            seed = self.item_seed(index)
            # the transforms draw from torch's global generator: fork it, so seeding one item
            # leaves the caller's stream (model dropout, other items) untouched
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return self._load_views(entry, random.Random(seed))
        return self._load_views(entry, None)

    def _load_views(self, entry: VideoEntry, generator: random.Random | None) -> Tensor:
        clips = self._clips(entry, generator)
        if self.read_clips is not None and len(clips) > 1:
            clip_frames = self.read_clips(entry, clips)
        else:
            clip_frames = [self.read(entry, clip) for clip in clips]
        views = []
        for frames in clip_frames:
            views.append(self.transform(frames) if self.transform is not None else frames)
        if self.mode != "video":
            return views[0]
        # each view is (C, T, H, W) or (crops, C, T, H, W): flatten to (V, C, T, H, W)
        return torch.cat([v if v.ndim == 5 else v.unsqueeze(0) for v in views])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} videos")
        attempt = index
        for _ in range(len(self)):
            entry = self.videos[attempt]
            row = self._row()
            self._counters[row, 0] += 1
            try:
                clip = self._load(entry, attempt)
                return {"clip": clip, "label": entry.label, "index": attempt}
            except (DecodeError, IndexError, OSError, ValueError) as exc:
                if self.mode != "train":  # every test video is scored: a bad one cannot be replaced
                    detail = str(exc) if str(exc).startswith(str(entry.path)) else f"{entry.path}: {exc}"
                    raise DecodeError(
                        f"cannot read video {detail} ({self.mode}-level evaluation); evaluation scores every video of "
                        "the subset, so "
                        "remove it from the split list, or (re-)run `snl-video prepare` (it reports unreadable videos "
                        "and leaves them out) and evaluate the prepared folder") from exc
                self._counters[row, 1] += 1
                failures = int(self._counters[:, 1].sum())
                logger.warning("decode failure %d (allowed %d): %s: %s", failures, self.allowed_failures, entry.path, exc)
                if failures > self.allowed_failures:
                    raise TooManyDecodeFailures(
                        f"{failures} decode failures, more than the {self.allowed_failures} allowed "
                        f"(max_failure_fraction={self.max_failure_fraction} of {len(self)} videos); last: "
                        f"{entry.path}: {exc}. Re-run prepare to find and list the bad videos."
                    ) from exc
                attempt = (attempt + 1) % len(self)
        raise TooManyDecodeFailures("every video failed to decode")


def read_prepared_dataset_name(root: str | Path) -> str:
    """The source a prepared directory holds (see :func:`snl_video.data.prepare.read_dataset_name`)."""
    from .prepare import read_dataset_name

    return read_dataset_name(root)


def split_rows(
    index: pd.DataFrame,
    *,
    split: int | str = 1,
    subset: Subset = "train",
    val_fraction: float = 0.0,
    val_seed: int = 0,
    dataset: str = "ucf101",
    where: str = "",
) -> pd.DataFrame:
    """The rows of a prepared index that form ``subset`` of ``split``.

    With ``val_fraction > 0`` the validation set is carved out of the split's training list,
    by (class, group) and reproducibly (:func:`~snl_video.data.splitting.draw_groups`,
    seeded by ``val_seed``), and ``train`` is what remains; the test list is never touched.
    A split prepared with its own ``val`` subset (``prepare folder --val-fraction``,
    ``prepare list --val``) uses that one instead, so ``val_fraction`` must then be 0.
    """
    from .sources import get_source
    from .splitting import draw_groups

    column = f"subset_{split}"
    if column not in index.columns:
        have = sorted(c.removeprefix("subset_") for c in index.columns if c.startswith("subset_"))
        raise InvalidValueError(f"{where} was not prepared for split {split} (it has splits {have}); prepare with --split {split}")
    if subset not in ("train", "val", "test"):
        raise InvalidValueError(f"subset must be 'train', 'val' or 'test', got {subset!r}")
    subsets = index[column].astype(str)
    has_val = bool((subsets == "val").any())
    if val_fraction <= 0 or subset == "test":
        if subset == "val" and not has_val:
            raise InvalidValueError(f"{where} split {split} has no validation subset: set data.val_fraction (e.g. 0.1) to "
                             "carve one out of the training list")
        return index[subsets == subset]
    if has_val:
        raise InvalidValueError(f"{where} split {split} was prepared with its own validation subset: set "
                         "data.val_fraction=0 to use it")
    train = index[subsets == "train"]
    if "group" in train.columns:
        groups = train["group"].astype(str)
    else:  # indices written before groups were recorded: the source knows how to find them
        group_of = get_source(dataset).group_of
        groups = pd.Series([group_of(c, p) for c, p in zip(train["class_name"], train["path"])], index=train.index)
    table = pd.DataFrame({"class_name": train["class_name"], "group": groups, "path": train["path"]})
    drawn = draw_groups(table, [("val", val_fraction)], seed=val_seed, where=f"{where} data.val_fraction: ")
    return train[drawn.to_numpy() == subset]


def prepared_dataset(
    root: str | Path,
    *,
    split: int | str = 1,
    subset: Subset = "train",
    mode: Mode = "train",
    transform: Callable[[Tensor], Tensor] | None = None,
    val_fraction: float = 0.0,
    val_seed: int = 0,
    dataset: str | None = None,
    **kwargs,
) -> ClipDataset:
    """A :class:`ClipDataset` over a prepared directory (``snl-video prepare``), for one split and subset.

    ``dataset``, when given, must be the source the directory was prepared from;
    ``val_fraction`` / ``val_seed``: see :func:`split_rows`.
    """
    root = Path(root)
    held = read_prepared_dataset_name(root)
    if dataset is not None and held != dataset:
        raise InvalidValueError(f"{root} holds a prepared {held!r} dataset but the recipe names data.dataset={dataset!r}; "
                         f"point data.root at a {dataset} directory or set data.dataset={held}")
    index = load_index(root)
    rows = split_rows(index, split=split, subset=subset, val_fraction=val_fraction, val_seed=val_seed,
                      dataset=held, where=str(root))
    videos = [VideoEntry(str(root / r.frames_file), int(r.label), int(r.video_frames)) for r in rows.itertuples()]
    return ClipDataset(videos, read_prepared_entry, mode=mode, transform=transform, **kwargs)


# Readers are module-level (picklable), so datasets work with spawn-started DataLoader workers;
# video files are read by snl_video.data.video.read_entry_frames.
def read_prepared_entry(entry: VideoEntry, indices: list[int]) -> Tensor:
    """Frames ``indices`` of a prepared video (``entry.path`` is its frames file), ``uint8 (T, H, W, 3)``."""
    return read_clip(entry.path, indices)


def video_file_dataset(
    videos_dir: str | Path,
    splits_dir: str | Path,
    *,
    split: int | str = 1,
    subset: Subset = "train",
    mode: Mode = "train",
    backend: Backend | None = None,
    transform: Callable[[Tensor], Tensor] | None = None,
    val_fraction: float = 0.0,
    val_seed: int = 0,
    dataset: str = "ucf101",
    **kwargs,
) -> ClipDataset:
    """A :class:`ClipDataset` decoding the original files with ``backend`` (no preparation).

    Frame counts come from each file's header when it is first sampled (counted by decoding
    when the container declares none: :func:`~snl_video.data.video.count_frames`); a header
    that over-states them (a truncated file) surfaces as a decode failure.
    """
    from .sources import get_source

    source = get_source(dataset)
    if source.split_names is None:  # a folder / list source: its subsets exist only once prepared
        raise InvalidValueError(f"decoding the original files needs official split files (ucf101, hmdb51), not {dataset!r}: "
                         "prepare the dataset and use data.backend=prepared")
    if str(split) not in source.split_names:
        raise InvalidValueError(f"{dataset} has splits {', '.join(source.split_names)}, got {split!r}")
    table = source.read(splits_dir, [int(split)])
    table = split_rows(table.rename(columns={"split": "_split"}).assign(**{f"subset_{split}": table["subset"]}),
                       split=split, subset=subset, val_fraction=val_fraction, val_seed=val_seed, dataset=dataset,
                       where=str(splits_dir))
    videos = [VideoEntry(str(Path(videos_dir) / r.path), int(r.label)) for r in table.itertuples()]
    return ClipDataset(
        videos,
        functools.partial(read_entry_frames, backend=backend),
        mode=mode,
        transform=transform,
        count_frames=count_entry_frames,
        read_clips=functools.partial(read_entry_clips, backend=backend),
        **kwargs,
    )
