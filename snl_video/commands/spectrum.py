"""``snl-video spectrum``: each placed block's affinity spectrum and learned frequency response.

Trained model: ``snl-video spectrum --checkpoint CKPT VIDEO --output-dir DIR`` (the checkpoint
carries its recipe; ``--config RECIPE`` only for checkpoints older than that), or
``--weights NAME|FILE`` (a registry name or a checkpoint file), loaded as predict, explain,
features and export load them. Fresh model:
``snl-video spectrum --model r3d50 --nonlocal snl --num-frames 16 --crop-size 112 VIDEO --output-dir DIR``.
Writes ``spectrum.json`` and ``spectrum_<block>.png`` per block (see
:mod:`snl_video.engine.spectrum`, also the Python API).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..errors import InvalidValueError
from .predict import add_model_arguments, model_arguments
from .renamed import add_renamed_option

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "spectrum", help="eigenvalues of each non-local block's affinity and its learned frequency response on a clip"
    )
    p.add_argument("video", type=Path, help="a video file; its centre clip is used")
    add_renamed_option(p, "--output-dir", "--out", type=Path, required=True, help="output folder (spectrum.json and PNG plots)")
    add_model_arguments(p, required=False, crop_size_old=("--size",))
    p.add_argument("--model", default=None, help="an untrained model by name (instead of --checkpoint/--weights)")
    p.add_argument(
        "--nonlocal",
        dest="nonlocal_spec",
        default=None,
        help="with --model: a non-local kind or a JSON placement spec (as `snl-video profile`)",
    )
    p.add_argument("--num-classes", type=int, default=400, help="with --model: head size (default 400)")
    add_renamed_option(p, "--num-frames", "--frames", type=int, default=16, help="with --model: clip length T (default 16)")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="with --checkpoint: dotted overrides of its recipe")
    p.set_defaults(func=run)


def _fresh_model(args: argparse.Namespace):
    """``--model`` (+ ``--nonlocal``): an untrained model and its input clip."""
    from ..engine.spectrum import load_clip
    from ..models import build_model
    from .profile import parse_nonlocal_spec

    if args.overrides:
        raise InvalidValueError(f"dotted overrides {args.overrides} change a checkpoint's recipe: they need --checkpoint")
    if args.crop_size is None:
        args.crop_size = 112  # a fresh model has no input spec of its own
    for name in ("num_classes", "num_frames", "crop_size"):
        if getattr(args, name) <= 0:
            raise InvalidValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    spec = parse_nonlocal_spec(args.nonlocal_spec)
    if spec is None:
        raise InvalidValueError("--model needs --nonlocal KIND|JSON: a model without non-local blocks has no spectrum")
    model = build_model(args.model, num_classes=args.num_classes, nonlocal_blocks=spec)
    clip = load_clip(args.video, num_frames=args.num_frames, size=args.crop_size)
    return model, clip, {"model": args.model, "nonlocal": spec}


def run(args: argparse.Namespace) -> int:
    from ..engine.api import spectrum
    from ..engine.spectrum import compute_spectra, write_spectrum_report

    trained = args.checkpoint is not None or args.weights is not None
    if trained and args.model is not None:
        raise InvalidValueError("give either --checkpoint / --weights (a trained model) or --model (a fresh one), not both")
    if args.config is not None and args.checkpoint is None:
        raise InvalidValueError("--config needs --checkpoint (the trained weights); use --model for an untrained model")
    if trained:
        result = spectrum(args.video, **model_arguments(args, overrides=args.overrides), output_dir=args.output_dir)
        results, paths = result.blocks, result.files
    elif args.model is not None:
        model, clip, source = _fresh_model(args)
        results = compute_spectra(model, clip)
        paths = write_spectrum_report(results, args.output_dir, extra={"video": str(args.video), **source})
    else:
        raise InvalidValueError("give --checkpoint CKPT or --weights NAME|FILE (a trained model), or --model NAME (a fresh one)")
    for entry in results:
        eig = entry.get("eigenvalues")
        top = max(eig["real"]) if eig is not None else float("nan")
        print(f"{entry['name']}: {entry['kind']}, N = {entry['num_nodes']:,}, "
              f"{'symmetric' if entry.get('symmetric') else 'non-symmetric'}, top Re λ = {top:.6f}")
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0
