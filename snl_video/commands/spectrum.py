"""``snl-video spectrum``: each placed block's affinity spectrum and learned frequency response.

Trained model: ``snl-video spectrum --config RECIPE --checkpoint CKPT VIDEO --out DIR``.
Fresh model:   ``snl-video spectrum --model r3d50 --nonlocal snl --frames 16 --size 112 VIDEO --out DIR``.
Writes ``spectrum.json`` and ``spectrum_<block>.png`` per block (see
:mod:`snl_video.engine.spectrum`, also the Python API).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..errors import InvalidValueError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "spectrum", help="eigenvalues of each non-local block's affinity and its learned frequency response on a clip"
    )
    p.add_argument("video", type=Path, help="a video file; its centre clip is used")
    p.add_argument("--out", type=Path, required=True, help="output folder (spectrum.json and PNG plots)")
    p.add_argument("--config", type=Path, default=None, help="the recipe the checkpoint was trained with")
    p.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint written by `snl-video train`")
    p.add_argument("--model", default=None, help="an untrained model by name (instead of --config/--checkpoint)")
    p.add_argument(
        "--nonlocal",
        dest="nonlocal_spec",
        default=None,
        help="with --model: a non-local kind or a JSON placement spec (as `snl-video profile`)",
    )
    p.add_argument("--num-classes", type=int, default=400, help="with --model: head size (default 400)")
    p.add_argument("--frames", type=int, default=16, help="with --model: clip length T (default 16)")
    p.add_argument("--size", type=int, default=112, help="with --model: crop size (default 112)")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="with --config: dotted overrides")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.spectrum import compute_spectra, load_clip, write_spectrum_report
    from .profile import parse_nonlocal_spec

    if args.config is not None:
        if args.model is not None:
            raise InvalidValueError("give either --config with --checkpoint (a trained model) or --model (a fresh one), not both")
        if args.checkpoint is None:
            raise InvalidValueError("--config needs --checkpoint (the trained weights); use --model for an untrained model")
        from ..config import load_config
        from ..engine.builders import build_model_from_config, normalization_from_config
        from ..engine.checkpoint import load_checkpoint

        cfg = load_config(args.config, args.overrides)
        model = build_model_from_config(cfg, load_weights=False)
        model.load_state_dict(load_checkpoint(args.checkpoint)["model"])
        clip = load_clip(
            args.video,
            num_frames=cfg.data.num_frames,
            size=cfg.data.crop_size,
            stride=cfg.data.sampling_stride,
            normalization=normalization_from_config(cfg),
        )
        source = {"config": str(args.config), "checkpoint": str(args.checkpoint)}
    else:
        if args.model is None:
            raise InvalidValueError("give --config RECIPE --checkpoint CKPT (a trained model) or --model NAME (a fresh one)")
        if args.overrides:
            raise InvalidValueError(f"dotted overrides {args.overrides} need --config")
        for name in ("num_classes", "frames", "size"):
            if getattr(args, name) <= 0:
                raise InvalidValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
        from ..models import build_model

        spec = parse_nonlocal_spec(args.nonlocal_spec)
        if spec is None:
            raise InvalidValueError("--model needs --nonlocal KIND|JSON: a model without non-local blocks has no spectrum")
        model = build_model(args.model, num_classes=args.num_classes, nonlocal_blocks=spec)
        clip = load_clip(args.video, num_frames=args.frames, size=args.size)
        source = {"model": args.model, "nonlocal": spec}
    results = compute_spectra(model, clip)
    paths = write_spectrum_report(results, args.out, extra={"video": str(args.video), **source})
    for entry in results:
        eig = entry.get("eigenvalues")
        top = max(eig["real"]) if eig is not None else float("nan")
        print(f"{entry['name']}: {entry['kind']}, N = {entry['num_nodes']:,}, "
              f"{'symmetric' if entry.get('symmetric') else 'non-symmetric'}, top Re λ = {top:.6f}")
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0
