"""``snl-video profile``: parameters and multiply-adds of a model on one clip.

Prints the counter's MACs (convs, ``fc`` and every matrix product, by
``torch.utils.flop_counter``) and the paper's Table 7 convention (convs, ``fc`` and 2
operations per norm output element; no affinity products); see
:mod:`snl_video.models.profiling`. With ``--json`` the last line is one JSON object
``{"num_frames": int, "size": int, "params": int, "macs": int, ...}`` (the clip length was
``"frames"`` before it took the one name ``num_frames``; that key is still written, with the
same value, for one release).
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from ..errors import InvalidValueError
from ..models import build_model, list_models, model_entry, profile_model
from .renamed import add_renamed_option

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("profile", help="count parameters and multiply-adds (MACs) of a model")
    p.add_argument("--model", required=True, help=f"one of: {', '.join(list_models())}")
    p.add_argument("--num-classes", type=int, default=400, help="head size (default 400, Kinetics)")
    add_renamed_option(p, "--num-frames", "--frames", type=int, default=None,
                       help="clip length T (default: the model's published clip where the registry records one, e.g. "
                            "x3d_m 16, slowfast_r50 32; else 16)")
    p.add_argument("--size", type=int, default=None,
                   help="crop size H = W (default: the model's published crop where recorded, e.g. x3d_m 224; else 112)")
    p.add_argument(
        "--nonlocal",
        dest="nonlocal_spec",
        default=None,
        help="a non-local kind (paper placement: res4, before its last block) or a JSON placement spec, "
        'e.g. \'{"kind": "nl", "positions": {"layer2": [1, 3], "layer3": [1, 3, 5]}}\' '
        '(SlowFast names the pathway: {"slow.layer3": [4], "fast.layer3": [5]})',
    )
    p.add_argument(
        "--model-option",
        dest="model_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model option (repeatable; VALUE read as YAML), e.g. --model-option lfu=true --model-option ratio_global=0.5",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=run)


def parse_nonlocal_spec(text: str | None) -> str | dict[str, Any] | None:
    """``--nonlocal``: a kind name as given, or a JSON placement spec parsed (shared with ``spectrum``;
    text that starts with ``{`` and parses is a JSON object, so a dict)."""
    if text is None or not text.lstrip().startswith("{"):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidValueError(f"--nonlocal is not valid JSON ({exc}): {text!r}") from None


def _parse_model_options(items: list[str]) -> dict[str, Any]:
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidValueError(f"--model-option takes KEY=VALUE (e.g. lfu=true), got {item!r}")
        options[key.strip()] = yaml.safe_load(value)
    return options


def run(args: argparse.Namespace) -> int:
    published = model_entry(args.model).input_size
    if args.num_frames is None:
        args.num_frames = published[0] if published else 16
    if args.size is None:
        args.size = published[1] if published else 112
    for name in ("num_classes", "num_frames", "size"):
        if getattr(args, name) <= 0:
            raise InvalidValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    spec = given = parse_nonlocal_spec(args.nonlocal_spec)
    if spec is not None:  # size-bound blocks (srb lo / spectrum_relu, bat checks) see this clip's maps
        spec = {"kind": spec} if isinstance(spec, str) else dict(spec)
        spec.setdefault("input_size", [args.num_frames, args.size, args.size])
    options = _parse_model_options(getattr(args, "model_options", []) or [])
    try:
        model = build_model(args.model, num_classes=args.num_classes, nonlocal_blocks=spec, **options)
    except ValueError as exc:
        if not isinstance(given, str) or "options." not in str(exc):
            raise
        # a bare kind has no place for the options the message asks for: say how to give them here
        raise InvalidValueError(f"{exc}; here pass them in a JSON spec, e.g. --nonlocal "
                         f"'{{\"kind\": \"{given}\", \"options\": {{...}}}}'") from None
    shape = (1, 3, args.num_frames, args.size, args.size)
    profile = profile_model(model, input_shape=shape)
    result = {
        "model": args.model,
        "num_classes": args.num_classes,
        "num_frames": args.num_frames,
        # the key's old name, written for one release for readers of the old output
        "frames": args.num_frames,
        "size": args.size,
        "nonlocal": given,
        "model_options": options,
        **profile.to_dict(),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    blocks = ", ".join(profile.nonlocal_keys) or "none"
    print(f"{args.model}: {args.num_classes} classes, clip 3x{args.num_frames}x{args.size}x{args.size}, non-local blocks: {blocks}")
    print(
        f"  params           {profile.params / 1e6:8.2f} M   (backbone {profile.params_backbone / 1e6:.2f} M"
        f" + non-local {profile.params_nonlocal / 1e6:.2f} M)"
    )
    print(
        f"  MACs (counter)   {profile.macs / 1e9:8.2f} G   (non-local {profile.macs_nonlocal / 1e9:.3f} G;"
        f" by op: {', '.join(f'{k} {v / 1e9:.3f} G' for k, v in profile.macs_by_op.items())})"
    )
    print(
        f"  MACs (Table 7)   {profile.macs_table7 / 1e9:8.2f} G   (non-local {profile.macs_nonlocal_table7 / 1e9:.3f} G;"
        f" convs + fc + 2 x {profile.norm_elements / 1e6:.2f} M norm elements, no affinity products)"
    )
    if profile.macs_solves:
        print(
            f"  MACs (solves)    {profile.macs_solves / 1e9:8.3f} G   (linear solves of the rational filters, "
            "n^3/3 + n^2 k per n x n system; in the counter's total, not in Table 7's)"
        )

    if profile.macs_fft:
        print(f"  FFTs             {profile.macs_fft / 1e9:8.3f} G   (estimate, 2.5 n log2 n per complex n-point "
              "transform; in neither count above, as in the papers)")
    return 0
