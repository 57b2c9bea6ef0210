#!/usr/bin/env python
"""Training-input throughput of the prepared format vs decoding the AVIs, same videos, same run.

Usage:
    python scripts/bench_data.py                      # synthetic UCF-101-like videos (~180 frames, ~0.6 Mbit/s)
    python scripts/bench_data.py --quick              # fewer, shorter videos: under a minute
    python scripts/bench_data.py --videos UCF-101 --splits ucfTrainTestlist --limit 200

What is measured, per worker (one process, one thread: a DataLoader worker's share):
decoded + augmented training clips per second (random 16-frame clip, random-resized crop to
112, flip, normalise), from (a) our prepared .npy files, (a') our prepared .jpegs files
(storage="jpeg"; decoded by torchcodec, and by the PIL fallback), (b) PyAV on the AVIs, (c) decord
on the AVIs, (d) torchcodec on the AVIs (if installed), (e) pytorchvideo's
LabeledVideoDataset (PyAV decoder, random clip of the same duration, same augmentation).
Also the preparation rate (videos/s per worker) and both prepared sizes relative to the AVIs.
Ratios are against the PyAV and decord rows measured in this run, in --rounds interleaved
rounds (every row once per round), so that load from other processes hits all rows alike.
Videos that ``prepare`` skips (damaged, too short) are left out of every row, as it reports. Files are read warm from
the page cache in every row (they were just written or read), so this compares decoding
and augmentation cost, not disk speed.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import snl_video.data.prepared as prepared_module  # noqa: E402
from snl_video.benchmarking import format_table  # noqa: E402
from snl_video.data.datasets import prepared_dataset, video_file_dataset  # noqa: E402
from snl_video.data.decoding import available_backends  # noqa: E402
from snl_video.data.prepare import PrepareSettings, prepare_ucf101  # noqa: E402
from snl_video.data.synthetic import make_synthetic_ucf101  # noqa: E402
from snl_video.data.transforms import TORCHVISION_KINETICS_NORMALIZATION, train_transform  # noqa: E402
from snl_video.data.ucf101 import read_split  # noqa: E402

logger = logging.getLogger("bench_data")


def _tree_bytes(root: Path, suffix: str) -> int:
    return sum(p.stat().st_size for p in root.rglob(f"*{suffix}"))


def _interleaved_throughput(getters: dict, n_items: int, min_seconds: float, rounds: int,
                            failures: dict[str, str]) -> dict[str, float]:
    """Clips/s of each getter, measured in ``rounds`` interleaved rounds (each round runs every
    row for >= n_items / rounds items and >= min_seconds / rounds s), so that load from other
    processes on a shared machine hits every row alike; the rate is all items over all time.
    A row that raises is dropped and its error put in ``failures`` (reported, not fatal)."""
    done = {name: 0 for name in getters}
    spent = {name: 0.0 for name in getters}
    per_items, per_seconds = max(1, -(-n_items // rounds)), min_seconds / rounds
    for _ in range(rounds):
        for name, get in getters.items():
            if name in failures:
                continue
            start, k = time.perf_counter(), 0
            try:
                while k < per_items or time.perf_counter() - start < per_seconds:
                    get(done[name] + k)
                    k += 1
                    if k >= 20 * per_items:
                        break
            except Exception as exc:
                failures[name] = f"failed after {done[name] + k} clips: {str(exc).splitlines()[0][:200]}"
                logger.warning("%s: %s", name, failures[name])
            spent[name] += time.perf_counter() - start
            done[name] += k
    return {name: done[name] / spent[name] for name in getters if name not in failures}


def _pytorchvideo_reader(videos_dir: Path, table, transform, num_frames: int, fps: float):
    """pytorchvideo's LabeledVideoDataset (iterable) with a random clip of num_frames frames' duration."""
    from pytorchvideo.data import LabeledVideoDataset, make_clip_sampler

    paths = [(str(videos_dir / p), {"label": int(lab)}) for p, lab in zip(table["path"], table["label"])]

    def to_clip(sample: dict) -> dict:
        video = sample["video"]  # float (C, T, H, W), 0..255, T about num_frames
        keep = torch.linspace(0, video.shape[1] - 1, num_frames).round().long()
        frames = video[:, keep].permute(1, 2, 3, 0).round().clamp(0, 255).to(torch.uint8)
        return {"clip": transform(frames), "label": sample["label"]}

    dataset = LabeledVideoDataset(
        paths, make_clip_sampler("random", num_frames / fps), video_sampler=torch.utils.data.RandomSampler,
        transform=to_clip, decode_audio=False, decoder="pyav",
    )
    iterator = iter(dataset)

    def get(_i: int) -> dict:
        nonlocal iterator
        try:
            return next(iterator)
        except StopIteration:
            iterator = iter(dataset)
            return next(iterator)

    return get


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, help="a UCF-101 video tree (default: generate synthetic videos)")
    parser.add_argument("--splits", type=Path, help="its ucfTrainTestlist/")
    parser.add_argument("--work", type=Path, default=Path("runs/bench_data"), help="scratch + outputs")
    parser.add_argument("--quick", action="store_true", help="a small run (under a minute)")
    parser.add_argument("--items", type=int, default=60, help="clips per row (at least; rows also run >= --seconds)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N train videos")
    parser.add_argument("--jpeg-quality", type=int, default=90, help="quality of the JPEG-storage row")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved measuring rounds over all rows")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("snl_video.data.datasets").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    random.seed(0)
    torch.manual_seed(0)

    work = args.work
    if args.videos is None:
        source = work / "synthetic"
        if not (source / "ucfTrainTestlist" / "testlist03.txt").is_file():
            classes, per_class, frames, jitter = (4, 5, 120, 60) if args.quick else (10, 8, 150, 60)
            logger.info("generating %d x %d synthetic videos of %d-%d frames", classes, per_class, frames, frames + jitter)
            # grain + 0.6 Mbit/s: about UCF-101's bit rate, so decoding costs what it would there
            make_synthetic_ucf101(source, num_classes=classes, videos_per_class=per_class, video_frames=frames,
                                  frame_jitter=jitter, seed=0, noise=6.0, bit_rate=600_000, progress=False)
        videos_dir, splits_dir = source / "UCF-101", source / "ucfTrainTestlist"
    else:
        if args.splits is None:
            parser.error("--videos needs --splits")
        videos_dir, splits_dir = args.videos, args.splits

    # the same videos in every row: split 1 train list (optionally the first --limit)
    table = read_split(splits_dir, 1)
    table = table[table["subset"] == "train"]
    if args.limit:
        table = table.iloc[: args.limit]
    bench_splits = work / "bench_splits"
    bench_splits.mkdir(parents=True, exist_ok=True)
    shutil.copy(splits_dir / "classInd.txt", bench_splits / "classInd.txt")
    (bench_splits / "trainlist01.txt").write_text("".join(f"{p} {lab + 1}\r\n" for p, lab in zip(table["path"], table["label"])))
    (bench_splits / "testlist01.txt").write_text("")

    prepared, packed = work / "prepared", work / "prepared_jpeg"
    for folder in (prepared, packed):
        if folder.exists():
            shutil.rmtree(folder)
    start = time.perf_counter()
    report = prepare_ucf101(videos_dir, bench_splits, prepared, splits=[1], workers=1, progress=False,
                            settings=PrepareSettings(storage="npy"))
    prep_seconds = time.perf_counter() - start
    start = time.perf_counter()
    prepare_ucf101(videos_dir, bench_splits, packed, splits=[1], workers=1, progress=False,
                   settings=PrepareSettings(storage="jpeg", jpeg_quality=args.jpeg_quality))
    jpeg_prep_seconds = time.perf_counter() - start
    # every row reads the same videos: those `prepare` made; the ones it skipped (damaged,
    # too short, missing) are left out of the AVI rows too, as it reported
    usable = [r for r in report["videos"] if r["status"] == "ok"]
    skipped = [r for r in report["videos"] if r["status"] != "ok"]
    for r in skipped:
        logger.warning("left out of every row: %s (%s: %s)", r["path"], r["status"], r.get("reason"))
    for path in report.get("missing", []):
        logger.warning("left out of every row: %s (missing)", path)
    if not usable:
        logger.error("prepare made no usable video out of %d; nothing to measure", len(report["videos"]))
        return 1
    table = table[table["path"].isin({r["path"] for r in usable})]
    (bench_splits / "trainlist01.txt").write_text("".join(f"{p} {lab + 1}\r\n" for p, lab in zip(table["path"], table["label"])))
    n_videos = len(usable)
    avi_bytes = sum((videos_dir / p).stat().st_size for p in table["path"])
    npy_bytes = _tree_bytes(prepared / "videos", ".npy")
    jpeg_bytes = _tree_bytes(packed / "videos", ".jpegs")
    frames_total = sum(r["video_frames"] for r in usable)
    logger.info("prepared %d videos (%d frames) in %.1f s (.npy), %.1f s (.jpegs)", n_videos, frames_total,
                prep_seconds, jpeg_prep_seconds)

    transform = train_transform(TORCHVISION_KINETICS_NORMALIZATION)
    rows = []
    getters: dict = {}
    video_bytes: dict[str, float] = {}

    def add(name: str, get, size: int) -> None:
        try:
            get(0)  # the first item: imports, first open; a row that cannot start is reported, not fatal
        except Exception as exc:
            rows.append({"source": name, "skipped": f"failed: {exc}"})
            return
        getters[name] = get
        video_bytes[name] = size / n_videos

    ds = prepared_dataset(prepared, split=1, subset="train", transform=transform)
    add("prepared .npy (ours)", lambda i: ds[i % len(ds)], npy_bytes)
    ds_jpeg = prepared_dataset(packed, split=1, subset="train", transform=transform)
    add(f"prepared .jpegs q{args.jpeg_quality} (ours)", lambda i: ds_jpeg[i % len(ds_jpeg)], jpeg_bytes)
    if prepared_module.jpeg_decoder() is not prepared_module.pil_decode:  # the reader's fallback, for comparison

        def with_pil(i: int):
            chosen = prepared_module.jpeg_decoder
            prepared_module.jpeg_decoder = lambda: prepared_module.pil_decode
            try:
                return ds_jpeg[i % len(ds_jpeg)]
            finally:
                prepared_module.jpeg_decoder = chosen

        add(f"prepared .jpegs q{args.jpeg_quality}, PIL decode", with_pil, jpeg_bytes)
    for backend in ("pyav", "decord", "torchcodec"):
        if backend not in available_backends():
            rows.append({"source": f"{backend} on AVI", "skipped": "not installed"})
            continue
        avi = video_file_dataset(videos_dir, bench_splits, split=1, backend=backend, transform=transform)
        order = list(range(len(avi)))
        random.shuffle(order)
        add(f"{backend} on AVI", lambda i, avi=avi, order=order: avi[order[i % len(order)]], avi_bytes)
    try:
        fps = float(report["videos"][0]["fps"]) or 25.0
        add("pytorchvideo LabeledVideoDataset", _pytorchvideo_reader(videos_dir, table, transform, 16, fps), avi_bytes)
    except Exception as exc:  # report, do not hide
        rows.append({"source": "pytorchvideo LabeledVideoDataset", "skipped": f"failed: {exc}"})

    failures: dict[str, str] = {}
    rates = _interleaved_throughput(getters, args.items if not args.quick else 20,
                                    args.seconds if not args.quick else 3.0, args.rounds, failures)
    rows += [{"source": n, "skipped": why} for n, why in failures.items()]
    order = list(getters)
    for name, rate in rates.items():
        logger.info("%-34s %.1f clips/s", name, rate)
    rows = sorted([{"source": n, "clips_per_s": rates[n], "kb_per_video": video_bytes[n] / 1024} for n in rates]
                  + [r for r in rows], key=lambda r: order.index(r["source"]) if r["source"] in order else len(order))
    base = {r["source"]: r.get("clips_per_s") for r in rows}
    for r in rows:
        if r.get("clips_per_s"):
            if base.get("pyav on AVI"):
                r["vs_pyav"] = r["clips_per_s"] / base["pyav on AVI"]
            if base.get("decord on AVI"):
                r["vs_decord"] = r["clips_per_s"] / base["decord on AVI"]
    table_md = format_table(
        [dict(r, clips_per_s=r.get("clips_per_s"), skipped=r.get("skipped")) for r in rows],
        [("source", "training input", ""), ("clips_per_s", "clips/s per worker", ".1f"),
         ("kb_per_video", "KiB per video", ".0f"),
         ("vs_pyav", "x PyAV-on-AVI", ".2f"), ("vs_decord", "x decord-on-AVI", ".2f"), ("skipped", "note", "")],
    )
    summary = {
        "videos": n_videos,
        "mean_frames": frames_total / max(n_videos, 1),
        "prepare_videos_per_s_per_worker": n_videos / prep_seconds,
        "prepare_frames_per_s_per_worker": frames_total / prep_seconds,
        "avi_mb": avi_bytes / 2**20,
        "prepared_mb": npy_bytes / 2**20,
        "prepared_over_avi_size": npy_bytes / avi_bytes,
        "prepare_jpeg_videos_per_s_per_worker": n_videos / jpeg_prep_seconds,
        "prepared_jpeg_mb": jpeg_bytes / 2**20,
        "prepared_jpeg_over_avi_size": jpeg_bytes / avi_bytes,
        "jpeg_quality": args.jpeg_quality,
        "torch": torch.__version__,
        "cpu_threads": 1,
    }
    lines = [
        table_md,
        "",
        f"videos: {n_videos} (split-1 train list; {len(skipped)} skipped as prepare reported), "
        f"mean {summary['mean_frames']:.0f} frames, "
        f"{summary['avi_mb']:.1f} MB of AVI",
        f"preparation: {summary['prepare_videos_per_s_per_worker']:.2f} videos/s per worker "
        f"({summary['prepare_frames_per_s_per_worker']:.0f} frames/s)",
        f"prepared size: {summary['prepared_mb']:.1f} MB = {summary['prepared_over_avi_size']:.1f}x the AVIs "
        f"(uint8 at 128x171, uncompressed)",
        f"prepared as JPEG (quality {args.jpeg_quality}): {summary['prepared_jpeg_mb']:.1f} MB = "
        f"{summary['prepared_jpeg_over_avi_size']:.2f}x the AVIs, {npy_bytes / max(jpeg_bytes, 1):.1f}x smaller than "
        f".npy; {summary['prepare_jpeg_videos_per_s_per_worker']:.2f} videos/s per worker",
    ]
    text = "\n".join(lines)
    print(text)
    work.mkdir(parents=True, exist_ok=True)
    (work / "bench_data.md").write_text(text + "\n")
    (work / "bench_data.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
