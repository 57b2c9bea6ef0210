"""``snl-video train --config FILE [key=value ...] [--resume | --resume-from CKPT]``: run a fine-tuning recipe."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ..fileio import remove_stale_temporaries
from ..locking import output_lock

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="fine-tune a model from a YAML recipe (torchrun for several processes)")
    p.add_argument("--config", type=Path, required=True,
                   help="YAML recipe file, or the name of a shipped recipe (e.g. ucf101/r3d50_snl; `snl-video config list`)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. optim.lr=0.001")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in runtime.output_dir exactly where it stopped (from checkpoints/last.pt); "
                        "only epochs, workers, logging and device may differ from its config.yaml")
    p.add_argument("--resume-from", type=Path, default=None, metavar="CKPT",
                   help="continue from this checkpoint file (into runtime.output_dir)")
    p.add_argument("--no-eval", action="store_true", help="skip the full evaluation after training")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..errors import UserError

    # Fail fast on the resume flags, before reading anything heavy.
    if args.resume_from is not None and not args.resume_from.is_file():
        raise UserError(f"--resume-from {args.resume_from}: no such checkpoint file")
    stray = [o for o in args.overrides if "=" not in o]
    if stray:
        hint = (f"; to continue from a checkpoint file use --resume-from {stray[0]}"
                if stray[0].endswith((".pt", ".pth", ".tar")) or Path(stray[0]).is_file() else "")
        raise UserError(f"{stray[0]!r} is not a key=value override{hint}")
    resume = args.resume_from if args.resume_from is not None else args.resume
    cfg = load_config(args.config, args.overrides)
    # One writer per run folder: a second train (or eval) into it is refused at once, naming
    # this one; the check that the folder is writable comes with it, before anything heavy.
    with output_lock(cfg.runtime.output_dir, "train"):
        # a save killed mid-write (SIGKILL, power loss) left its temporary file; only we write here now
        removed = remove_stale_temporaries(Path(cfg.runtime.output_dir) / "checkpoints")
        if removed:
            logger.info("removed %d temporary checkpoint file(s) left by a killed run", removed)
        return _train_locked(args, cfg, resume)


def _train_locked(args: argparse.Namespace, cfg, resume) -> int:
    from ..engine.evaluate import run_evaluation
    from ..engine.train import NonFiniteLossError, train

    from ..engine.builders import resolve_device
    from ..engine.distributed import cleanup_distributed, setup_distributed

    from ..errors import Interrupted

    # Join the process group here (under torchrun), so training and the final evaluation
    # share it: re-creating a group in the same processes would hang on the rendezvous.
    started = setup_distributed(resolve_device(cfg.runtime.device))
    try:
        try:
            result = train(cfg, resume=resume)
        except KeyboardInterrupt:
            raise Interrupted(interrupted_train_message(cfg)) from None
        except NonFiniteLossError as exc:
            # a diverged run is not a crash: one clear line, exit 1, checkpoints kept
            print(f"snl-video train: stopped: {exc}", file=sys.stderr)
            return 1
        if result.epochs_done >= cfg.schedule.epochs and not args.no_eval and result.last_checkpoint is not None:
            try:
                with output_lock(Path(cfg.runtime.output_dir) / "eval", "train"):  # as `eval` into the run does
                    report = run_evaluation(cfg, result.last_checkpoint, clip_outputs=result.final_clip_outputs)
            except KeyboardInterrupt:
                raise Interrupted(f"training finished ({result.last_checkpoint} kept); the final evaluation was "
                                  f"stopped: snl-video eval --config {result.output_dir / 'config.yaml'} "
                                  f"--checkpoint {result.last_checkpoint}") from None
            if int(os.environ.get("RANK", 0)) == 0:
                print(f"clip top-1 {report.clip_top1:.2f}  top-5 {report.clip_top5:.2f} | video top-1 "
                      f"{report.video_top1:.2f}  top-5 {report.video_top5:.2f} | mean class {report.mean_class_accuracy:.2f}")
    finally:
        if started:
            cleanup_distributed()
    if int(os.environ.get("RANK", 0)) == 0:
        loggers = cfg.runtime.active_loggers()
        written = ["config.yaml", "metrics.jsonl"] + ["metrics.csv"] * ("csv" in loggers) \
            + ["tensorboard/"] * ("tensorboard" in loggers) + ["checkpoints/", "eval/"]
        print(f"run: {result.output_dir} ({', '.join(written)})")
    return 0


def interrupted_train_message(cfg) -> str:
    """What a Ctrl-C during training kept, and the command that continues the run."""
    import torch

    from ..engine.checkpoint import LAST
    from ..engine.resume import recorded_config_path

    out = Path(cfg.runtime.output_dir)
    last = out / "checkpoints" / LAST
    if not last.is_file():
        return (f"no checkpoint was written yet (the first saved epoch did not finish); start again with the same "
                f"command (run folder {out})")
    try:  # memory-mapped: reads the epoch, not the tensors
        epoch = torch.load(last, map_location="cpu", weights_only=True, mmap=True).get("epoch")
    except Exception:  # noqa: BLE001 - a message must not fail
        epoch = None
    after = f" (after epoch {epoch} of {cfg.schedule.epochs})" if epoch is not None else ""
    import shlex

    config = shlex.quote(str(recorded_config_path(out)))  # a command to paste: a folder with spaces stays one word
    processes = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if processes > 1:  # the same launch: a resume with another process count is refused
        return (f"kept {last}{after}; resume with the same {processes}-process launch: torchrun ... -m snl_video.cli "
                f"train --config {config} --resume")
    return f"kept {last}{after}; resume with: snl-video train --config {config} --resume"
