"""A relational video task: the class is a relation between two events far apart in space and time.

Every video shows two **events** over a static random texture and moving distractors:

* event 1: a coloured shape in one quadrant, early in the clip;
* event 2: a coloured shape in the **diagonally opposite** quadrant, late in the clip.

The first quadrant, the frames of each event and the first colour are random per video. The
class is a relation between the two events; two relations are offered (``relation=``):

``colour_shift`` (the default, the task of the studies): both shapes are squares and the class
is the step from the first colour to the second on the colour cycle red → green → blue →
yellow → red: ``SameColour`` (+0), ``NextColour`` (+1), ``OppositeColour`` (+2),
``PreviousColour`` (+3). The relation is ordered: which event comes first matters.

``shape_colour`` (harder: at the studies' size no model learned it, docs/relations_task.md):
random shapes (square, disk, cross, ring) and four classes ``SameShapeSameColour``,
``SameShapeOtherColour``, ``OtherShapeSameColour``, ``OtherShapeOtherColour``.

Each event on its own is drawn from the same distribution under every class (a uniform colour
and shape: the second event is a class-given function of a uniform first one, and a
permutation of a uniform draw is uniform), so what any one region shows at any one time —
indeed the whole content of one quadrant over the whole clip — carries no information about
the class. Only a model that compares the two events — across the frame and across the clip —
can tell the classes apart, which is what a non-local block's affinity does in one step.

The videos are written as a class-folder tree (``OUT/videos/<Class>/<Class>_gGG_cCC.avi``,
as ``make-synthetic folder``), prepared with ``snl-video prepare folder``. Generation is
deterministic given the seed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..progress import progress as _progress
from .synthetic import encode_avi
from ..deprecation import renamed_keywords
from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = ["RELATIONS", "RELATION_CLASSES", "SHAPES", "COLOURS", "RelationEvent", "render_relations_video", "relation_events",
           "make_relations_dataset", "quadrant_boxes"]

#: The class names of each relation, in label order.
RELATIONS: dict[str, tuple[str, ...]] = {
    "colour_shift": ("SameColour", "NextColour", "OppositeColour", "PreviousColour"),
    "shape_colour": ("SameShapeSameColour", "SameShapeOtherColour", "OtherShapeSameColour", "OtherShapeOtherColour"),
}
#: The default relation's classes.
RELATION_CLASSES = RELATIONS["colour_shift"]
SHAPES = ("square", "disk", "cross", "ring")
#: Saturated colours, far apart and far from the grey texture and distractors.
COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 235), "yellow": (235, 215, 40)}
#: Quadrants in reading order; the opposite of ``q`` is ``3 - q`` (0 TL <-> 3 BR, 1 TR <-> 2 BL).
QUADRANTS = ((0, 0), (0, 1), (1, 0), (1, 1))


@dataclass(frozen=True)
class RelationEvent:
    """One event: ``shape`` of ``colour`` in ``quadrant`` (0..3) over frames ``[start, stop)``."""

    quadrant: int
    shape: int
    colour: int
    start: int
    stop: int


def relation_events(label: int, video_frames: int, rng: np.random.Generator, *,
                    relation: str = "colour_shift") -> tuple[RelationEvent, RelationEvent]:
    """The two events of a video of class ``label``: the first uniform in colour (and shape) and
    quadrant, early; the second in the opposite quadrant, late, related to the first by the class."""
    duration = max(2, video_frames // 4)
    q = int(rng.integers(0, 4))
    if relation == "colour_shift":
        shape = shape2 = 0  # squares: the colour step is the whole class
        colour = int(rng.integers(0, len(COLOURS)))
        colour2 = (colour + label) % len(COLOURS)
    elif relation == "shape_colour":
        same_shape, same_colour = label in (0, 1), label in (0, 2)
        shape, colour = int(rng.integers(0, len(SHAPES))), int(rng.integers(0, len(COLOURS)))
        shape2 = shape if same_shape else (shape + int(rng.integers(1, len(SHAPES)))) % len(SHAPES)
        colour2 = colour if same_colour else (colour + int(rng.integers(1, len(COLOURS)))) % len(COLOURS)
    else:
        raise InvalidValueError(f"unknown relation {relation!r}; choose one of {', '.join(RELATIONS)}")
    first_start = int(rng.integers(0, max(1, video_frames // 2 - duration) + 1))
    second_start = int(rng.integers(video_frames // 2, video_frames - duration + 1))
    return (RelationEvent(q, shape, colour, first_start, first_start + duration),
            RelationEvent(3 - q, shape2, colour2, second_start, second_start + duration))


def quadrant_boxes(size: int) -> list[tuple[slice, slice]]:
    """``(rows, cols)`` slices of the four quadrants of a ``size x size`` frame, in reading order."""
    half = size // 2
    return [(slice(r * half, (r + 1) * half), slice(c * half, (c + 1) * half)) for r, c in QUADRANTS]


def _shape_mask(shape: int, side: int) -> np.ndarray:
    y, x = np.mgrid[0:side, 0:side].astype(np.float64)
    c = (side - 1) / 2
    r = np.hypot(y - c, x - c)
    if SHAPES[shape] == "square":
        return np.ones((side, side), dtype=bool)
    if SHAPES[shape] == "disk":
        return r <= side / 2
    if SHAPES[shape] == "cross":
        bar = side // 3
        return (np.abs(y - c) < bar / 2 + 0.5) | (np.abs(x - c) < bar / 2 + 0.5)
    return (r <= side / 2) & (r >= side / 4)  # ring


@renamed_keywords(num_frames="video_frames")  # its old name, for one release
def render_relations_video(label: int, rng: np.random.Generator, *, size: int = 64, video_frames: int = 16,
                           distractors: int = 3, relation: str = "colour_shift") -> np.ndarray:
    """``uint8 (T, H, W, 3)`` frames of one video of class ``label`` (0-based in :data:`RELATION_CLASSES`)."""
    if not 0 <= label < 4:
        raise ValueError(f"label must be in 0..3, got {label}")
    texture = rng.integers(70, 130, size=(size // 4, size // 4, 1)).repeat(4, 0).repeat(4, 1)
    background = np.broadcast_to(texture, (size, size, 3)).astype(np.uint8)
    frames = np.repeat(background[None], video_frames, axis=0).copy()
    # distractors: small grey squares gliding across the frame (wrapping), over every region at every time
    dot = max(2, size // 12)
    for _ in range(distractors):
        pos = rng.uniform(0, size, 2)
        vel = rng.uniform(-size / 10, size / 10, 2)
        grey = int(rng.integers(160, 250))
        for t in range(video_frames):
            r, c = (pos + vel * t).astype(int) % size
            rows, cols = np.arange(r, r + dot) % size, np.arange(c, c + dot) % size
            frames[t][np.ix_(rows, cols)] = grey
    side = max(5, size * 5 // 16)
    half = size // 2
    for event in relation_events(label, video_frames, rng, relation=relation):
        qr, qc = QUADRANTS[event.quadrant]
        jitter = rng.integers(-(half - side) // 2, (half - side) // 2 + 1, 2)
        top = qr * half + (half - side) // 2 + int(jitter[0])
        left = qc * half + (half - side) // 2 + int(jitter[1])
        mask = _shape_mask(event.shape, side)
        colour = np.array(list(COLOURS.values())[event.colour], dtype=np.uint8)
        for t in range(event.start, min(event.stop, video_frames)):
            frames[t, top:top + side, left:left + side][mask] = colour
    return frames


@renamed_keywords(num_frames="video_frames")  # its old name, for one release
def make_relations_dataset(out: str | Path, *, videos_per_class: int = 60, clips_per_group: int = 2, size: int = 64,
                           video_frames: int = 16, distractors: int = 3, seed: int = 0, relation: str = "colour_shift",
                           progress: bool = True) -> Path:
    """Write ``out/videos/<Class>/<Class>_gGG_cCC.avi`` (``videos_per_class`` videos for each of the
    four classes of ``relation``, ``clips_per_group`` per group) for ``snl-video prepare folder``;
    return ``out/videos``.

    ``video_frames``: every video is exactly this long, so a clip of ``video_frames / stride`` frames
    at that stride sees both events (the first in the first half, the second in the second).
    """
    if videos_per_class < 1 or clips_per_group < 1:
        raise InvalidValueError(f"need videos_per_class >= 1 and clips_per_group >= 1, got {videos_per_class}, "
                         f"{clips_per_group}")
    if size < 16 or size % 2 or video_frames < 8:
        raise InvalidValueError(f"need an even size >= 16 and video_frames >= 8, got size {size}, video_frames {video_frames}")
    if relation not in RELATIONS:
        raise InvalidValueError(f"unknown relation {relation!r}; choose one of {', '.join(RELATIONS)}")
    root = Path(out) / "videos"
    jobs = []
    for label, name in enumerate(RELATIONS[relation]):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(videos_per_class):
            group, clip = divmod(i, clips_per_group)
            jobs.append((root / name / f"{name}_g{group + 1:02d}_c{clip + 1:02d}.avi", label, i))
    for path, label, i in _progress(jobs, enabled=progress, desc="relations videos", unit="video"):
        rng = np.random.default_rng([seed, label, i])
        frames = render_relations_video(label, rng, size=size, video_frames=video_frames, distractors=distractors,
                                        relation=relation)
        encode_avi(frames, path)
    logger.info("wrote the relations task (%s: %d classes x %d videos, %dx%d, %d frames) to %s", relation,
                len(RELATIONS[relation]), videos_per_class, size, size, video_frames, root)
    return root
