"""Renamed command-line options: the new spelling is what the code reads; the old one still works, with one warning line."""

from __future__ import annotations

import argparse
import logging

import pytest

from snl_video.cli import build_parser
from snl_video.commands.renamed import add_renamed_option

# (verb and positional arguments, new spelling, old spelling, value, namespace attribute, parsed value)
RENAMED = [
    (["predict", "--checkpoint", "c.pt", "v.mp4"], "--output-file", "--out", "p.csv", "output_file", "p.csv"),
    (["predict", "--checkpoint", "c.pt", "v.mp4"], "--window-seconds", "--window", "2.5", "window_seconds", 2.5),
    (["predict", "--checkpoint", "c.pt", "v.mp4"], "--stride-seconds", "--stride", "1", "stride_seconds", 1.0),
    (["export", "--checkpoint", "c.pt", "--format", "pt2", "--output-file", "m.pt2"], "--num-frames", "--frames", "8",
     "num_frames", 8),
    (["export", "--checkpoint", "c.pt", "--format", "pt2"], "--output-file", "--out", "m.pt2", "output_file", "m.pt2"),
    (["profile", "--model", "r3d18"], "--num-frames", "--frames", "8", "num_frames", 8),
    (["spectrum", "--model", "r3d18", "v.mp4", "--output-dir", "s"], "--num-frames", "--frames", "8", "num_frames", 8),
    (["explain", "--checkpoint", "c.pt", "v.mp4"], "--output-dir", "--out", "d", "output_dir", "d"),
    (["features", "--checkpoint", "c.pt", "v.mp4"], "--output-dir", "--out", "d", "output_dir", "d"),
    (["eval", "--checkpoint", "c.pt"], "--output-dir", "--out", "d", "output_dir", "d"),
    (["compare", "run_a"], "--output-dir", "--out", "d", "output_dir", "d"),
    (["demo"], "--output-dir", "--out", "d", "output_dir", "d"),
    (["prepare", "folder", "--videos", "v", "--output-dir", "p"], "--num-frames", "--clip-len", "8", "num_frames", 8),
    (["prepare", "folder", "--videos", "v"], "--output-dir", "--out", "p", "output_dir", "p"),
    (["prepare", "list", "--train", "a", "--test", "b", "--root", "r", "--output-dir", "p"], "--class-names", "--classes",
     "names.txt", "class_names", "names.txt"),
    (["make-synthetic", "ucf101"], "--output-dir", "--out", "d", "output_dir", "d"),
    (["predict", "--checkpoint", "c.pt", "v.mp4"], "--num-clips", "--clips", "3", "num_clips", 3),
    (["predict", "--checkpoint", "c.pt", "v.mp4"], "--num-crops", "--crops", "1", "num_crops", 1),
    (["features", "--checkpoint", "c.pt", "v.mp4", "--output-dir", "d"], "--num-workers", "--workers", "2", "num_workers", 2),
    (["prepare", "folder", "--videos", "v", "--output-dir", "p"], "--num-workers", "--workers", "2", "num_workers", 2),
    (["make-synthetic", "ucf101", "--output-dir", "d"], "--num-classes", "--classes", "3", "num_classes", 3),
    (["make-synthetic", "folder", "--output-dir", "d"], "--frames-per-video", "--frames", "12", "frames_per_video", 12),
]


def _value(args: argparse.Namespace, attribute: str):
    value = getattr(args, attribute)
    return str(value) if hasattr(value, "as_posix") else value


@pytest.mark.parametrize("argv, new, old, text, attribute, expected", RENAMED, ids=lambda v: v if isinstance(v, str) else None)
def test_new_and_old_spellings_parse_to_the_same_value(argv, new, old, text, attribute, expected, caplog):
    parser = build_parser()
    with caplog.at_level(logging.WARNING, logger="snl_video.commands.renamed"):
        args_new = parser.parse_args([*argv, new, text])
    assert not caplog.records, "the new spelling warns"
    assert _value(args_new, attribute) == expected
    with caplog.at_level(logging.WARNING, logger="snl_video.commands.renamed"):
        args_old = parser.parse_args([*argv, old, text])
    assert _value(args_old, attribute) == expected
    assert not hasattr(args_old, old.lstrip("-").replace("-", "_")) or old.lstrip("-").replace("-", "_") == attribute
    [record] = caplog.records
    assert f"{old} is deprecated: use {new}" in record.getMessage()


def test_no_old_spelling_is_the_new_spelling_of_another_option():
    """An alias must not shadow a current option of the same verb (argparse would reject it, this names it)."""
    parser = argparse.ArgumentParser()
    add_renamed_option(parser, "--output-dir", "--out")
    with pytest.raises(argparse.ArgumentError):
        add_renamed_option(parser, "--out", type=str)


def test_an_option_without_old_spellings_is_a_plain_option():
    parser = argparse.ArgumentParser()
    action = add_renamed_option(parser, "--num-frames", type=int, default=16)
    assert type(action).__name__ == "_StoreAction" and parser.parse_args([]).num_frames == 16
