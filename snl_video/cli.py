"""``snl-video <verb>``: the command-line edge of the toolkit.

Each verb lives in its own module under :mod:`snl_video.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed
namespace, returning an exit code). This module only wires them up, sets up logging and
applies one error policy: the project's own errors (:class:`snl_video.errors.SnlVideoError`)
are one clear line and exit code 2, and so is a full disk or a read-only folder met by any
write (an ``OSError`` with ``ENOSPC``, ``EACCES``, ``EROFS``, ...); Ctrl-C
(:class:`~snl_video.errors.Interrupted`) is one line and exit code 130; any other exception
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import sys
from typing import Sequence

from .errors import Interrupted, SnlVideoError, UserError
from .fileio import os_error_in, write_error
from .version import __version__

__all__ = ["COMMAND_MODULES", "Interrupted", "UserError", "build_parser", "is_user_facing", "main", "parse_args",
           "unrecognized_message"]

# Verb modules, in the order `snl-video --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "snl_video.commands.config_cmd",
    "snl_video.commands.demo",
    "snl_video.commands.train",
    "snl_video.commands.eval_cmd",
    "snl_video.commands.predict",
    "snl_video.commands.export",
    "snl_video.commands.publish",
    "snl_video.commands.explain",
    "snl_video.commands.features",
    "snl_video.commands.compare",
    "snl_video.commands.study",
    "snl_video.commands.nonlocal_cmd",
    "snl_video.commands.weights",
    "snl_video.commands.prepare",
    "snl_video.commands.make_synthetic",
    "snl_video.commands.download",
    "snl_video.commands.profile",
    "snl_video.commands.spectrum",
)

logger = logging.getLogger("snl_video")


def is_user_facing(exc: BaseException) -> bool:
    """Whether ``snl-video`` prints ``exc`` as one line (a project error) rather than a traceback (a bug)."""
    return isinstance(exc, SnlVideoError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snl-video",
        description="Spectral non-local blocks for video action recognition (UCF-101, Kinetics-pretrained 3D ResNets).",
    )
    parser.add_argument("--version", action="version", version=f"snl_video {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def unrecognized_message(extras: Sequence[str], option_strings: Sequence[str]) -> str:
    """argparse's "unrecognized arguments" line, with "did you mean --x?" for each unknown flag close to a real one."""
    hints = []
    for arg in extras:
        if not arg.startswith("-"):
            continue
        flag = arg.split("=", 1)[0]
        close = difflib.get_close_matches(flag, option_strings, n=1, cutoff=0.6)
        if close:
            hints.append(f"{flag}: did you mean {close[0]}?")
    message = f"unrecognized arguments: {' '.join(extras)}"
    return message + ("; " + "; ".join(hints) if hints else "")


def _verb_parser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    """The sub-parser of ``command`` (so an unknown flag is reported, and matched, against that verb's options)."""
    for action in parser._actions:  # argparse keeps its sub-parsers only here; no public accessor
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, except that an unknown flag's error suggests the closest real option.

    ``--topk`` gives "unrecognized arguments: --topk 3; --topk: did you mean --top-k?" with exit code 2,
    printed with the verb's usage line.
    """
    args, extras = parser.parse_known_args(argv)
    if extras:
        verb = _verb_parser(parser, getattr(args, "command", None))
        options = [opt for opt in verb._option_string_actions if opt.startswith("--")]
        verb.error(unrecognized_message(extras, options))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # to name the command that resumes
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not args.verbose:  # the ONNX exporter's optimiser logs every pass at INFO: noise in a user's log
        for noisy in ("onnxscript", "onnx_ir"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except Exception as exc:  # noqa: BLE001 - a project error is one line; anything else is re-raised
        if args.verbose:
            raise
        if not is_user_facing(exc):
            cause = os_error_in(exc)  # a full disk or a read-only folder hit by a plain open(): the user's to fix
            if cause is None:
                raise
            print(f"snl-video {args.command}: error: {write_error(cause.filename or '?', cause)}", file=sys.stderr)
            return 2
        print(f"snl-video {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C: what was kept and how to go on, no traceback
        if args.verbose:
            raise
        print(f"snl-video {args.command}: interrupted: {str(exc) or 'stopped by Ctrl-C'}",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
