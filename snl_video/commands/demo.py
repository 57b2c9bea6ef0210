"""``snl-video demo`` (``make demo``): the whole job, end to end, on 2 CPU cores in minutes.

1. self-check of the non-local family (each block starts as the identity; linear SNL = dense);
2. a synthetic UCF-101-format dataset (8 classes that differ only in motion) and its
   preparation, through the same ``prepare`` path as the real dataset (``--dataset hmdb51|folder|list``:
   the same classes in that source's format, prepared through that source);
3. fine-tuning of a small 3D ResNet-10 with one SNL block (``configs/demo/``);
4. evaluation (clip level: centre clip, centre crop; video level: 3 clips averaged);
5. ``runs/demo/``: ``metrics.json``, ``curves.png`` (loss / accuracy), ``confusion_matrix.png``,
   the CSVs, ``demo.log``, and the run itself in ``runs/demo/train/``.

The demo is seeded and deterministic, and checks its own target: held-out clip top-1 at
least 3x chance (exit code 1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final, get_args

import torch

from ..config import packaged_recipes_dir
from ..errors import UserError
from ..nonlocal_blocks import NonLocalBlock, build_nonlocal, list_nonlocal_kinds
from .renamed import add_renamed_option

if TYPE_CHECKING:
    from ..data.prepare import Storage

logger = logging.getLogger(__name__)

#: The demo recipe, shipped in the package (snl_video/configs/demo/): `demo` runs from an installed wheel too.
DEMO_CONFIG = packaged_recipes_dir() / "demo" / "synthetic_r3d10_snl.yaml"
#: Synthetic dataset size: 8 classes x 30 videos (split 1 holds out about 28% of each class).
DEMO_CLASSES, DEMO_VIDEOS_PER_CLASS, DEMO_FRAMES = 8, 30, 24
#: ``--dataset relations``: its recipe (plus one SNL block) and size (4 classes x 100 videos).
RELATIONS_CONFIG = DEMO_CONFIG.parents[1] / "studies" / "relations_base.yaml"
RELATIONS_SNL = ("nonlocal_blocks.kind=snl", "nonlocal_blocks.positions={layer3: [0]}")
RELATIONS_VIDEOS_PER_CLASS = 100
#: The demo prepares raw frames by default, not ``prepare``'s default packed JPEGs: raw frames are
#: the faster input (scripts/bench_data.py) and its 240 small clips take 98 MB (17 MB as JPEGs).
#: ``--storage jpeg`` runs it on prepare's default instead: ~5 % longer (README), and the
#: JPEG-rounded pixels train a slightly different model.
DEMO_STORAGE: Final = "npy"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..data.prepare import Storage

    p = subparsers.add_parser("demo", help="end to end on synthetic data: make, prepare, train, evaluate (minutes, CPU)")
    add_renamed_option(p, "--output-dir", "--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--config", type=Path, default=DEMO_CONFIG, help="the demo recipe")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of the training run")
    p.add_argument("--dataset", choices=[*demo_sources(), "relations"], default="ucf101",
                   help="the source format of the synthetic data, prepared through that source (default: ucf101); "
                        "relations: the relational task instead of motion (docs/relations_task.md), in the folder "
                        "source's layout, with configs/studies/relations_base.yaml + one SNL block unless --config")
    p.add_argument("--storage", choices=get_args(Storage), default=DEMO_STORAGE,
                   help=f"how the demo's clips are prepared (default: {DEMO_STORAGE}, the faster to read; jpeg: "
                        "prepare's own default)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the demo recipe")
    p.set_defaults(func=run)


def self_check() -> list[str]:
    """Every non-local kind is the identity at initialisation; linear SNL equals dense SNL."""
    lines = []
    torch.manual_seed(0)
    x = torch.randn(2, 64, 4, 7, 7, dtype=torch.float64)
    for kind in list_nonlocal_kinds("graph"):
        block = build_nonlocal(kind, 64).double()
        identity = torch.equal(block(x), x)
        lines.append(f"{kind:7s} identity at init: {'yes' if identity else 'NO'}")
        if not identity:
            raise RuntimeError(f"{kind} block is not the identity at initialisation")
    dense = build_nonlocal("snl", 64, impl="dense").double()
    linear = build_nonlocal("snl", 64, impl="linear").double()
    linear.load_state_dict(dense.state_dict())
    for b in (dense, linear):
        assert isinstance(b, NonLocalBlock)  # the snl preset is a NonLocalBlock (output norm: bn)
        torch.nn.init.ones_(b.bn.weight)
    diff = (dense(x) - linear(x)).abs().max().item()
    lines.append(f"snl dense vs linear, max |diff| (float64): {diff:.2e}")
    if diff > 1e-10:
        raise RuntimeError(f"linear SNL differs from dense SNL by {diff}")
    return lines


def prepare_demo_data(
    dataset: str, data_dir: Path, *, seed: int, num_frames: int, num_classes: int = DEMO_CLASSES,
    videos_per_class: int = DEMO_VIDEOS_PER_CLASS, video_frames: int = DEMO_FRAMES, short_side: int = 64,
    workers: int = 2, storage: Storage = DEMO_STORAGE,
) -> Path:
    """Synthetic motion classes in ``dataset``'s format under ``data_dir/raw``, prepared through that
    source into ``data_dir/prepared`` (split ``1``, about 28 % of each class held out for test).

    Dispatches through the dataset-source registry: the source's synthetic writer makes the
    files and returns the prepare options that read them; the source turns those into its
    manifest, as ``snl-video prepare <dataset>`` does."""
    from ..data.prepare import PrepareSettings, prepare_manifest
    from ..data.source_spec import DemoSize, parse_options
    from ..data.sources import get_source

    if dataset == "relations":  # other content (docs/relations_task.md) in the folder source's layout
        return _prepare_relations(data_dir, seed=seed, num_frames=num_frames, videos_per_class=videos_per_class,
                                  short_side=short_side, workers=workers, storage=storage)
    source = get_source(dataset)
    if source.synthetic is None or source.inputs is None:
        raise UserError(f"--dataset {dataset}: that source has no synthetic writer; choose from "
                        f"{', '.join(demo_sources())}")
    raw, prepared = data_dir / "raw", data_dir / "prepared"
    held_out = max(2, round(0.28 * videos_per_class / 2) * 2)  # whole sources / groups of 2 clips
    written = source.synthetic.demo(raw, DemoSize(num_classes=num_classes, videos_per_class=videos_per_class,
                                                  held_out_per_class=held_out, video_frames=video_frames, seed=seed))
    inputs = source.inputs(parse_options(source.options, written, where=f"demo --dataset {dataset}"))
    prepare_manifest(inputs.manifest, inputs.videos_dir, prepared, dataset=dataset, workers=workers,
                     settings=PrepareSettings(short_side=short_side, num_frames=num_frames, storage=storage), progress=False)
    return prepared


def _prepare_relations(data_dir: Path, *, seed: int, num_frames: int, videos_per_class: int, short_side: int,
                       workers: int, storage: Storage) -> Path:
    """The relational task's videos under ``data_dir/raw``, prepared through the ``folder`` source."""
    from ..data.prepare import PrepareSettings, prepare_manifest
    from ..data.relations import make_relations_dataset
    from ..data.source_spec import parse_options
    from ..data.sources import get_source

    videos = make_relations_dataset(data_dir / "raw", videos_per_class=videos_per_class, size=short_side, seed=seed,
                                    progress=False)
    folder = get_source("folder")
    assert folder.inputs is not None
    inputs = folder.inputs(parse_options(folder.options, {"videos": str(videos), "group_regex": "_g([0-9]+)_",
                                                          "seed": str(seed)}, where="demo --dataset relations"))
    prepared = data_dir / "prepared"
    prepare_manifest(inputs.manifest, inputs.videos_dir, prepared, dataset="folder", workers=workers,
                     settings=PrepareSettings(short_side=short_side, num_frames=num_frames, storage=storage), progress=False)
    return prepared


def demo_sources() -> list[str]:
    """The registered dataset sources the demo can make and prepare (those with a synthetic writer)."""
    from ..data.sources import registered_sources

    return [s.name for s in registered_sources() if s.synthetic is not None and s.inputs is not None]


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..data.prepare import read_dataset_name, read_prepared_settings
    from ..engine.evaluate import run_evaluation
    from ..engine.plots import plot_training_curves
    from ..engine.train import read_history, train

    t_start = time.perf_counter()
    out: Path = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "demo.log", mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    logging.getLogger("snl_video").addHandler(handler)
    try:
        logger.info("[1/5] self-check of the non-local family")
        for line in self_check():
            logger.info("  %s", line)

        data = out / "data"
        logger.info("[2/5] synthetic %s-format data (%d classes x %d videos, motion only) and its preparation",
                    args.dataset, DEMO_CLASSES, DEMO_VIDEOS_PER_CLASS)
        relations = args.dataset == "relations"
        recipe, extra = ((RELATIONS_CONFIG, RELATIONS_SNL) if relations and args.config == DEMO_CONFIG
                         else (args.config, ()))
        source = "folder" if relations else args.dataset
        cfg = load_config(recipe, [*extra, f"data.root={data / 'prepared'}", f"runtime.output_dir={out / 'train'}",
                                   f"runtime.seed={args.seed}", f"data.dataset={source}", *args.overrides])
        from ..data.relations import RELATION_CLASSES

        made_relations = (data / "raw" / "videos" / RELATION_CLASSES[0]).is_dir()  # the relational task as made now
        if (data / "prepared").exists() and (read_dataset_name(data / "prepared") != source
                                             or made_relations != relations
                                             or (read_prepared_settings(data / "prepared") or {}).get("storage", "npy")
                                             != args.storage):
            # the demo's own data of another source, task or storage: prepare would refuse to mix them
            shutil.rmtree(data)
        size = {"videos_per_class": RELATIONS_VIDEOS_PER_CLASS} if relations else {}
        phase_start = time.perf_counter()
        prepare_demo_data(args.dataset, data, seed=args.seed, num_frames=cfg.data.num_frames, storage=args.storage,
                          **size)
        seconds = {"prepare": time.perf_counter() - phase_start}

        logger.info("[3/5] training %s + %s (%s)", cfg.model.name, cfg.nonlocal_blocks.kind if cfg.nonlocal_blocks else "-",
                    args.config)
        if (out / "train").exists():  # the demo always starts fresh: remove its own previous run
            shutil.rmtree(out / "train")
        phase_start = time.perf_counter()
        result = train(cfg)
        seconds["train"] = time.perf_counter() - phase_start

        logger.info("[4/5] evaluation of %s", result.last_checkpoint)
        assert result.last_checkpoint is not None  # the demo trains >= 1 epoch, and each epoch writes last.pt
        phase_start = time.perf_counter()
        report = run_evaluation(cfg, result.last_checkpoint, out_dir=out)
        seconds["evaluate"] = time.perf_counter() - phase_start

        logger.info("[5/5] plots")
        plot_training_curves({"demo": read_history(out / "train")}, out / "curves.png")
        chance = 100.0 / cfg.model.num_classes
        # the relational task is hard by design (docs/relations_task.md): its target is 1.5x chance
        factor = 1.5 if relations else 3.0
        minutes = (time.perf_counter() - t_start) / 60
        summary = {
            "clip_top1": report.clip_top1, "clip_top5": report.clip_top5, "video_top1": report.video_top1,
            "chance": chance, "target": factor * chance, "passed": report.clip_top1 >= factor * chance,
            "minutes": round(minutes, 2), "seed": args.seed, "storage": args.storage,
            "seconds": {phase: round(value, 1) for phase, value in seconds.items()},
        }
        (out / "demo_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        print(f"\nheld-out clip top-1 {report.clip_top1:.1f}% (top-5 {report.clip_top5:.1f}%), video top-1 "
              f"{report.video_top1:.1f}%, mean class {report.mean_class_accuracy:.1f}%; chance {chance:.1f}%, "
              f"target >= {factor * chance:.1f}%: {'PASSED' if summary['passed'] else 'MISSED'} ({minutes:.1f} min)")
        print(f"outputs in {out}/: metrics.json, curves.png, confusion_matrix.png, *.csv, demo.log; "
              f"run (config, metrics.jsonl/csv, checkpoints) in {out / 'train'}/")
        return 0 if summary["passed"] else 1
    finally:
        logging.getLogger("snl_video").removeHandler(handler)
        handler.close()
