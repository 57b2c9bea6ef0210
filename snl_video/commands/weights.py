"""``snl-video weights list|inspect|download``: the registry of Kinetics checkpoints and checkpoint files."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import InvalidValueError
from ..models import fitting_model_names
from ..weights import DetectedCheckpoint, WeightsError
from ..weights.download import default_cache_dir, download_weights
from ..weights.formats import convert_state, read_checkpoint
from ..weights.registry import get_weights, list_weights

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("weights", help="list, inspect and download pretrained checkpoints")
    verbs = p.add_subparsers(dest="weights_command", metavar="<list|inspect|download>", required=True)

    p_list = verbs.add_parser("list", help="table of the known checkpoints")
    p_list.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern on the names (default: all)")
    p_list.set_defaults(func=run_list)

    p_inspect = verbs.add_parser("inspect", help="format, architecture, classes and size of a checkpoint file")
    p_inspect.add_argument("file", type=Path)
    p_inspect.add_argument(
        "--allow-unsafe-pickle",
        action="store_true",
        help="unpickle without restrictions; ONLY for files you trust (a pickle can run arbitrary code)",
    )
    p_inspect.set_defaults(func=run_inspect)

    p_download = verbs.add_parser(
        "download",
        help="fetch a registry checkpoint into the cache (resumable, hash-checked)",
        description=(
            "Download a registry checkpoint into the cache. Offline path: copy the file into the cache "
            "directory under the name `snl-video weights list` shows; it is then used (and hash-checked) "
            "without network access."
        ),
    )
    p_download.add_argument("name", help="registry name (see `snl-video weights list`)")
    p_download.add_argument("--cache-dir", type=Path, default=None, help="default: $SNL_VIDEO_CACHE or ~/.cache/snl_video/weights")
    p_download.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_download.set_defaults(func=run_download)


def run_list(args: argparse.Namespace) -> int:
    names = list_weights(args.pattern)
    if not names:
        raise InvalidValueError(f"no pretrained weights match {args.pattern!r}; `snl-video weights list` shows all")
    header = ("name", "arch", "format", "classes", "frames x stride", "crop", "top-1", "source", "in cache")
    rows = [header]
    cache = default_cache_dir()
    for name in names:
        e = get_weights(name)
        rows.append(
            (
                e.name,
                e.architecture,
                e.format,
                str(e.num_classes),
                f"{e.input_spec.num_frames}x{e.input_spec.sampling_stride}",
                str(e.input_spec.crop_size),
                f"{e.reported_top1:.2f}" if e.reported_top1 is not None else "-",
                "download" if e.url else f"offline: {e.file_name}",
                "yes" if (cache / e.file_name).is_file() else "-",  # present: used without network access
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    print(f"cache directory: {default_cache_dir()}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    detected = read_checkpoint(args.file, allow_unsafe_pickle=args.allow_unsafe_pickle)
    lines = [
        ("file", str(args.file)),
        ("format", detected.format),
        ("architecture", detected.architecture.describe()),
        ("fits models", _fitting_models(detected)),
        ("classes", str(detected.num_classes) if detected.num_classes is not None else "unknown (no classifier found)"),
        ("head keys", ", ".join(detected.head_keys) or "-"),
        ("tensors", str(detected.num_tensors)),
        ("parameters", f"{detected.num_parameters:,}"),
        ("container keys", ", ".join(detected.container_keys[:12]) + (" ..." if len(detected.container_keys) > 12 else "")),
    ]
    if detected.format in ("hara2017", "hara2020") and detected.architecture.blocks_per_stage:
        # 3D-ResNets-PyTorch networks come with either shortcut; the file shows which
        projected = any(".downsample." in k for k in detected.state_dict)
        lines.append(("shortcut", "B (1x1x1 conv downsample tensors; the default)" if projected else
                      "A (no downsample tensors: zero-padded identity); build with model.options.shortcut=A"))
    for key, value in detected.metadata.items():
        text = str(value)
        lines.append((f"meta.{key}", text if len(text) <= 80 else text[:77] + "..."))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}")
    return 0


def _fitting_models(detected: DetectedCheckpoint) -> str:
    """The registered models whose backbone the file's converted tensors match (the architecture
    line above is a guess from key names: it calls an X3D a ResNet-80 and cannot name a SlowFast)."""
    try:
        state = convert_state(detected)
    except WeightsError as exc:
        return f"unknown (its keys could not be converted: {exc})"
    names = fitting_model_names(state)
    if not names:
        return "none of the registered models with default options (`snl-video profile --help` lists them)"
    if len(names) > 1:
        return " / ".join(names) + " (one network; the file name or the registry name says which clip it expects)"
    return names[0]


def run_download(args: argparse.Namespace) -> int:
    path = download_weights(args.name, cache_dir=args.cache_dir, progress=not args.no_progress)
    print(path)
    return 0
