"""Renamed keywords and attributes keep working for one release, with a DeprecationWarning naming the new name."""

import warnings

import pytest

from snl_video.deprecation import renamed_attribute, renamed_keywords


@renamed_keywords(clip_len="num_frames")
def _take(video_frames, *, num_frames=16, stride=1):
    return video_frames, num_frames, stride


def test_the_old_keyword_is_passed_under_the_new_name_with_a_warning():
    with pytest.warns(DeprecationWarning, match="'clip_len' is deprecated, use 'num_frames'"):
        assert _take(100, clip_len=8, stride=2) == (100, 8, 2)


def test_the_new_keyword_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _take(100, num_frames=8) == (100, 8, 1)
        assert _take(100) == (100, 16, 1)


def test_both_names_at_once_is_refused():
    with pytest.raises(TypeError, match="both 'clip_len' and 'num_frames'"):
        _take(100, clip_len=8, num_frames=4)


def test_the_warning_points_at_the_caller():
    with pytest.warns(DeprecationWarning) as record:
        _take(1, clip_len=1)
    assert record[0].filename == __file__


class _Holder:
    clip_len = renamed_attribute("clip_len", "num_frames")

    def __init__(self):
        self.num_frames = 12


def test_the_old_attribute_reads_the_new_one_with_a_warning():
    with pytest.warns(DeprecationWarning, match=r"_Holder\.clip_len: 'clip_len' is deprecated, use 'num_frames'"):
        assert _Holder().clip_len == 12
