"""Samplers against hand-computed index lists."""

from __future__ import annotations

import random

import pytest

from snl_video.data.sampling import center_clip, clip_span, loop_pad, random_clip, sliding_clips, uniform_clips


def test_span():
    assert clip_span(16, 1) == 16 and clip_span(16, 2) == 31 and clip_span(1, 5) == 1


def test_loop_padding_as_3d_resnets():
    assert loop_pad(5, num_frames=8, stride=1) == [0, 1, 2, 3, 4, 0, 1, 2]
    assert loop_pad(5, num_frames=8, stride=2) == [0, 2, 4, 0, 2, 4, 0, 2]
    assert loop_pad(1, num_frames=3, stride=1) == [0, 0, 0]
    with pytest.raises(ValueError, match="fewer than one clip"):
        loop_pad(5, num_frames=8, stride=1, short_policy="error")


def test_random_clip_covers_exactly_the_valid_starts():
    rng = random.Random(0)
    starts = {random_clip(20, num_frames=16, stride=1, generator=rng)[0][0] for _ in range(500)}
    assert starts == {0, 1, 2, 3, 4}
    clip = random_clip(40, num_frames=4, stride=3, generator=random.Random(1))[0]
    assert [b - a for a, b in zip(clip, clip[1:])] == [3, 3, 3] and 0 <= clip[0] <= 40 - 10


def test_random_clip_exact_fit_and_short():
    assert random_clip(16, num_frames=16, generator=random.Random(0)) == [list(range(16))]
    assert random_clip(10, num_frames=16, generator=random.Random(0)) == [list(range(10)) + list(range(6))]
    with pytest.raises(ValueError):
        random_clip(10, num_frames=16, short_policy="error")


def test_random_clip_is_reproducible_with_a_generator():
    a = [random_clip(100, generator=random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]


def test_center_clip():
    assert center_clip(20, num_frames=16) == [list(range(2, 18))]
    assert center_clip(21, num_frames=16) == [list(range(2, 18))]  # (21 - 16) // 2 = 2
    assert center_clip(40, num_frames=4, stride=2) == [[16, 18, 20, 22]]  # span 7, start 33 // 2
    assert center_clip(3, num_frames=4) == [[0, 1, 2, 0]]


def test_sliding_clips():
    assert sliding_clips(40, num_frames=16) == [list(range(16)), list(range(16, 32))]
    assert sliding_clips(32, num_frames=16) == [list(range(16)), list(range(16, 32))]
    assert sliding_clips(12, num_frames=4, stride=2) == [[0, 2, 4, 6]]  # span 7: one fits
    assert sliding_clips(15, num_frames=16) == [list(range(15)) + [0]]


def test_uniform_clips():
    assert uniform_clips(36, num_frames=16, num_clips=3) == [list(range(0, 16)), list(range(10, 26)), list(range(20, 36))]
    # room 5 over 4 gaps: starts 0, 1.25, 2.5, 3.75, 5 -> rounded half up 0, 1, 3, 4, 5
    assert [c[0] for c in uniform_clips(21, num_frames=16, num_clips=5)] == [0, 1, 3, 4, 5]
    assert uniform_clips(30, num_frames=16, num_clips=1) == center_clip(30, num_frames=16)
    assert uniform_clips(5, num_frames=8, num_clips=2) == [[0, 1, 2, 3, 4, 0, 1, 2]] * 2
    last = uniform_clips(100, num_frames=8, stride=4, num_clips=4)[-1]
    assert last[-1] == 99 and len(last) == 8


@pytest.mark.parametrize("bad", [dict(video_frames=0), dict(num_frames=0), dict(stride=0)])
def test_argument_errors(bad):
    kwargs = dict(video_frames=10, num_frames=4, stride=1) | bad
    n = kwargs.pop("video_frames")
    for sampler in (random_clip, center_clip, sliding_clips, uniform_clips):
        with pytest.raises(ValueError):
            sampler(n, **kwargs)
    with pytest.raises(ValueError, match="num_clips"):
        uniform_clips(10, num_clips=0)


@pytest.mark.parametrize("video_frames", [1, 7, 16, 17, 31, 200])
@pytest.mark.parametrize("stride", [1, 2])
def test_every_sampler_yields_in_range_clips_of_the_right_length(video_frames, stride):
    for sampler in (random_clip, center_clip, sliding_clips, uniform_clips):
        for clip in sampler(video_frames, num_frames=16, stride=stride, generator=random.Random(0)):
            assert len(clip) == 16 and all(0 <= i < video_frames for i in clip)


def test_the_old_name_of_the_clip_length_is_accepted_for_one_release():
    for sampler in (random_clip, center_clip, sliding_clips, uniform_clips):
        with pytest.warns(DeprecationWarning, match="'clip_len' is deprecated, use 'num_frames'"):
            old = sampler(40, clip_len=8, stride=2, generator=random.Random(0))
        assert old == sampler(40, num_frames=8, stride=2, generator=random.Random(0))
    with pytest.raises(TypeError, match="both 'clip_len' and 'num_frames'"):
        center_clip(40, clip_len=8, num_frames=8)
