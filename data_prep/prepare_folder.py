"""Prepare a folder dataset: a thin entry point for ``snl-video prepare folder`` (same arguments; see its --help)."""

import sys

from snl_video.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "folder", *sys.argv[1:]]))
