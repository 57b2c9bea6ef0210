"""Studies: one base recipe × named variants × seeds, each cell an ordinary run, with statistics.

A study spec (YAML) names a train recipe, overrides applied to every cell, the seeds, the
metric (a key of eval's ``metrics.json``), the baseline variant and the variants (each a list
of ``key=value`` overrides of the study's recipe, or a mapping naming a recipe of its own)::

    name: relations_family
    recipe: configs/studies/relations_base.yaml
    overrides: [data.root=data/relations_prepared]
    seeds: [0, 1, 2, 3, 4]
    metric: video_top1
    baseline: baseline
    variants:
      baseline: []
      snl: [nonlocal_blocks.kind=snl]
      x3d_m: {recipe: ucf101/x3d_m.yaml, overrides: []}   # another family, its own recipe

A variant with a recipe of its own (another backbone with its own clip, optimiser and
schedule, as ``configs/studies/table7_backbones.yaml`` puts SlowFast, X3D and the
transformers beside Table 7's rows) gets the study's common and per-seed overrides too, so
it is still paired with the baseline seed by seed (split by split). What every cell must
share is the *comparison* (:data:`COMPARISON_KEYS`: the level, clips × crops, the dataset,
split and validation fraction); the clip, the epochs and the data folder are the recipe's
own (:data:`RECIPE_KEYS`), equal only among variants of one recipe, and the summary shows each
row's clip, parameters and GFLOPs so that rows of different cost are read as such.

Cell ``(variant, seed)`` is the run folder ``OUT/cells/<variant>/seed<k>/`` (train + final
eval: ``snl-video eval`` and ``compare`` work on it unchanged). The lifecycle of
:func:`run_study`:

1. **validate** every cell's resolved config (schema, model build, data) and collect every
   problem into one :class:`~snl_video.config.ConfigError` before anything trains; cells must
   share one evaluation protocol;
2. **record** the spec and protocol in ``OUT/study.json``; a rerun whose spec would change a
   started cell's recipe (or the protocol) is refused, naming the key;
3. **run** the cells of this shard (``--shard I/N``: cell ``i`` of the fixed order with
   ``i ≡ I-1 mod N``; the order is seed-major, so a partial study has whole seeds) — ``jobs``
   at once in separate processes with the CPU threads split between them. A finished cell
   (``cell.json`` with status ``done``) is skipped untouched, a half-trained one resumes from
   its ``last.pt``, a failed one is recorded with its reason and the others go on;
4. **aggregate** after every finished cell (:func:`aggregate_study`): ``summary.json``,
   ``table.md``, ``table.csv`` and ``results.png`` from whatever cells have finished, cells
   missing or failed listed with their reason (so is a finished cell whose run record shows
   it trained on other videos than its data section holds now: the data was re-split).

A cell folder holds a lock file (``.lock``, created with ``O_EXCL``, naming host and PID)
while a process works on it, so two studies (or two shards) never write one cell at once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..config import RECIPE_SUFFIXES, ConfigError, ExperimentConfig, config_to_dict, find_recipe, load_config
from ..errors import InvalidValueError, MissingFileError
from ..fileio import atomic_write_text
from ..locking import LOCK_NAME, output_lock, read_lock

logger = logging.getLogger(__name__)

__all__ = ["StudySpec", "Cell", "CellOutcome", "StudyChangedError", "METRICS", "load_study_spec",
           "study_cells", "shard_cells", "cell_config", "validate_study", "run_study", "run_cell", "aggregate_study",
           "dry_run_report", "parse_shard", "protocol_of", "cell_overrides", "COMPARISON_KEYS", "RECIPE_KEYS",
           "variant_inputs", "end_with_parent", "stop_processes"]

#: Keys of eval's metrics.json a study may summarise (percentages).
METRICS = ("clip_top1", "clip_top5", "video_top1", "video_top5", "mean_class_accuracy")
CELL_RECORD = "cell.json"
STUDY_RECORD = "study.json"
_SPEC_KEYS = ("name", "recipe", "overrides", "seeds", "seed_overrides", "metric", "baseline", "variants", "reference")
_VARIANT_KEYS = ("recipe", "overrides")
#: Protocol keys every cell of a study shares, whatever its recipe: what makes two accuracies comparable.
COMPARISON_KEYS = ("level", "metric", "num_clips", "num_crops", "dataset", "split", "val_fraction")
#: Protocol keys that belong to a recipe: equal among the variants of one recipe, free between recipes.
RECIPE_KEYS = ("num_frames", "sampling_stride", "crop_size", "epochs", "data_root")
#: Keys that differ between cells by construction, or say only how a cell runs: never a protocol change.
_PER_CELL_KEYS = frozenset({"name", "runtime.seed", "runtime.output_dir"})


class StudyChangedError(InvalidValueError):
    """The spec now differs from the study recorded in the output folder in a way that would mix protocols."""


@dataclass(frozen=True)
class StudySpec:
    """A parsed study spec; ``overrides`` include the command line's ``key=value`` (appended)."""

    name: str
    recipe: Path
    overrides: tuple[str, ...]
    seeds: tuple[int, ...]
    metric: str
    baseline: str
    variants: dict[str, tuple[str, ...]]
    #: Overrides of every cell of one seed (e.g. ``{1: [data.split=1], 2: [data.split=2]}``: the
    #: replicate of a UCF-101 study is its split, and cells pair by split).
    seed_overrides: dict[int, tuple[str, ...]] = field(default_factory=dict)
    source: Path | None = None
    #: Variants with a recipe of their own (``variants: {x3d_m: {recipe: ..., overrides: [...]}}``);
    #: the others use ``recipe``.
    variant_recipes: dict[str, Path] = field(default_factory=dict)
    #: Published rows shown beside the study's (a name of :data:`snl_video.engine.published.REFERENCES`).
    reference: str | None = None

    def recipe_of(self, variant: str) -> Path:
        """The recipe file ``variant``'s cells are built from."""
        return self.variant_recipes.get(variant, self.recipe)

    def to_json_dict(self) -> dict[str, Any]:
        variants: dict[str, Any] = {
            k: {"recipe": str(self.variant_recipes[k]), "overrides": list(v)} if k in self.variant_recipes else list(v)
            for k, v in self.variants.items()}
        record = {"name": self.name, "recipe": str(self.recipe), "overrides": list(self.overrides),
                  "seeds": list(self.seeds), "seed_overrides": {str(k): list(v) for k, v in self.seed_overrides.items()},
                  "metric": self.metric, "baseline": self.baseline, "variants": variants}
        if self.reference:
            record["reference"] = self.reference
        return record


@dataclass(frozen=True)
class Cell:
    """One run of a study: ``variant`` with ``runtime.seed = seed``, in ``folder``; ``index`` is its
    place in the study's fixed order (what ``--shard`` divides)."""

    index: int
    variant: str
    seed: int
    folder: Path

    @property
    def label(self) -> str:
        return f"{self.variant}/seed{self.seed}"


@dataclass
class CellOutcome:
    """What running a cell did: ``done``, ``skipped`` (already done), ``failed`` (with ``reason``)."""

    cell: Cell
    status: str
    reason: str | None = None
    value: float | None = None
    seconds: float | None = None
    resumed_from_epoch: int | None = None


# --------------------------------------------------------------------------------------
# Spec, cells, configs
# --------------------------------------------------------------------------------------


def load_study_spec(path: str | os.PathLike[str], extra_overrides: Sequence[str] = ()) -> StudySpec:
    """Read and check a study spec; every problem is reported at once.

    ``path`` is a file, or the name of a shipped study spec (``studies/smoke``). ``recipe`` is a
    path relative to the working directory, or else to the spec's folder or a folder above it,
    or the name of a shipped recipe (``studies/relations_base``).

    Raises:
        ConfigError: listing every problem of the spec (unknown keys, missing fields, a
            baseline that is not a variant, a metric that eval does not write, ...).
        FileNotFoundError: the spec file does not exist.
    """
    path, raw = _read_spec_file(path)
    errors: list[tuple[str, str]] = []
    for key in raw:
        if key not in _SPEC_KEYS:
            errors.append((str(key), f"unknown study key; valid keys: {', '.join(_SPEC_KEYS)}"))
    for key in ("name", "recipe", "seeds", "baseline", "variants"):
        if key not in raw:
            errors.append((key, "is required"))
    recipe = _spec_recipe(path, raw, errors)
    seeds = raw.get("seeds", [])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        errors.append(("seeds", f"must be a non-empty list of seeds >= 0, got {seeds!r}"))
    elif len(set(seeds)) != len(seeds):
        errors.append(("seeds", f"repeats a seed: {seeds}"))
    metric = raw.get("metric", "video_top1")
    if metric not in METRICS:
        errors.append(("metric", f"{metric!r} is not a metric eval writes; valid: {', '.join(METRICS)}"))
    variants, variant_overrides, variant_recipes = _spec_variants(path, raw, errors)
    reference = raw.get("reference")
    if reference is not None:
        from .published import REFERENCES

        if reference not in REFERENCES:
            errors.append(("reference", f"{reference!r} is not a set of published rows; valid: {', '.join(REFERENCES)}"))
    if "baseline" in raw and raw["baseline"] not in variants:
        errors.append(("baseline", f"{raw['baseline']!r} is not a variant; variants: {', '.join(map(str, variants))}"))
    common = raw.get("overrides") or []
    if not _is_override_list(common):
        errors.append(("overrides", f"must be a list of key=value overrides, got {common!r}"))
        common = []
    seed_overrides = _spec_seed_overrides(raw, seeds, errors)
    if errors:
        raise ConfigError(errors, source=str(path))
    return StudySpec(seed_overrides={int(k): tuple(v) for k, v in seed_overrides.items()}, name=str(raw["name"]),
                     recipe=recipe, overrides=tuple(common) + tuple(extra_overrides), seeds=tuple(seeds), metric=metric,
                     baseline=str(raw["baseline"]), variants=variant_overrides, source=path,
                     variant_recipes=variant_recipes, reference=None if reference is None else str(reference))


def _read_spec_file(path: str | os.PathLike[str]) -> tuple[Path, dict[Any, Any]]:
    """Find the spec (a file, or a shipped spec by name) and read its YAML mapping; a missing file
    or a spec that is not a mapping is refused at once (nothing else can be checked)."""
    path = Path(path)
    if not path.is_file() and path.suffix not in RECIPE_SUFFIXES:
        path = find_recipe(str(path))  # a shipped study spec by name, e.g. studies/smoke
    if not path.is_file():
        raise MissingFileError(f"study spec {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError([("", "a study spec is a mapping (name, recipe, seeds, metric, baseline, variants)")],
                          source=str(path))
    return path, raw


def _is_override_list(value: object) -> bool:
    """Whether ``value`` is a list of ``key=value`` override strings."""
    return isinstance(value, list) and all(isinstance(o, str) and "=" in o for o in value)


def _spec_recipe(path: Path, raw: dict[Any, Any], errors: list[tuple[str, str]]) -> Path:
    """The study's recipe as a file (see :func:`_resolve_recipe`); a recipe that cannot be found
    is added to ``errors``."""
    recipe = Path(str(raw.get("recipe", "")))
    if "recipe" in raw:
        found = _resolve_recipe(path, str(raw["recipe"]))
        if found is not None:
            recipe = found
        else:
            errors.append(("recipe", f"{recipe} does not exist (relative to the working directory, the spec's "
                                     f"folder or a folder above it) and is not the name of a shipped recipe"))
    return recipe


def _spec_variants(path: Path, raw: dict[Any, Any], errors: list[tuple[str, str]]
                   ) -> tuple[dict[Any, Any], dict[str, tuple[str, ...]], dict[str, Path]]:
    """The spec's variants as written, each variant's overrides, and the recipes of the variants
    that bring their own; every problem is added to ``errors``."""
    variants = raw.get("variants") or {}
    if not isinstance(variants, dict) or not variants:
        errors.append(("variants", "must map variant names to lists of key=value overrides ([] for the recipe as is)"))
        variants = {}
    variant_overrides: dict[str, tuple[str, ...]] = {}
    variant_recipes: dict[str, Path] = {}
    for name, value in variants.items():
        overrides = value
        if isinstance(value, dict):  # a variant with a recipe of its own
            own = _variant_recipe(path, name, value, errors)
            if own is not None:
                variant_recipes[str(name)] = own
            overrides = value.get("overrides") or []
        if not _is_override_list(overrides):
            errors.append((f"variants.{name}", f"must be a list of key=value overrides, or a mapping with a recipe and "
                                               f"its overrides ({{recipe: ucf101/x3d_m.yaml, overrides: [...]}}), got "
                                               f"{value!r}"))
            overrides = []
        variant_overrides[str(name)] = tuple(overrides)
        if not str(name).replace("_", "").replace("-", "").isalnum():
            errors.append((f"variants.{name}", "a variant name is a folder name: letters, digits, '_' and '-'"))
    return variants, variant_overrides, variant_recipes


def _variant_recipe(path: Path, name: object, value: dict[Any, Any], errors: list[tuple[str, str]]) -> Path | None:
    """The own recipe of a variant written as a mapping (``{recipe: ..., overrides: [...]}``), or
    ``None`` with the problem (unknown key, no recipe, a recipe not found) added to ``errors``."""
    for key in value:
        if key not in _VARIANT_KEYS:
            errors.append((f"variants.{name}.{key}", f"unknown variant key; valid keys: {', '.join(_VARIANT_KEYS)}"))
    if "recipe" not in value:
        errors.append((f"variants.{name}.recipe", "is required in a variant written as a mapping (else write "
                                                   "the variant as a list of overrides of the study's recipe)"))
        return None
    own = _resolve_recipe(path, str(value["recipe"]))
    if own is None:
        errors.append((f"variants.{name}.recipe", f"{value['recipe']} does not exist (relative to the working "
                                                  f"directory, the spec's folder or a folder above it) and is "
                                                  f"not the name of a shipped recipe"))
    return own


def _spec_seed_overrides(raw: dict[Any, Any], seeds: Any, errors: list[tuple[str, str]]) -> dict[Any, Any]:
    """The per-seed overrides (``{seed: [key=value, ...]}``, seeds among ``seeds``); a malformed
    mapping is added to ``errors`` and read as empty."""
    seed_overrides = raw.get("seed_overrides") or {}
    if not isinstance(seeds, (list, tuple)):
        seeds = ()  # `seeds` itself is malformed (reported under its own key): no seed is known
    if not isinstance(seed_overrides, dict) or not all(k in seeds and _is_override_list(v)
                                                       for k, v in seed_overrides.items()):
        errors.append(("seed_overrides", f"must map seeds of `seeds` to lists of key=value overrides, got "
                                         f"{seed_overrides!r}"))
        seed_overrides = {}
    return seed_overrides


def _resolve_recipe(spec_path: Path, recipe: str) -> Path | None:
    """A spec's ``recipe`` value as a file: relative to the working directory, else to the spec's
    folder or a folder above it (the repository root for configs/studies/*.yaml, run from
    anywhere), else the name of a shipped recipe (``ucf101/x3d_m``); ``None`` when none exists."""
    candidate = Path(recipe)
    if candidate.is_file():
        return candidate
    found = next((p / candidate for p in spec_path.resolve().parents if (p / candidate).is_file()), None)
    if found is None and candidate.suffix not in RECIPE_SUFFIXES:
        try:
            found = find_recipe(recipe)
        except MissingFileError:
            found = None
    return found


def study_cells(spec: StudySpec, out: str | os.PathLike[str]) -> list[Cell]:
    """Every cell in the study's fixed order: seed-major (all variants of the first seed, then of
    the next), so shards and interrupted studies complete whole seeds, which pair."""
    out = Path(out)
    pairs = [(variant, seed) for seed in spec.seeds for variant in spec.variants]
    return [Cell(i, v, s, out / "cells" / v / f"seed{s}") for i, (v, s) in enumerate(pairs)]


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` → ``(I, N)`` with ``1 <= I <= N``."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise InvalidValueError(f"--shard {text!r}: give I/N, e.g. 1/4 (shard I of N, 1-based)") from None
    if not 1 <= i <= n:
        raise InvalidValueError(f"--shard {text}: I must be in 1..N, e.g. 1/{max(n, 1)}")
    return i, n


def shard_cells(cells: Sequence[Cell], shard: tuple[int, int] = (1, 1)) -> list[Cell]:
    """The cells of shard ``I/N``: those with ``index ≡ I-1 (mod N)``."""
    i, n = shard
    return [c for c in cells if c.index % n == i - 1]


def cell_overrides(spec: StudySpec, cell: Cell, *, progress: bool = True) -> list[str]:
    """The overrides that make ``cell``'s config from the recipe: the study's, the variant's, then
    the cell's own (seed, output folder, name)."""
    own = [f"runtime.seed={cell.seed}", f"runtime.output_dir={cell.folder}", f"name={spec.name}_{cell.variant}_seed{cell.seed}"]
    return [*spec.overrides, *spec.seed_overrides.get(cell.seed, ()), *spec.variants[cell.variant], *own] + ([] if progress else ["runtime.progress=false"])


def cell_config(spec: StudySpec, cell: Cell, *, progress: bool = True) -> ExperimentConfig:
    """The resolved config of ``cell`` (raises :class:`ConfigError` as ``load_config`` does)."""
    return load_config(spec.recipe_of(cell.variant), cell_overrides(spec, cell, progress=progress))


def protocol_of(cfg: ExperimentConfig, metric: str) -> dict[str, Any]:
    """What a cell's metric was measured under: the fields that must be equal across a study."""
    level = "clip" if metric.startswith("clip") else "video"
    clips, crops = (1, 1) if level == "clip" else (cfg.eval.num_clips, cfg.eval.num_crops)
    return {"level": level, "metric": metric, "num_clips": clips, "num_crops": crops,
            "num_frames": cfg.data.num_frames, "sampling_stride": cfg.data.sampling_stride,
            "crop_size": cfg.data.crop_size, "epochs": cfg.schedule.epochs, "dataset": cfg.data.dataset,
            "split": cfg.data.split, "data_root": cfg.data.root, "val_fraction": cfg.data.val_fraction}


def validate_study(spec: StudySpec, out: str | os.PathLike[str], *, progress: bool = True,
                   missing_data_ok: bool = False) -> dict[Cell, ExperimentConfig]:
    """Resolve and check every cell before anything trains; return their configs.

    Schema problems of every cell, the model build of every variant and the data of every
    distinct data section are collected and raised at once, each key prefixed with the variant.
    ``missing_data_ok``: a data folder that does not exist is logged, not an error (a dry run
    planned before the data is prepared); one that exists is checked all the same.

    Raises:
        ConfigError: every problem found.
    """
    from .preflight import data_problems, model_problems

    errors: list[tuple[str, str]] = []
    configs: dict[Cell, ExperimentConfig] = {}
    checked_variants: set[str] = set()
    checked_data: set[str] = set()
    missing_roots: set[str] = set()
    protocols: dict[str, dict[str, Any]] = {}
    for cell in study_cells(spec, out):
        try:
            cfg = cell_config(spec, cell, progress=progress)
        except ConfigError as exc:
            if cell.variant not in checked_variants:
                errors += [(f"variants.{cell.variant}: {key}", message) for key, message in exc.errors]
            checked_variants.add(cell.variant)
            continue
        configs[cell] = cfg
        if cell.variant not in checked_variants:
            checked_variants.add(cell.variant)
            errors += [(f"variants.{cell.variant}: {k}", m) for k, m in model_problems(cfg)]
            protocols[cell.variant] = protocol_of(cfg, spec.metric)
        data_key = json.dumps(config_to_dict(cfg)["data"], sort_keys=True, default=str)
        if data_key not in checked_data:
            checked_data.add(data_key)
            if missing_data_ok and not Path(cfg.data.root).exists():
                if cfg.data.root not in missing_roots:
                    missing_roots.add(cfg.data.root)
                    logger.warning("data.root=%s does not exist here: the study will not start until it does",
                                   cfg.data.root)
                continue
            errors += [(f"variants.{cell.variant}: {k}", m) for k, m in data_problems(cfg, subsets=("train", "test"))]
    errors += _protocol_errors(spec, protocols)
    if errors:
        raise ConfigError(errors, source=str(spec.source or spec.name))
    return configs


def _protocol_errors(spec: StudySpec, protocols: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """Every variant against the baseline: the :data:`COMPARISON_KEYS` always, the whole protocol
    when the variant shares its recipe with the baseline (so an override of the clip or the
    epochs is still refused there); and variants of one recipe of their own alike on
    :data:`RECIPE_KEYS`."""
    errors: list[tuple[str, str]] = []
    if spec.baseline not in protocols:
        return errors
    base = protocols[spec.baseline]
    first_of_recipe: dict[Path, str] = {}
    for variant, protocol in protocols.items():
        recipe = spec.recipe_of(variant)
        leader = first_of_recipe.setdefault(recipe, variant)
        same_recipe = recipe == spec.recipe_of(spec.baseline)
        for key, value in protocol.items():
            if key in COMPARISON_KEYS or same_recipe:
                if value != base[key]:
                    errors.append((f"variants.{variant}", f"changes the evaluation protocol: {key} is {value!r}, the "
                                                          f"baseline's is {base[key]!r}; a study compares one protocol"))
            elif value != protocols[leader][key]:
                errors.append((f"variants.{variant}", f"{key} is {value!r}, but {leader!r} of the same recipe "
                                                      f"({recipe.name}) has {protocols[leader][key]!r}: variants of one "
                                                      f"recipe share its clip and schedule"))
    return errors


def variant_inputs(cfg: ExperimentConfig) -> dict[str, Any]:
    """What a variant's own recipe sets of the protocol (:data:`RECIPE_KEYS`), for the summary."""
    return {"num_frames": cfg.data.num_frames, "sampling_stride": cfg.data.sampling_stride,
            "crop_size": cfg.data.crop_size, "epochs": cfg.schedule.epochs, "data_root": cfg.data.root}


# --------------------------------------------------------------------------------------
# The record of a study, and what may change between runs of it
# --------------------------------------------------------------------------------------


def _check_against_record(spec: StudySpec, out: Path, configs: dict[Cell, ExperimentConfig]) -> None:
    """Refuse a spec whose protocol differs from ``study.json``'s, or that would change the recipe
    of a cell already started (its ``config.yaml``), naming the first key."""
    from .resume import RESUMABLE_KEYS, config_differences

    record = out / STUDY_RECORD
    base_cfg = next(cfg for cell, cfg in configs.items() if cell.variant == spec.baseline)
    protocol = protocol_of(base_cfg, spec.metric)
    if record.is_file():
        recorded = json.loads(record.read_text())
        for key, value in recorded.get("protocol", {}).items():
            if key != "metric" and protocol.get(key) != value:
                raise StudyChangedError(
                    f"the study in {out} was run with protocol {key}={value!r}; this spec gives {protocol.get(key)!r}: "
                    f"its cells would not be comparable. Restore the spec, or use a new --out folder")
    for cell, cfg in configs.items():
        recorded_file = cell.folder / "config.yaml"
        if not recorded_file.is_file():
            continue
        diffs = [d for d in config_differences(load_config(recorded_file), cfg)
                 if d[0] not in RESUMABLE_KEYS and d[0] not in _PER_CELL_KEYS]
        if diffs:
            key, old, new = diffs[0]
            more = f" (and {len(diffs) - 1} more key(s))" if len(diffs) > 1 else ""
            raise StudyChangedError(
                f"the spec changed: cell {cell.label} was started with {key}={old!r} and would now get {new!r}{more}; "
                f"restore the spec, or use a new --out folder")


def _write_record(spec: StudySpec, out: Path, configs: dict[Cell, ExperimentConfig]) -> None:
    base_cfg = next(cfg for cell, cfg in configs.items() if cell.variant == spec.baseline)
    record = {"spec": spec.to_json_dict(), "protocol": protocol_of(base_cfg, spec.metric),
              "recipe_resolved": config_to_dict(base_cfg)}
    atomic_write_text(out / STUDY_RECORD, json.dumps(record, indent=1, default=str) + "\n")


# --------------------------------------------------------------------------------------
# Running one cell
# --------------------------------------------------------------------------------------


def _read_cell_record(folder: Path) -> dict[str, Any] | None:
    path = folder / CELL_RECORD
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError:
        return None


def run_cell(cfg: ExperimentConfig, cell: Cell, *, metric: str, threads: int | None = None) -> CellOutcome:
    """Train and evaluate one cell in its folder (or skip it when it is done, or resume it from
    ``last.pt``), record the outcome in ``cell.json`` and return it. A failure of the cell
    (an exception from training or evaluation) is recorded with its reason, not raised;
    Ctrl-C is raised (the cell resumes on the next run)."""
    import shutil

    import torch

    from .checkpoint import LAST
    from .evaluate import run_evaluation
    from .runtime import flush_denormal
    from .train import train

    record = _read_cell_record(cell.folder)
    if record and record.get("status") == "done":
        return CellOutcome(cell, "skipped", value=record.get("value"))
    if threads:
        torch.set_num_threads(threads)
    # one writer per cell (the toolkit's output lock: host, PID, stale locks of dead processes taken over)
    with output_lock(cell.folder, "study"):
        last = cell.folder / "checkpoints" / LAST
        resumed_from = None
        if last.is_file():
            resumed_from = int(torch.load(last, map_location="cpu", weights_only=True, mmap=True).get("epoch", 0))
        else:  # leftovers of a start that died before its first checkpoint, or of a failed try
            for child in cell.folder.iterdir():
                if child.name != LOCK_NAME:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        start = time.perf_counter()
        try:
            # one flush-to-zero scope for the cell (after its thread count is set); the scopes of
            # train and of the evaluation nest inside it, each restoring the cell's setting
            with flush_denormal(cfg.runtime.flush_denormal):
                result = train(cfg, resume=last.is_file())
                if result.last_checkpoint is None:
                    raise RuntimeError("training wrote no checkpoint")
                report = run_evaluation(cfg, result.last_checkpoint, clip_outputs=result.final_clip_outputs)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed cell is a result to report, not a crash
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
            logger.warning("cell %s failed: %s", cell.label, reason)
            atomic_write_text(cell.folder / CELL_RECORD, json.dumps(
                {"variant": cell.variant, "seed": cell.seed, "status": "failed", "reason": reason,
                 "resumed_from_epoch": resumed_from}, indent=1) + "\n")
            return CellOutcome(cell, "failed", reason=reason, resumed_from_epoch=resumed_from)
        seconds = time.perf_counter() - start
        value = float(report.to_json_dict()[metric])
        atomic_write_text(cell.folder / CELL_RECORD, json.dumps(
            {"variant": cell.variant, "seed": cell.seed, "status": "done", "metric": metric, "value": value,
             "seconds": round(seconds, 1), "threads": torch.get_num_threads(), "resumed_from_epoch": resumed_from},
            indent=1) + "\n")
        return CellOutcome(cell, "done", value=value, seconds=seconds, resumed_from_epoch=resumed_from)


def end_with_parent(parent_pid: int) -> None:
    """Initializer of a ``--jobs N`` worker: end it when the study process ends, however it ends.

    A worker that outlived a killed study (``kill -9``, an OOM kill) would go on training the
    cells queued to it with nobody waiting for them, holding their locks and racing the next
    run. On Linux the kernel sends the worker SIGTERM when its parent dies
    (``PR_SET_PDEATHSIG``); a parent already gone before that was set ends the worker at once.
    Elsewhere only the second check applies.
    """
    import signal
    import sys

    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def stop_processes(processes: set[Any], timeout: float = 10.0) -> None:
    """Terminate ``processes`` (``multiprocessing.Process``) and wait for them, killing any that
    ignore SIGTERM within ``timeout`` seconds: an interrupted study leaves no cell running."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join()


def _run_cell_in_worker(spec: StudySpec, cell: Cell, progress: bool, threads: int) -> CellOutcome:
    """Entry point of a worker process (``--jobs N``)."""
    import logging as _logging

    _logging.basicConfig(level=_logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                         datefmt="%H:%M:%S")
    return run_cell(cell_config(spec, cell, progress=progress), cell, metric=spec.metric, threads=threads)


# --------------------------------------------------------------------------------------
# The study
# --------------------------------------------------------------------------------------


@dataclass
class StudyResult:
    """What :func:`run_study` did in this call, and the summary it left."""

    out: Path
    outcomes: list[CellOutcome] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def run_study(spec: StudySpec, out: str | os.PathLike[str], *, jobs: int = 1, shard: tuple[int, int] = (1, 1),
              progress: bool = True) -> StudyResult:
    """Validate, record, run this shard's cells and aggregate; see the module docstring.

    Raises:
        ConfigError: a cell's config is invalid (nothing has run).
        StudyChangedError: the spec would change a started cell or the recorded protocol.
    """
    out = Path(out)
    configs = validate_study(spec, out, progress=progress)
    _check_against_record(spec, out, configs)
    out.mkdir(parents=True, exist_ok=True)
    _write_record(spec, out, configs)
    todo = shard_cells(study_cells(spec, out), shard)
    result = StudyResult(out)
    profiles: dict[str, tuple[int, int, int]] = {}
    logger.info("study %s: %d cell(s) in this shard (%d/%d) of %d, %d at once, output %s", spec.name, len(todo),
                *shard, len(configs), jobs, out)
    aggregate_study(spec, out, configs=configs, profiles=profiles)

    def finished(outcome: CellOutcome) -> None:
        result.outcomes.append(outcome)
        done = len(result.outcomes)
        value = "" if outcome.value is None else f", {spec.metric} {outcome.value:.2f}"
        took = "" if outcome.seconds is None else f" in {outcome.seconds:.0f} s"
        logger.info("cell %d/%d %s: %s%s%s%s", done, len(todo), outcome.cell.label, outcome.status, took, value,
                    f" ({outcome.reason})" if outcome.reason else "")
        if outcome.status != "skipped":
            result.summary = aggregate_study(spec, out, configs=configs, profiles=profiles)

    if jobs <= 1:
        for cell in todo:
            finished(run_cell(configs[cell], cell, metric=spec.metric))
    else:
        import multiprocessing

        from .preflight import available_cpus

        threads = max(1, available_cpus() // jobs)
        children_before = set(multiprocessing.active_children())
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=end_with_parent, initargs=(os.getpid(),)) as pool:
            pending = {pool.submit(_run_cell_in_worker, spec, cell, progress, threads) for cell in todo}
            try:
                while pending:
                    ready, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in ready:
                        finished(future.result())
            except BaseException:
                # Interrupted (a SIGINT to this process alone, as a scheduler or `kill -INT` sends):
                # without this the pool's exit would wait for the running cells and start the
                # queued ones. Each cell resumes from its last checkpoint on the next run.
                pool.shutdown(wait=False, cancel_futures=True)
                stop_processes(set(multiprocessing.active_children()) - children_before)
                raise
    result.summary = aggregate_study(spec, out, configs=configs, profiles=profiles)
    return result


def _cell_state(cell: Cell, epochs: int) -> tuple[dict[str, Any] | None, str]:
    """The cell's record (when done) and, otherwise, why it has no value yet."""
    record = _read_cell_record(cell.folder)
    if record and record.get("status") == "done":
        return record, ""
    if record and record.get("status") == "failed":
        return None, f"failed: {record.get('reason')}"
    holder = read_lock(cell.folder)
    if holder is not None:
        return None, f"running ({holder.host} {holder.pid})"
    history = cell.folder / "metrics.jsonl"
    if history.is_file():
        from .train import read_history

        done = max((h["epoch"] for h in read_history(cell.folder) if h.get("kind") == "epoch"), default=0)
        return None, f"incomplete: {done} of {epochs} epochs (rerun the study to resume it)"
    return None, "not run"


def _other_training_set(cell: Cell, cfg: ExperimentConfig, expected: dict[str, dict[str, Any]]) -> str:
    """Why a finished cell does not count because it trained on other videos than its data
    section names now (the dataset was re-split in place since), or ``""``. A cell without a
    record of its training videos (trained before they were recorded) is not checked.
    ``expected``: a cache of the current fingerprints by data section."""
    from .records import describe_fingerprint, read_run_fingerprint, train_fingerprint

    recorded = read_run_fingerprint(cell.folder)
    if recorded is None:
        return ""
    key = json.dumps(config_to_dict(cfg)["data"], sort_keys=True, default=str)
    if key not in expected:
        expected[key] = train_fingerprint(cfg)
    now = expected[key]
    if recorded["sha256"] == now["sha256"]:
        return ""
    reason = (f"trained on another training set ({describe_fingerprint(recorded)}) than {cfg.data.root} split "
              f"{cfg.data.split} holds now ({describe_fingerprint(now)}: re-split since?); delete {cell.folder} and "
              "rerun the study to retrain it on the current data")
    logger.warning("study: cell %s not counted: %s", cell.label, reason)
    return reason


def aggregate_study(spec: StudySpec, out: str | os.PathLike[str], *,
                    configs: dict[Cell, ExperimentConfig] | None = None,
                    profiles: dict[str, tuple[int, int, int]] | None = None) -> dict[str, Any]:
    """Read every cell's outcome and write ``summary.json``, ``table.md``, ``table.csv`` and
    ``results.png``; return the summary. Cells without a value are listed in ``missing``, and
    so is a finished cell whose run record shows it trained on other videos than its data
    section names now (``train_videos.json`` against the current training list: the data was
    re-split since), with that reason.

    Raises:
        MixedProtocolError: finished cells were evaluated under different protocols.
    """
    from .compare import MixedProtocolError, collect_row, profile_config
    from .stats import paired_delta, summarise
    from .study_report import plot_study, write_study_tables

    out = Path(out)
    configs = configs if configs is not None else validate_study(spec, out)
    profiles = profiles if profiles is not None else {}
    base_cfg = next(cfg for cell, cfg in configs.items() if cell.variant == spec.baseline)
    protocol = protocol_of(base_cfg, spec.metric)
    if spec.seed_overrides:  # e.g. one UCF-101 split per seed: the first seed's values above, these per seed
        protocol["seed_overrides"] = {str(k): list(v) for k, v in spec.seed_overrides.items()}
    values: dict[str, dict[int, float]] = {v: {} for v in spec.variants}
    missing, rows = [], []
    expected_videos: dict[str, dict[str, Any]] = {}  # the training set each data section names now
    rows_by_variant: dict[str, list[Any]] = {v: [] for v in spec.variants}
    for cell in study_cells(spec, out):
        record, reason = _cell_state(cell, (configs[cell] if cell in configs else base_cfg).schedule.epochs)
        if record is not None and cell in configs:
            reason = _other_training_set(cell, configs[cell], expected_videos)
            record = None if reason else record
        if record is None:
            missing.append({"variant": cell.variant, "seed": cell.seed, "reason": reason})
            continue
        row = collect_row(cell.folder, level=protocol["level"], profile=False)
        rows.append(row)
        rows_by_variant[cell.variant].append(row)
        values[cell.variant][cell.seed] = float(row.metrics[spec.metric])
        protocol.setdefault("test_videos", row.videos)
    problems = _mixed_evaluations(spec, rows_by_variant)
    if problems:
        raise MixedProtocolError(f"cells of the study in {out} were evaluated under different protocols: "
                                 f"{problems[0]}; re-evaluate them alike")
    variants = []
    for name, overrides in spec.variants.items():
        cfg = next((cfg for cell, cfg in configs.items() if cell.variant == name), None)
        if name not in profiles and cfg is not None:
            profiles[name] = profile_config(cfg)
        seeds = sorted(values[name])
        s = summarise([values[name][k] for k in seeds])
        delta = None
        if name != spec.baseline:
            d = paired_delta(values[name], values[spec.baseline])
            delta = {"values": list(d.values), "mean": d.mean,
                     "ci95": list(d.ci95) if d.ci95 else None, "p_value": d.p_value, "test": d.test}
        variant_macs, variant_params, variant_macs_table7 = profiles.get(name, (None, None, None))
        variants.append({"name": name, "overrides": list(overrides), "seeds": seeds, "values": list(s.values),
                         "mean": s.mean, "std": s.std, "ci95": list(s.ci95) if s.ci95 else None, "delta": delta,
                         "params": variant_params, "macs": variant_macs, "macs_table7": variant_macs_table7,
                         "model": None if cfg is None else cfg.model.name,
                         "recipe": str(spec.variant_recipes[name]) if name in spec.variant_recipes else None,
                         "input": None if cfg is None else variant_inputs(cfg)})
    summary = {"name": spec.name, "metric": spec.metric, "baseline": spec.baseline, "protocol": protocol,
               "variants": variants, "missing": missing}
    if spec.reference:
        summary["reference"] = spec.reference
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    write_study_tables(summary, out / "table.md", out / "table.csv")
    plot_study(summary, out / "results.png")
    return summary


def _mixed_evaluations(spec: StudySpec, rows_by_variant: dict[str, list[Any]]) -> list[str]:
    """Lines naming finished cells evaluated differently: within one recipe the whole protocol
    (clips x crops, clip, stride, size) must agree; across recipes the clips x crops and, as
    their data folders may differ, the number of test videos."""
    from .compare import protocol_problems, views_of

    lines: list[str] = []
    by_recipe: dict[Path, list[Any]] = {}
    for variant, rows in rows_by_variant.items():
        by_recipe.setdefault(spec.recipe_of(variant), []).extend(rows)
    for rows in by_recipe.values():
        lines += [p for p in protocol_problems(rows) if "protocols" in p]
    everyone = [r for rows in rows_by_variant.values() for r in rows]
    if len({views_of(r.protocol) for r in everyone}) > 1:
        lines.append("the runs were evaluated under different protocols (views per video): "
                     + "; ".join(f"{r.run}: {r.protocol}" for r in everyone))
    if len(by_recipe) > 1 and len({r.videos for r in everyone if r.videos is not None}) > 1:
        # recipes of their own may read other data folders: their rows pair only on the same test videos
        lines.append("the runs were evaluated under different protocols (numbers of test videos): "
                     + "; ".join(f"{r.run}: {r.videos}" for r in everyone))
    return lines


# --------------------------------------------------------------------------------------
# Dry run
# --------------------------------------------------------------------------------------


def _timed_train_step(cfg: ExperimentConfig) -> float:
    """Seconds of one training step (forward + backward + SGD update) of the config's model on a
    batch of zeros at the configured batch size and clip shape, after one warm-up step."""
    import torch

    from .builders import build_model_from_config

    model = build_model_from_config(cfg, load_weights=False)
    model.train()
    d = cfg.data
    clips = torch.zeros(d.batch_size, 3, d.num_frames, d.crop_size, d.crop_size)
    labels = torch.zeros(d.batch_size, dtype=torch.long)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(clips), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seconds.append(time.perf_counter() - start)
    return seconds[-1]


def dry_run_report(spec: StudySpec, out: str | os.PathLike[str], *, shard: tuple[int, int] = (1, 1),
                   jobs: int = 1, time_steps: bool = True) -> list[str]:
    """Lines describing the study without running it: the cells of this shard with their status,
    each variant's recipe and resolved differences from the baseline (from its own recipe for a
    variant that names one), and the projected time (one timed training step per variant ×
    steps per epoch × epochs, plus the evaluation's forward passes at a third of a training
    step each).

    A data folder that does not exist yet (the GPU study planned on a laptop) is not an error
    here: the report says so, and leaves out the projected time, which needs the number of
    videos. The real run still refuses to start without the data.
    """
    from .builders import build_dataset
    from .resume import config_differences

    out = Path(out)
    configs = validate_study(spec, out, missing_data_ok=True)
    cells = study_cells(spec, out)
    mine = shard_cells(cells, shard)
    base_cfg = next(cfg for cell, cfg in configs.items() if cell.variant == spec.baseline)
    lines = [f"study {spec.name}: {len(spec.variants)} variant(s) x {len(spec.seeds)} seed(s) = {len(cells)} cells; "
             f"shard {shard[0]}/{shard[1]}: {len(mine)} cell(s); metric {spec.metric}; recipe {spec.recipe}",
             "protocol: " + ", ".join(f"{k}={v}" for k, v in protocol_of(base_cfg, spec.metric).items())]
    missing_roots = sorted({cfg.data.root for cfg in configs.values() if not Path(cfg.data.root).exists()})
    if missing_roots:
        lines.append(f"data: {', '.join(missing_roots)} not prepared here yet (snl-video prepare ...): the study will "
                     f"not start until it is; no projected time without the number of videos")
        time_steps = False
    videos: dict[str, tuple[int, int]] = {}  # (train, test) by data folder
    total = 0.0
    for variant in spec.variants:
        cfg = next(c for cell, c in configs.items() if cell.variant == variant)
        if variant in spec.variant_recipes:
            overrides = " ".join(spec.variants[variant]) or "no overrides"
            inputs = variant_inputs(cfg)
            line = (f"  {variant}: own recipe {spec.variant_recipes[variant]} ({overrides}): {cfg.model.name}, "
                    f"{inputs['num_frames']}f/{inputs['sampling_stride']} @{inputs['crop_size']}, "
                    f"{inputs['epochs']} epochs, {cfg.optim.name} lr {cfg.optim.lr:g}, "
                    f"non-local {cfg.nonlocal_blocks.kind if cfg.nonlocal_blocks else '-'}")
        else:
            diffs = [f"{k}: {old!r} -> {new!r}" for k, old, new in config_differences(base_cfg, cfg)
                     if k not in _PER_CELL_KEYS]
            line = f"  {variant}: " + ("; ".join(diffs) if diffs else "(the recipe as is)")
        if time_steps:
            if cfg.data.root not in videos:
                videos[cfg.data.root] = (len(build_dataset(cfg, subset="train", mode="clip")),
                                         len(build_dataset(cfg, subset="test", mode="clip")))
            train_videos, test_videos = videos[cfg.data.root]
            step = _timed_train_step(cfg)
            steps = math.ceil(train_videos / cfg.data.batch_size) * cfg.schedule.epochs
            views = test_videos * (1 + cfg.eval.num_clips * cfg.eval.num_crops)
            per_cell = step * steps + step / 3 * views / cfg.data.batch_size
            count = sum(1 for c in mine if c.variant == variant and not _is_done(c))
            total += per_cell * count
            line += f"  [~{per_cell / 60:.1f} min per cell, one step {step:.2f} s]"
        lines.append(line)
    for cell in mine:
        record, reason = _cell_state(cell, configs[cell].schedule.epochs)
        lines.append(f"  cell {cell.index}: {cell.label} -> {cell.folder} [{'done' if record else reason}]")
    if time_steps:
        lines.append(f"projected: ~{total / 60:.0f} min for the {sum(not _is_done(c) for c in mine)} cell(s) left "
                     f"with one process (steps timed on this machine now; --jobs {jobs} splits the threads, so on a "
                     f"busy CPU expect about the same total)")
    return lines


def _is_done(cell: Cell) -> bool:
    record = _read_cell_record(cell.folder)
    return bool(record and record.get("status") == "done")
