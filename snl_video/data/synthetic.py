"""Synthetic datasets (UCF-101, HMDB-51, class folders, lists) whose classes differ only in motion.

Each video shows a coloured square (or a bar) over a static random texture. Position,
colour and texture are random per video and drawn the same way for every class; the
square wraps around the frame edges, so its position in any single frame is uniform.
What tells the classes apart is only how things move over time: the direction and speed
of the square, or the sense of rotation of the bar. A model that looks at one frame is
at chance; one that uses time can learn it. The tree, the file names
(``Class/v_Class_gGG_cCC.avi``) and the split files (CRLF, 1-based labels, groups 1-7 /
8-14 / 15-21 held out for splits 1 / 2 / 3) follow the official release, so the whole
pipeline runs on it unchanged. Generation is deterministic given the seed.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ..deprecation import renamed_keywords
from ..errors import InvalidValueError
from ..progress import progress as _progress

logger = logging.getLogger(__name__)

__all__ = ["MotionClass", "motion_classes", "encode_avi", "render_video", "make_synthetic_ucf101", "held_out_groups",
           "make_synthetic_hmdb51", "make_synthetic_folder", "make_synthetic_list", "write_crlf_lines"]

WIDTH, HEIGHT, FPS = 320, 240, 25
NUM_GROUPS = 25

_DIRECTIONS = {
    "Right": (1, 0), "Left": (-1, 0), "Up": (0, -1), "Down": (0, 1),
    "UpRight": (1, -1), "UpLeft": (-1, -1), "DownRight": (1, 1), "DownLeft": (-1, 1),
}
_SPEEDS = {"Slow": 1.5, "": 3.5, "Fast": 7.0}  # pixels per frame


@dataclass(frozen=True)
class MotionClass:
    """One class: a square moving with ``velocity`` (px/frame), or a bar rotating at ``spin`` (rad/frame)."""

    name: str
    velocity: tuple[float, float] = (0.0, 0.0)
    spin: float = 0.0


def motion_classes() -> list[MotionClass]:
    """The catalogue, ordered so that the first K mix directions, speeds and rotation."""
    out = []
    for speed_name in ("", "Fast", "Slow"):
        for dname, (dx, dy) in _DIRECTIONS.items():
            norm = math.hypot(dx, dy)
            s = _SPEEDS[speed_name]
            out.append(MotionClass(f"Move{dname}{speed_name}", velocity=(s * dx / norm, s * dy / norm)))
        if speed_name == "":
            out.append(MotionClass("RotateClockwise", spin=0.15))
            out.append(MotionClass("RotateCounterclockwise", spin=-0.15))
    return out


def held_out_groups(split: int) -> range:
    """The groups held out as test videos in official split ``split`` (1: groups 1-7, ...)."""
    return range(7 * (split - 1) + 1, 7 * split + 1)


def render_video(motion: MotionClass, video_frames: int, rng: np.random.Generator, *, noise: float = 0.0) -> np.ndarray:
    """``uint8 (T, 240, 320, 3)`` frames of one video of ``motion``; ``noise`` adds per-frame
    Gaussian pixel noise of that standard deviation (camera-like: harder to compress)."""
    texture = rng.integers(40, 110, size=(HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    background = np.kron(texture, np.ones((8, 8, 1), np.uint8))
    color = rng.integers(150, 256, size=3).astype(np.uint8)
    frames = np.repeat(background[None], video_frames, axis=0)
    if motion.spin == 0.0:
        side = 40
        x0, y0 = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        for t in range(video_frames):
            x = int(round(x0 + motion.velocity[0] * t)) % WIDTH
            y = int(round(y0 + motion.velocity[1] * t)) % HEIGHT
            rows = (y + np.arange(side)) % HEIGHT
            cols = (x + np.arange(side)) % WIDTH
            frames[t][np.ix_(rows, cols)] = color
    else:
        half = 36
        cx = int(rng.integers(half, WIDTH - half))
        cy = int(rng.integers(half, HEIGHT - half))
        theta0 = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[-half:half, -half:half].astype(np.float32)
        for t in range(video_frames):
            theta = theta0 + motion.spin * t
            along = xx * math.cos(theta) + yy * math.sin(theta)
            across = -xx * math.sin(theta) + yy * math.cos(theta)
            mask = (np.abs(along) < half - 2) & (np.abs(across) < 5)
            frames[t, cy - half : cy + half, cx - half : cx + half][mask] = color
    if noise > 0:
        for t in range(video_frames):
            grain = rng.normal(0.0, noise, size=frames.shape[1:]).astype(np.float32)
            frames[t] = np.clip(frames[t] + grain, 0, 255).astype(np.uint8)
    return frames


def encode_avi(
    frames: np.ndarray, path: str | Path, *, fps: int = FPS, gop_size: int = 12, max_b_frames: int = 0, bit_rate: int = 1_500_000
) -> None:
    """Write ``uint8 (T, H, W, 3)`` frames as an MPEG-4 Part 2 AVI (like UCF-101's xvid), atomically."""
    import av

    path = Path(path)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    try:
        with av.open(str(tmp), "w", format="avi") as container:
            stream = container.add_stream("mpeg4", rate=fps)
            stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
            stream.pix_fmt = "yuv420p"
            stream.bit_rate = bit_rate
            stream.codec_context.gop_size = gop_size
            stream.codec_context.max_b_frames = max_b_frames
            stream.codec_context.thread_count = 1
            stream.codec_tag = "XVID"
            for array in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_crlf_lines(path: Path, lines: list[str]) -> None:
    """Write ``lines`` as ASCII with CRLF line ends, as the official UCF-101 split files are
    (``classInd.txt``, ``trainlist0N.txt``); through a temporary file, then renamed."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes("".join(line + "\r\n" for line in lines).encode("ascii"))
    os.replace(tmp, path)


@renamed_keywords(num_frames="video_frames")  # its old name, for one release
def make_synthetic_ucf101(
    out: str | Path,
    *,
    num_classes: int = 10,
    videos_per_class: int = 10,
    video_frames: int = 40,
    frame_jitter: int = 8,
    seed: int = 0,
    noise: float = 0.0,
    bit_rate: int = 1_500_000,
    progress: bool = True,
) -> Path:
    """Write ``out/UCF-101/<Class>/*.avi`` and ``out/ucfTrainTestlist/*.txt``; return ``out``.

    Video ``i`` of a class goes to group ``1 + i * 25 // videos_per_class`` (clips numbered
    within the group), so every split holds out about 7/25 of each class, as UCF-101 does.
    Each video has ``video_frames + randint(0, frame_jitter)`` frames. ``noise`` and
    ``bit_rate`` make the files closer to real footage for benchmarks (UCF-101 averages
    about 0.6 Mbit/s); tests keep the clean, tiny default.
    """
    catalogue = motion_classes()
    if not 1 <= num_classes <= len(catalogue):
        raise InvalidValueError(f"--num-classes must be in 1..{len(catalogue)} (the motion catalogue), got {num_classes}")
    if videos_per_class < 1:
        raise InvalidValueError(f"--videos-per-class must be >= 1, got {videos_per_class}")
    if video_frames < 1 or frame_jitter < 0:
        raise InvalidValueError(f"need video_frames >= 1 and frame_jitter >= 0, got {video_frames}, {frame_jitter}")
    out = Path(out)
    video_root, split_root = out / "UCF-101", out / "ucfTrainTestlist"
    split_root.mkdir(parents=True, exist_ok=True)
    classes = catalogue[:num_classes]
    entries: list[tuple[str, int, int]] = []  # (relative path, 1-based label, group)
    jobs = []
    for label, motion in enumerate(classes):
        (video_root / motion.name).mkdir(parents=True, exist_ok=True)
        clip_in_group: dict[int, int] = {}
        for i in range(videos_per_class):
            group = 1 + i * NUM_GROUPS // videos_per_class
            clip_in_group[group] = clip_in_group.get(group, 0) + 1
            rel = f"{motion.name}/v_{motion.name}_g{group:02d}_c{clip_in_group[group]:02d}.avi"
            entries.append((rel, label + 1, group))
            jobs.append((rel, motion, label, i))
    for rel, motion, label, i in _progress(jobs, enabled=progress, desc="synthetic videos", unit="video"):
        rng = np.random.default_rng([seed, label, i])
        frames = render_video(motion, video_frames + int(rng.integers(0, frame_jitter + 1)), rng, noise=noise)
        encode_avi(frames, video_root / rel, bit_rate=bit_rate)
    write_crlf_lines(split_root / "classInd.txt", [f"{i + 1} {m.name}" for i, m in enumerate(classes)])
    for split in (1, 2, 3):
        held_out = set(held_out_groups(split))
        write_crlf_lines(split_root / f"trainlist0{split}.txt", [f"{r} {lab}" for r, lab, g in entries if g not in held_out])
        write_crlf_lines(split_root / f"testlist0{split}.txt", [r for r, lab, g in entries if g in held_out])
    logger.info("wrote %d synthetic videos in %d classes to %s", len(entries), num_classes, out)
    return out


# --------------------------------------------------------------------------------------
# The other sources: HMDB-51's format, a class-folder tree, list files
# --------------------------------------------------------------------------------------


def _snake(name: str) -> str:
    """``MoveUpRight`` → ``move_up_right`` (HMDB-51 names its classes in lower snake case)."""
    out = ""
    for ch in name:
        out += ("_" if out and ch.isupper() else "") + ch.lower()
    return out


def _render_all(video_root: Path, jobs: list[tuple[str, MotionClass, int, int]], *, video_frames: int, frame_jitter: int,
                seed: int, progress: bool, desc: str = "synthetic videos") -> None:
    for rel, motion, label, i in _progress(jobs, enabled=progress, desc=desc, unit="video"):
        rng = np.random.default_rng([seed, label, i])
        frames = render_video(motion, video_frames + int(rng.integers(0, frame_jitter + 1)), rng)
        path = video_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        encode_avi(frames, path)


def _check_counts(num_classes: int, **counts: int) -> list[MotionClass]:
    catalogue = motion_classes()
    if not 1 <= num_classes <= len(catalogue):
        raise InvalidValueError(f"--num-classes must be in 1..{len(catalogue)} (the motion catalogue), got {num_classes}")
    for name, value in counts.items():
        if value < 1:
            raise InvalidValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    return catalogue[:num_classes]


@renamed_keywords(num_frames="video_frames")  # its old name, for one release
def make_synthetic_hmdb51(
    out: str | Path,
    *,
    num_classes: int = 4,
    train_per_class: int = 8,
    test_per_class: int = 4,
    unused_per_class: int = 2,
    clips_per_source: int = 2,
    video_frames: int = 24,
    frame_jitter: int = 6,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write ``out/hmdb51_org/<class>/*.avi`` and ``out/testTrainMulti_7030_splits/`` in HMDB-51's format.

    Class names are lower snake case (``move_right``); files follow the official pattern
    ``<source>_<class>_f_nm_np1_fr_goo_<clip>.avi``, ``clips_per_source`` clips cut from each
    source; each split file lists every video of its class with ``1`` (train), ``2``
    (test) or ``0`` (unused) and a trailing space, as the official files do. The splits
    rotate which sources are held out, whole sources at a time. Prepare it with
    ``--per-class TRAIN,TEST`` (the official 70,30 check is for the real dataset).
    """
    classes = _check_counts(num_classes, train_per_class=train_per_class, test_per_class=test_per_class,
                            clips_per_source=clips_per_source)
    if unused_per_class < 0:
        raise InvalidValueError(f"--unused-per-class must be >= 0, got {unused_per_class}")
    if train_per_class % clips_per_source or test_per_class % clips_per_source or unused_per_class % clips_per_source:
        raise InvalidValueError("--train/--test/--unused-per-class must be multiples of --clips-per-source (whole sources "
                         "on one side)")
    out = Path(out)
    video_root, split_root = out / "hmdb51_org", out / "testTrainMulti_7030_splits"
    split_root.mkdir(parents=True, exist_ok=True)
    per_class = train_per_class + test_per_class + unused_per_class
    jobs = []
    names: dict[str, list[str]] = {}
    for label, motion in enumerate(classes):
        cls = _snake(motion.name)
        names[cls] = []
        for i in range(per_class):
            source, clip = divmod(i, clips_per_source)
            file = f"Src{label:02d}x{source:02d}_{cls}_f_nm_np1_fr_goo_{clip}.avi"
            names[cls].append(file)
            jobs.append((f"{cls}/{file}", motion, label, i))
    _render_all(video_root, jobs, video_frames=video_frames, frame_jitter=frame_jitter, seed=seed, progress=progress)
    for split in (1, 2, 3):
        offset = ((split - 1) * test_per_class) % per_class
        for cls, files in names.items():
            rotated = files[offset:] + files[:offset]
            flags = {f: "2" for f in rotated[:test_per_class]}
            flags.update({f: "1" for f in rotated[test_per_class : test_per_class + train_per_class]})
            lines = [f"{f} {flags.get(f, '0')} " for f in files]
            _write_lines_lf(split_root / f"{cls}_test_split{split}.txt", lines)
    logger.info("wrote a synthetic HMDB-51-format set (%d classes x %d videos) to %s", num_classes, per_class, out)
    return out


def _write_lines_lf(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes("".join(line + "\n" for line in lines).encode("ascii"))
    os.replace(tmp, path)


@renamed_keywords(num_frames="video_frames")  # its old name, for one release
def make_synthetic_folder(
    out: str | Path,
    *,
    num_classes: int = 4,
    videos_per_class: int = 10,
    clips_per_group: int = 2,
    video_frames: int = 24,
    frame_jitter: int = 6,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write ``out/videos/<Class>/<Class>_gGG_cCC.avi`` (``clips_per_group`` clips per group):
    a class-folder tree for ``prepare folder --group-regex '_g([0-9]+)_'``. Returns ``out/videos``."""
    classes = _check_counts(num_classes, videos_per_class=videos_per_class, clips_per_group=clips_per_group)
    root = Path(out) / "videos"
    jobs = []
    for label, motion in enumerate(classes):
        for i in range(videos_per_class):
            group, clip = divmod(i, clips_per_group)
            jobs.append((f"{motion.name}/{motion.name}_g{group + 1:02d}_c{clip + 1:02d}.avi", motion, label, i))
    _render_all(root, jobs, video_frames=video_frames, frame_jitter=frame_jitter, seed=seed, progress=progress)
    logger.info("wrote a synthetic class-folder set (%d classes x %d videos) to %s", num_classes, videos_per_class, root)
    return root


@renamed_keywords(num_frames="video_frames")  # its old name, for one release
def make_synthetic_list(
    out: str | Path,
    *,
    num_classes: int = 4,
    videos_per_class: int = 10,
    test_per_class: int = 3,
    list_format: str = "mmaction2",
    video_frames: int = 24,
    frame_jitter: int = 6,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write videos under ``out/videos/`` and the lists ``out/train.txt`` / ``out/test.txt``
    (``list_format="mmaction2"``: ``path label`` with 0-based integer labels, plus
    ``out/classes.txt``) or ``out/train.csv`` / ``out/test.csv`` (``"csv"``: a ``path,label``
    header and class names). Returns ``out``."""
    if list_format not in ("mmaction2", "csv"):
        raise InvalidValueError(f"--format must be 'mmaction2' or 'csv', got {list_format!r}")
    classes = _check_counts(num_classes, videos_per_class=videos_per_class, test_per_class=test_per_class)
    if test_per_class >= videos_per_class:
        raise InvalidValueError(f"--test-per-class ({test_per_class}) must be below --videos-per-class ({videos_per_class})")
    out = Path(out)
    jobs = []
    lines: dict[str, list[str]] = {"train": [], "test": []}
    for label, motion in enumerate(classes):
        for i in range(videos_per_class):
            rel = f"{motion.name}/{motion.name}_{i:03d}.avi"
            jobs.append((rel, motion, label, i))
            subset = "test" if i < test_per_class else "train"
            lines[subset].append(f"{rel} {label}" if list_format == "mmaction2" else f"{rel},{motion.name}")
    _render_all(out / "videos", jobs, video_frames=video_frames, frame_jitter=frame_jitter, seed=seed, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    suffix = ".txt" if list_format == "mmaction2" else ".csv"
    for subset, rows in lines.items():
        header = [] if list_format == "mmaction2" else ["path,label"]
        _write_lines_lf(out / f"{subset}{suffix}", header + rows)
    if list_format == "mmaction2":
        _write_lines_lf(out / "classes.txt", [m.name for m in classes])
    logger.info("wrote a synthetic list set (%d classes x %d videos, %s) to %s", num_classes, videos_per_class,
                list_format, out)
    return out
