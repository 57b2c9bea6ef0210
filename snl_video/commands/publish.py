"""``snl-video publish``: a trained model as a Hub-style folder (safetensors, config.json, model card)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InvalidValueError
from .renamed import add_renamed_option


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "publish", help="write model.safetensors + config.json + README.md (model card); optionally push to the Hub",
        description="Write a trained model as a folder in the Hugging Face Hub's layout: model.safetensors (weights "
                    "only), config.json (architecture, non-local blocks, input spec, class names, recipe) and "
                    "README.md (a model card; a RUN_DIR's eval/metrics.json gives its results). Load it with "
                    "--weights DIR or --weights hf://OWNER/NAME.")
    p.add_argument("run_dir", nargs="?", type=Path, default=None, metavar="RUN_DIR",
                   help="a run folder of `snl-video train` (checkpoints/best.pt, else last.pt; eval/metrics.json)")
    p.add_argument("--checkpoint", type=Path, default=None, help="a training checkpoint (instead of RUN_DIR)")
    add_renamed_option(p, "--output-dir", "--out", type=Path, required=True,
                       help="the folder to create (must not exist or be empty)")
    p.add_argument("--name", default=None, help="the model card's title (default: the recipe's name)")
    p.add_argument("--push-to-hub", metavar="OWNER/NAME", default=None,
                   help="then upload the folder with huggingface_hub (needs `hf auth login` or HF_TOKEN and the network)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.publish import publish_model

    if (args.run_dir is None) == (args.checkpoint is None):
        raise InvalidValueError("give exactly one of RUN_DIR or --checkpoint CKPT")
    out = publish_model(args.checkpoint or args.run_dir, out=args.output_dir, push_to_hub=args.push_to_hub, name=args.name)
    print(f"published {out}: model.safetensors, config.json, README.md")
    if args.push_to_hub:
        print(f"pushed to https://huggingface.co/{args.push_to_hub}")
    return 0
