"""``snl-video export``: a trained model as a ``torch.export`` program (.pt2) or ONNX file."""

from __future__ import annotations

import argparse
from typing import get_args
from pathlib import Path

from .predict import add_model_arguments, add_precision_argument, model_arguments
from .renamed import add_renamed_option


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..engine.export import ExportFormat

    p = subparsers.add_parser("export", help="export a model to ONNX or torch.export (.pt2), dynamic batch")
    add_model_arguments(p, crop_size_old=("--size",))
    p.add_argument("--format", choices=get_args(ExportFormat), required=True, help="onnx (needs snl_video[export]) or pt2")
    add_renamed_option(p, "--output-file", "--out", type=Path, required=True, help="model.onnx or model.pt2 (+ .preprocessing.json beside)")
    add_renamed_option(p, "--num-frames", "--frames", type=int, default=None, help="clip length T (default: the model's clip spec)")
    p.add_argument("--verify", action="store_true",
                   help="run the export and compare logits with PyTorch (<= 1e-4 rel.; <= 3e-2 with --precision bf16)")
    add_precision_argument(p, help="the precision --verify runs the PyTorch model in (the exported program is "
                                   "float32): fp32 (default) or bf16 autocast, as predict --precision bf16 runs it")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.api import export

    result = export(**model_arguments(args), output_file=args.output_file, format=args.format, num_frames=args.num_frames,
                    size=args.crop_size,
                    verify=args.verify, opset=args.opset, precision=args.precision)
    shape = "x".join(str(s) for s in result.input_shape[1:])
    print(f"exported {result.path} ({result.format}; input clip (batch, {shape}), normalised as "
          f"{result.preprocessing})")
    if result.relative_error is not None:
        print(f"verified against PyTorch in {result.precision}: max |exported - pytorch| / max |pytorch| = "
              f"{result.relative_error:.2e} (limit {result.tolerance:g})")
    return 0
