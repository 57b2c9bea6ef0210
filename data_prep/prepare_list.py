"""Prepare a list dataset: a thin entry point for ``snl-video prepare list`` (same arguments; see its --help)."""

import sys

from snl_video.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "list", *sys.argv[1:]]))
