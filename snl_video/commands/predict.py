"""``snl-video predict``: top-k classes of videos (or of windows along them) with a trained model.

Exit code 0 when at least one video was predicted (failed ones are reported with their
reason), 2 with a one-line error when none was.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

if TYPE_CHECKING:
    from ..engine.loading import InferenceModel

from ..errors import InvalidValueError, MissingFileError
from .renamed import add_renamed_option

logger = logging.getLogger(__name__)


def add_model_arguments(p: argparse.ArgumentParser, *, required: bool = True,
                        crop_size_old: tuple[str, ...] = ()) -> None:
    """``--checkpoint`` / ``--weights`` / ``--config`` and ``--crop-size`` (shared by predict, explain,
    features, export, spectrum); ``required=False`` where the verb has another way to name a model;
    ``crop_size_old``: the verb's earlier spelling of ``--crop-size`` (accepted with a warning)."""
    from ..config.schema import Device

    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("--checkpoint", type=Path, help="a checkpoint written by `snl-video train`")
    src.add_argument("--weights", help="a weights registry name (`snl-video weights list`), a foreign checkpoint file, a "
                          "folder written by `snl-video publish`, or hf://OWNER/NAME[@REVISION] (a published folder "
                          "on the Hugging Face Hub; HF_HUB_OFFLINE=1 reads the local cache only)")
    p.add_argument("--config", type=Path, default=None,
                   help="the recipe of --checkpoint (only needed for checkpoints older than self-describing ones)")
    p.add_argument("--device", choices=get_args(Device), default="cpu", help="default: cpu")
    p.add_argument("--allow-unsafe-pickle", action="store_true",
                   help="unpickle a foreign --weights file without restrictions; ONLY for files you trust")
    add_renamed_option(p, "--crop-size", *crop_size_old, type=int, default=None, metavar="PIXELS",
                       help="test crop: resize the short side to PIXELS and crop PIXELS x PIXELS (default: the "
                            "model's own input); e.g. a larger test crop than the training one, as PySlowFast tests "
                            "X3D. Refused when the model cannot take that size")


def model_arguments(args: argparse.Namespace, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The keyword arguments of the Python API (:mod:`snl_video.engine.api`) that
    :func:`add_model_arguments`' flags give: ``checkpoint=`` / ``weights=`` / ``config=`` and the rest."""
    return {"checkpoint": args.checkpoint, "weights": args.weights, "config": args.config, "overrides": overrides,
            "device": args.device, "allow_unsafe_pickle": args.allow_unsafe_pickle, "crop_size": args.crop_size}


def add_precision_argument(p: argparse.ArgumentParser, *, help: str | None = None) -> None:
    """``--precision fp32|bf16`` (the inference verbs, ``eval`` and ``export --verify``);
    ``help`` replaces the default description where the flag means something narrower."""
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help=(help or "forward in fp32 (default) or bf16 autocast: about 2x faster on CPUs with "
                                 "AVX512-BF16/AMX") + " (refused where bf16 would be emulated); see docs/cpu_inference.md")


def load_model_from_args(args: argparse.Namespace, overrides: list[str] | tuple[str, ...] = ()) -> "InferenceModel":
    """The model :func:`add_model_arguments`' flags name, through the one inference loader."""
    from ..engine.api import load_model

    return load_model(**model_arguments(args, overrides), precision=getattr(args, "precision", "fp32"))


def set_class_names(model, path: Path) -> None:
    """Replace ``model.class_names`` by the lines of ``path`` (their count must match the head)."""
    if not path.is_file():
        raise MissingFileError(f"--class-names {path} does not exist")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) != model.num_classes:
        raise InvalidValueError(f"--class-names {path} lists {len(names)} names for a {model.num_classes}-class head; "
                         "give one name per line, in head order")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # two outputs under one name: the table and CSV could not tell them apart
        raise InvalidValueError(f"--class-names {path} lists {', '.join(repr(n) for n in repeated)} more than once; "
                                "give each class of the head its own name")
    model.class_names = names


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..data.decoding import BACKENDS

    p = subparsers.add_parser("predict", help="top-k classes of videos (or of windows of long videos)")
    p.add_argument("videos", nargs="+", metavar="VIDEO_OR_DIR", help="video files (.avi, .mp4, .mkv, .webm, ...) or folders")
    add_model_arguments(p)
    p.add_argument("--top-k", type=int, default=5, help="classes per prediction (default 5; clamped to the class count)")
    add_renamed_option(p, "--num-clips", "--clips", type=int, default=None, help="uniform clips per video (default: the recipe's / registry's)")
    add_renamed_option(p, "--num-crops", "--crops", type=int, choices=[1, 3], default=None, help="spatial crops per clip (default: as --num-clips)")
    add_renamed_option(p, "--output-file", "--out", type=Path, default=None, help="write predictions.csv or .json")
    add_renamed_option(p, "--window-seconds", "--window", type=float, default=None, metavar="SECONDS", help="timeline: window length in seconds")
    add_renamed_option(p, "--stride-seconds", "--stride", type=float, default=None, metavar="SECONDS", help="timeline: step between windows")
    p.add_argument("--backend", choices=BACKENDS, default=None, help="decoder (default: PyAV)")
    add_renamed_option(p, "--num-workers", "--workers", type=int, default=0, help="decoding processes (default 0: in this process)")
    add_precision_argument(p)
    p.add_argument("--class-names", type=Path, default=None, metavar="FILE",
                   help="one class name per line, in head order (overrides the checkpoint's / registry's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.video import find_videos
    from ..engine.predict import predict

    if args.output_file is not None and args.output_file.suffix.lower() not in (".csv", ".json"):
        raise InvalidValueError(f"--output-file {args.output_file}: use a .csv or .json file name")
    paths = find_videos(args.videos)  # bad paths fail before the model loads
    if args.output_file is not None:  # an unwritable destination fails before anything is computed
        from ..fileio import ensure_writable_dir

        ensure_writable_dir(args.output_file.parent)
    model = load_model_from_args(args)
    if args.class_names is not None:
        set_class_names(model, args.class_names)
    result = predict(paths, model=model, top_k=args.top_k, num_clips=args.num_clips, num_crops=args.num_crops,
                     window_seconds=args.window_seconds, stride_seconds=args.stride_seconds, backend=args.backend, num_workers=args.num_workers,
                     progress=not args.no_progress and len(paths) > 1, output_file=args.output_file)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if not result.predictions:
        first = result.errors[0] if result.errors else None
        detail = f" (e.g. {first.video}: {first.reason})" if first else ""
        raise InvalidValueError(f"none of the {len(paths)} video(s) could be predicted{detail}; check that they are "
                         "readable videos")
    print(result.table())
    if args.output_file is not None:
        print(f"written: {args.output_file}")  # streamed as predicted, then rewritten complete by predict
        errors_file = result.errors_path(args.output_file)
        if errors_file is not None:
            print(f"failed videos: {errors_file}")
    if result.errors:
        print(f"{len(result.errors)} of {len(paths)} video(s) failed (listed above)", file=sys.stderr)
    return 0
