"""``snl-video explain``: what each non-local block attends to (affinity rows at query positions), and Grad-CAM."""

from __future__ import annotations

import argparse
from typing import get_args
from pathlib import Path

from ..errors import InvalidValueError, MissingFileError
from .predict import add_model_arguments, add_precision_argument, model_arguments
from .renamed import add_renamed_option


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..data.decoding import BACKENDS
    from ..engine.explain import Upsample

    p = subparsers.add_parser("explain", help="heat maps of what each non-local block attends to (and Grad-CAM)")
    p.add_argument("video", type=Path, help="a video file")
    add_model_arguments(p)
    add_renamed_option(p, "--output-dir", "--out", type=Path, required=True, help="output folder (PNG grids, GIF/MP4, .npy maps, explain.json)")
    p.add_argument("--query", action="append", default=None, metavar="t,y,x",
                   help="a position of the model's input clip (centre clip after resize and crop; t in 0..T-1); "
                        "repeatable; default: the 3 positions the first block changes most")
    p.add_argument("--upsample", choices=get_args(Upsample), default="nearest", help="default: nearest")
    p.add_argument("--gradcam", action="store_true", help="also Grad-CAM of the backbone's last stage")
    p.add_argument("--class", dest="class_name", default=None, help="Grad-CAM class (default: the predicted one)")
    p.add_argument("--animation", choices=["gif", "mp4"], default="gif", help="animated overlay format (default gif)")
    p.add_argument("--backend", choices=BACKENDS, default=None, help="decoder (default: PyAV)")
    add_precision_argument(p, help="run the network in fp32 (default) or bf16 autocast; the maps are float32 either "
                                   "way (the blocks build their affinity in float32)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.api import explain
    from ..engine.explain import parse_query

    queries = [parse_query(q) for q in args.query] if args.query else None
    if args.class_name is not None and not args.gradcam:
        raise InvalidValueError("--class picks the Grad-CAM class: add --gradcam")
    if not args.video.is_file():
        raise MissingFileError(f"video {args.video} does not exist; check the path")
    result = explain(args.video, **model_arguments(args), output_dir=args.output_dir, queries=queries,
                     upsample=args.upsample, with_gradcam=args.gradcam, gradcam_class=args.class_name,
                     animation=args.animation, backend=args.backend, precision=args.precision)
    print(f"predicted: {result.predicted}; queries (t,y,x): {result.queries}")
    for key, files in result.files.items():
        print(f"{key}: " + ", ".join(str(f) for f in files))
    for key, reason in result.skipped.items():
        print(f"{key}: skipped: {reason}")
    for note in result.notes:
        print(f"note: {note}")
    return 0
