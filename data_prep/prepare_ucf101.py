"""Prepare UCF-101: a thin entry point for ``snl-video prepare ucf101`` (same arguments).

    python data_prep/prepare_ucf101.py --videos UCF-101 --splits ucfTrainTestlist --output-dir data/ucf101 --num-workers 8
"""

import sys

from snl_video.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "ucf101", *sys.argv[1:]]))
