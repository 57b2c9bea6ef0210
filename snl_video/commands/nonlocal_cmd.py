"""``snl-video nonlocal``: list the non-local kinds, their options and defaults."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..nonlocal_blocks import build_nonlocal, describe_nonlocal, list_nonlocal_kinds, nonlocal_options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("nonlocal", help="list non-local block kinds and their options")
    p.add_argument("kind", nargs="?", help="show one kind only")
    p.add_argument("--channels", type=int, default=1024, help="C for the parameter count (default: res4's 1024)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else list_nonlocal_kinds()
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        block = build_nonlocal(kind, args.channels)
        rows.append(
            {
                "kind": kind,
                "family": "transform" if kind in list_nonlocal_kinds("transform") else "graph",
                "params": sum(p.numel() for p in block.parameters()),
                "options": nonlocal_options(kind),
                "description": " ".join(describe_nonlocal(kind).split()),
            }
        )
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        opts = ", ".join(f"{k}={v!r}" for k, v in row["options"].items())
        width = f"C_s={args.channels // 2}" if row["family"] == "graph" else "transform-domain block, default options"
        print(f"{row['kind']:7s} {row['params'] / 1e6:6.2f} M params at C={args.channels}, {width}")
        print(f"        {row['description']}")
        print(f"        options: {opts}")
    return 0
