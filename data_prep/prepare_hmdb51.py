"""Prepare a hmdb51 dataset: a thin entry point for ``snl-video prepare hmdb51`` (same arguments; see its --help)."""

import sys

from snl_video.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "hmdb51", *sys.argv[1:]]))
