"""Clip sampling: small pure functions from a video's frame count to frame indices.

Every sampler has the same signature,
``sampler(video_frames, *, num_frames, stride, generator) -> list[Clip]``, where a ``Clip`` is
a list of ``num_frames`` frame indices (0-based, decode order) and ``stride`` is the step
between consecutive frames of a clip. A clip spans ``(num_frames - 1) * stride + 1`` frames.
``video_frames`` is the length of the video, ``num_frames`` the length of a clip (the recipe's
``data.num_frames``); ``clip_len``, its old name here, is accepted for one release.

Policy for videos shorter than that span (``short_policy``):

* ``"loop"`` (default, as 3D-ResNets-PyTorch's ``LoopPadding``): take the frames
  ``0, stride, 2*stride, ...`` that exist and repeat that list cyclically up to
  ``num_frames`` (e.g. 5 frames, clip 8, stride 1 -> ``0 1 2 3 4 0 1 2``);
* ``"error"``: raise ``ValueError``.

Protocols:

* :func:`random_clip` (training): one clip, start uniform over every start that fits.
* :func:`center_clip` (clip-level test, the protocol of our clip accuracy): one clip
  centred in the video, scored on its own with a centre crop. One clip per video makes
  clip accuracy a property of the video set, not of the video lengths.
* :func:`sliding_clips` (every non-overlapping clip, as 3D-ResNets-PyTorch's test does).
* :func:`uniform_clips` (video-level test): ``num_clips`` starts evenly spaced over the
  video; each clip is seen in M spatial crops and the N x M scores are averaged.
"""

from __future__ import annotations

import random
from typing import Callable, Literal, Protocol

from ..deprecation import renamed_keywords
from ..errors import InvalidValueError

__all__ = [
    "Clip",
    "ShortPolicy",
    "ClipSampler",
    "clip_span",
    "loop_pad",
    "random_clip",
    "center_clip",
    "sliding_clips",
    "uniform_clips",
]

Clip = list[int]

#: ``clip_len`` was the clip length's name here before it took its one name, ``num_frames``:
#: still accepted for one release, with a DeprecationWarning.
_renamed = renamed_keywords(clip_len="num_frames")
ShortPolicy = Literal["loop", "error"]


class ClipSampler(Protocol):
    def __call__(
        self, video_frames: int, *, num_frames: int, stride: int, generator: random.Random | None = None
    ) -> list[Clip]: ...


def _check(video_frames: int, num_frames: int, stride: int) -> None:
    if video_frames < 1:
        raise ValueError(f"a video needs at least one frame, got video_frames={video_frames}")
    if num_frames < 1:
        raise InvalidValueError(f"num_frames must be >= 1, got {num_frames}")
    if stride < 1:
        raise InvalidValueError(f"stride must be >= 1, got {stride}")


@_renamed
def clip_span(num_frames: int, stride: int) -> int:
    """Frames covered by one clip, first to last inclusive."""
    return (num_frames - 1) * stride + 1


@_renamed
def loop_pad(video_frames: int, *, num_frames: int, stride: int, short_policy: ShortPolicy = "loop") -> Clip:
    """The clip of a video shorter than one clip span (see the module doc for the policy)."""
    _check(video_frames, num_frames, stride)
    if short_policy == "error":
        raise InvalidValueError(
            f"video has {video_frames} frames, fewer than one clip ({clip_span(num_frames, stride)}); "
            f"use short_policy='loop' or drop the video"
        )
    if short_policy != "loop":
        raise InvalidValueError(f"short_policy must be 'loop' or 'error', got {short_policy!r}")
    available = list(range(0, video_frames, stride))
    return [available[k % len(available)] for k in range(num_frames)]


def _clip_at(start: int, num_frames: int, stride: int) -> Clip:
    return [start + k * stride for k in range(num_frames)]


def _one_clip(
    video_frames: int, num_frames: int, stride: int, short_policy: ShortPolicy, choose_start: Callable[[int], int]
) -> list[Clip]:
    """One clip starting at ``choose_start(video_frames - span)``; short videos by ``short_policy``."""
    _check(video_frames, num_frames, stride)
    span = clip_span(num_frames, stride)
    if video_frames < span:
        return [loop_pad(video_frames, num_frames=num_frames, stride=stride, short_policy=short_policy)]
    return [_clip_at(choose_start(video_frames - span), num_frames, stride)]


@_renamed
def random_clip(
    video_frames: int,
    *,
    num_frames: int = 16,
    stride: int = 1,
    generator: random.Random | None = None,
    short_policy: ShortPolicy = "loop",
) -> list[Clip]:
    """Training: one clip whose start is uniform over ``0 .. video_frames - span``."""
    rng = generator if generator is not None else random
    return _one_clip(video_frames, num_frames, stride, short_policy, lambda last_start: rng.randint(0, last_start))


@_renamed
def center_clip(
    video_frames: int,
    *,
    num_frames: int = 16,
    stride: int = 1,
    generator: random.Random | None = None,
    short_policy: ShortPolicy = "loop",
) -> list[Clip]:
    """Clip-level test: the one clip centred in the video (start ``(video_frames - span) // 2``)."""
    return _one_clip(video_frames, num_frames, stride, short_policy, lambda last_start: last_start // 2)


@_renamed
def sliding_clips(
    video_frames: int,
    *,
    num_frames: int = 16,
    stride: int = 1,
    generator: random.Random | None = None,
    short_policy: ShortPolicy = "loop",
) -> list[Clip]:
    """Every non-overlapping clip from frame 0 (``floor(video_frames / span)`` clips; at least one)."""
    _check(video_frames, num_frames, stride)
    span = clip_span(num_frames, stride)
    if video_frames < span:
        return [loop_pad(video_frames, num_frames=num_frames, stride=stride, short_policy=short_policy)]
    return [_clip_at(start, num_frames, stride) for start in range(0, video_frames - span + 1, span)]


@_renamed
def uniform_clips(
    video_frames: int,
    *,
    num_frames: int = 16,
    stride: int = 1,
    num_clips: int = 10,
    generator: random.Random | None = None,
    short_policy: ShortPolicy = "loop",
) -> list[Clip]:
    """Video-level test: ``num_clips`` clips with starts ``round(i * (video_frames - span) / (num_clips - 1))``.

    The first clip starts at frame 0 and the last ends at the last frame; clips overlap
    when the video is short. ``num_clips=1`` gives the centre clip. A video shorter than
    one span gives ``num_clips`` copies of its loop-padded clip, so every video yields the
    same number of views.
    """
    _check(video_frames, num_frames, stride)
    if num_clips < 1:
        raise InvalidValueError(f"num_clips must be >= 1, got {num_clips}")
    span = clip_span(num_frames, stride)
    if video_frames < span:
        return [loop_pad(video_frames, num_frames=num_frames, stride=stride, short_policy=short_policy)] * num_clips
    if num_clips == 1:
        return center_clip(video_frames, num_frames=num_frames, stride=stride)
    room = video_frames - span
    # integer arithmetic, round half up: no float drift between platforms
    starts = [(2 * i * room + (num_clips - 1)) // (2 * (num_clips - 1)) for i in range(num_clips)]
    return [_clip_at(s, num_frames, stride) for s in starts]
