"""Data pipeline: dataset sources (UCF-101, HMDB-51, a folder, list files) → one manifest, decoding,
video files (one suffix list, frame counter, reader and centre clip), clip sampling, transforms,
prepared format, datasets, downloads.

Nothing here knows about models. Conventions: frames are ``uint8 (T, H, W, 3)`` at the
decoder boundary and ``float (C, T, H, W)`` after the transforms; frame indices (never
seconds) inside; labels 0-based.
"""

from .decoding import DecodeError, available_backends, read_frames
from .sources import get_source, list_sources
from .ucf101 import SplitFileError, read_class_index, read_split
from .video import VIDEO_SUFFIXES, count_frames, find_videos, read_centre_clip

__all__ = ["DecodeError", "SplitFileError", "VIDEO_SUFFIXES", "available_backends", "count_frames", "find_videos",
           "get_source", "list_sources", "read_centre_clip", "read_class_index", "read_frames", "read_split"]
