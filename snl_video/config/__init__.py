"""Typed experiment configuration: YAML + dotted overrides → validated :class:`ExperimentConfig`.

One function, :func:`load_config`, turns a recipe into typed objects before anything heavy
runs. It reads the YAML (which may include a base file through ``defaults:``), applies
``key=value`` overrides from the command line, and validates the result against the
schema, collecting *every* problem (unknown keys with the closest valid name, wrong types,
out-of-range values, unknown choices, invalid non-local options) into one
:class:`ConfigError`, so a user fixes a recipe in one pass instead of one crash at a time.

The package, by job:

* :mod:`.schema` — the sections as frozen dataclasses with their defaults (the paper's
  UCF-101 recipe) and range checks; the option ``Literal`` types;
* :mod:`.files` — YAML reading with ``defaults:`` includes, dotted overrides,
  :func:`load_config`, and writing (:func:`dump_config`, :func:`save_config`);
* :mod:`.convert` — raw mapping ↔ typed objects (:func:`config_from_dict`, :func:`config_to_dict`);
* :mod:`.validation` — the non-local kind and options, checked against the block registry
  and a probe construction;
* :mod:`.errors` — :class:`ConfigError` and the "did you mean" suggestions;
* :mod:`.recipes` — the recipes shipped in the package (``snl_video/configs/``): their names
  (``ucf101/r3d50_snl``), listing and lookup, and the rule from a ``--config`` value to a file.
"""

from .convert import config_from_dict, config_to_dict
from .errors import ConfigError
from .recipes import RECIPE_SUFFIXES, RecipeInfo, find_recipe, list_recipes, packaged_recipes_dir, resolve_recipe_path
from .files import apply_overrides, config_with_overrides, dump_config, load_config, load_yaml_with_includes, save_config
from .schema import (
    DEFAULT_LOGGERS,
    FREEZE_POINTS,
    INCLUDE_KEYS,
    STAGE_ALIASES,
    STAGE_NAMES,
    Amp,
    DataBackend,
    CheckpointStage,
    ClipProtocol,
    DataConfig,
    DatasetName,
    Device,
    EvalConfig,
    ExperimentConfig,
    FreezePoint,
    LoggerName,
    ModelConfig,
    NoWeightDecayOn,
    NonLocalConfig,
    OptimConfig,
    OptimizerName,
    PretrainedConfig,
    RuntimeConfig,
    ScheduleConfig,
    ScheduleKind,
    TrainCrop,
    VideoReduce,
)

__all__ = [
    "ConfigError",
    "DEFAULT_LOGGERS",
    "DataConfig",
    "DatasetName",
    "EvalConfig",
    "ExperimentConfig",
    "FREEZE_POINTS",
    "LoggerName",
    "ModelConfig",
    "NonLocalConfig",
    "OptimConfig",
    "PretrainedConfig",
    "RECIPE_SUFFIXES",
    "RecipeInfo",
    "RuntimeConfig",
    "ScheduleConfig",
    "STAGE_NAMES",
    "VideoReduce",
    "apply_overrides",
    "config_from_dict",
    "config_with_overrides",
    "config_to_dict",
    "dump_config",
    "find_recipe",
    "list_recipes",
    "load_config",
    "load_yaml_with_includes",
    "packaged_recipes_dir",
    "resolve_recipe_path",
    "save_config",
]
