#!/usr/bin/env python
"""Throughput of ``snl-video predict`` on a folder of UCF-101-like AVIs: videos/s, decode vs model share.

Usage:
    python scripts/bench_predict.py                          # defaults below, a few minutes on 2 cores
    python scripts/bench_predict.py --videos 6 --workers 0 2 --backends pyav decord
    python scripts/bench_predict.py --model r3d50 --nonlocal snl --clips 10 --crops 3   # the paper's model

What is measured: :func:`snl_video.predict` end to end (decode, sample the video-level
views, transform, forward, average) on synthetic videos at about UCF-101's size and bit rate
(320x240, 25 fps, MPEG-4 with noise), for each decoding backend and each loader-worker count.
``data share`` is the fraction of the wall time the model loop waited for decoded views (with
0 workers: all decoding and transforms; with N workers: what the workers could not hide),
``model share`` the fraction spent in forward passes and averaging. Ratios are against the
first row (PyAV, first worker count) measured in the same run. The model is randomly
initialised (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snl_video.benchmarking import format_table  # noqa: E402
from snl_video.data.decoding import available_backends  # noqa: E402
from snl_video.data.synthetic import make_synthetic_ucf101  # noqa: E402
from snl_video.data.transforms import TORCHVISION_KINETICS_NORMALIZATION  # noqa: E402
from snl_video.data.video import find_videos  # noqa: E402
from snl_video.engine.loading import InferenceModel  # noqa: E402
from snl_video.inputspec import InputSpec  # noqa: E402
from snl_video.engine.predict import predict  # noqa: E402
from snl_video.models import build_model  # noqa: E402

logger = logging.getLogger("bench_predict")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folder", type=Path, default=None, help="videos to use (default: generate synthetic ones)")
    p.add_argument("--videos", type=int, default=8, help="synthetic videos to generate (default 8)")
    p.add_argument("--frames", type=int, default=120, help="frames per synthetic video (default 120: ~5 s)")
    p.add_argument("--model", default="r3d18", help="model registry name (default r3d18)")
    p.add_argument("--nonlocal", dest="nonlocal_kind", default="snl", help="a non-local kind or 'none' (default snl)")
    p.add_argument("--frames-per-clip", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--clips", type=int, default=5, help="uniform clips per video (default 5)")
    p.add_argument("--crops", type=int, choices=[1, 3], default=1)
    p.add_argument("--backends", nargs="+", default=None, help="default: every available backend")
    p.add_argument("--workers", nargs="+", type=int, default=[0, 2], help="loader worker counts (default 0 2)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    backends = args.backends or available_backends()

    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        folder = args.folder
        if folder is None:
            make_synthetic_ucf101(tmp, num_classes=min(args.videos, 8), videos_per_class=max(1, args.videos // 8),
                                  num_frames=args.frames, frame_jitter=0, noise=6.0, bit_rate=600_000,
                                  progress=False)
            folder = Path(tmp) / "UCF-101"
        videos = find_videos(folder)[: args.videos]
        torch.manual_seed(0)
        kind = None if args.nonlocal_kind == "none" else args.nonlocal_kind
        model = build_model(args.model, num_classes=101, nonlocal_blocks=kind).eval()
        norm = TORCHVISION_KINETICS_NORMALIZATION
        spec = InputSpec(num_frames=args.frames_per_clip, sampling_stride=1, crop_size=args.size, mean=norm.mean,
                         std=norm.std)
        loaded = InferenceModel(model, args.model, [f"c{i}" for i in range(101)], spec, num_clips=args.clips,
                                num_crops=args.crops, reduce="mean_prob", source="bench")
        logger.info("%d videos, %s%s, %d clips x %d crops of %dx%d, %d torch threads", len(videos), args.model,
                    f" + {kind}" if kind else "", args.clips, args.crops, args.frames_per_clip, args.size,
                    torch.get_num_threads())
        predict(videos[:1], model=loaded, backend=backends[0])  # warm-up: imports, first allocations
        rows = []
        for backend in backends:
            for workers in args.workers:
                timings: dict[str, float] = {}
                start = time.perf_counter()
                result = predict(videos, model=loaded, backend=backend, num_workers=workers, timings=timings)
                wall = time.perf_counter() - start
                if result.errors:
                    raise SystemExit(f"{backend}: {len(result.errors)} videos failed: {result.errors[0]}")
                rows.append({"backend": backend, "workers": workers, "videos_per_s": len(videos) / wall,
                             "s_per_video": wall / len(videos), "data_share": timings["data_s"] / wall,
                             "model_share": timings["model_s"] / wall})
                logger.info("%s, %d workers: %.3f videos/s", backend, workers, rows[-1]["videos_per_s"])
        base = rows[0]["videos_per_s"]
        for r in rows:
            r["ratio"] = r["videos_per_s"] / base
    print(format_table(rows, [("backend", "backend", ""), ("workers", "loader workers", "d"),
                              ("videos_per_s", "videos/s", ".3f"), ("s_per_video", "s/video", ".2f"),
                              ("data_share", "data share", ".0%"), ("model_share", "model share", ".0%"),
                              ("ratio", f"x {rows[0]['backend']}/{rows[0]['workers']}w", ".2f")]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
