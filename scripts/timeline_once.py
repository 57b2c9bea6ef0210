#!/usr/bin/env python
"""One timeline prediction of a video with the demo-sized model, timed, in this process.

Usage (normally run by ``scripts/bench_predict.py --long ... --before CHECKOUT``):
    PYTHONPATH=CHECKOUT python scripts/timeline_once.py VIDEO PROBABILITIES.npy

It imports ``snl_video`` from wherever ``PYTHONPATH`` points, so the same measurement runs
against an older checkout of the toolkit (for a same-machine before/after) as well as the
current one: it uses only names that have existed since the timeline did (``build_model``,
``InferenceModel``, ``InputSpec``, ``predict``), and passes the window as ``window_seconds``
/ ``stride_seconds`` or, in older checkouts, ``window`` / ``stride``. The model is
``bench_predict.py``'s: r3d10 at half width + one SNL block, 8x56^2 clips, seed 0, random
weights; ``--window 2 --stride 1``, batches of 16, one torch thread. Prints one JSON line
(``wall_s``, ``peak_rss_mb``, ``windows``) and saves the windows' probabilities.
"""

from __future__ import annotations

import inspect
import json
import resource
import sys
import time

import numpy as np
import torch


def main(argv: list[str]) -> int:
    from snl_video.data.transforms import TORCHVISION_KINETICS_NORMALIZATION
    from snl_video.engine.loading import InferenceModel
    from snl_video.engine.predict import predict
    from snl_video.inputspec import InputSpec
    from snl_video.models import build_model

    if len(argv) != 2:
        raise SystemExit(__doc__)
    video, out = argv
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model("r3d10", num_classes=101, nonlocal_blocks="snl", widen_factor=0.5, conv1_t_size=3).eval()
    norm = TORCHVISION_KINETICS_NORMALIZATION
    spec = InputSpec(num_frames=8, sampling_stride=2, crop_size=56, mean=norm.mean, std=norm.std)
    loaded = InferenceModel(model, "r3d10", [f"c{i}" for i in range(101)], spec, num_clips=1, num_crops=1,
                            reduce="mean_prob", source="bench")
    params = inspect.signature(predict).parameters
    window = ({"window_seconds": 2.0, "stride_seconds": 1.0} if "window_seconds" in params
              else {"window": 2.0, "stride": 1.0})
    with torch.no_grad():
        model(torch.zeros(16, 3, 8, 56, 56))  # first allocations and kernels, outside the timing
    start = time.perf_counter()
    result = predict(video, model=loaded, batch_size=16, top_k=1, **window)
    wall = time.perf_counter() - start
    if result.errors:
        raise SystemExit(f"{video}: {result.errors}")
    np.save(out, np.stack([p.probabilities for p in result.predictions]))
    print(json.dumps({"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "windows": len(result.predictions)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
