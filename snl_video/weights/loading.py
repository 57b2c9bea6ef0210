"""Load a state dict into a model with an explicit report — never a silent partial load.

Fine-tuning a Kinetics backbone on UCF-101 needs exactly three exceptions to a strict
load, and :func:`load_state_with_report` allows exactly those, by name:

* the classifier (``head_prefixes``): a class-count mismatch (400 → 101) re-initialises it;
* new modules (``new_module_patterns``, e.g. inserted non-local blocks): model keys the
  checkpoint lacks keep their identity initialisation;
* keys the user explicitly ``ignore``-s (fnmatch patterns on checkpoint and model keys).

One key kind is filled in rather than refused: BatchNorm's ``num_batches_tracked``
counter, which checkpoints saved before PyTorch 0.4 (3D-ResNets-PyTorch's 2017 release,
Caffe2 exports) do not have. It only matters for momentum-free BatchNorm; it is set to 0,
as PyTorch itself does for such old state dicts, and listed as ``defaulted``.

Anything else — a backbone tensor missing from the checkpoint, one whose shape differs, a
checkpoint tensor the model has no place for — is an error that lists the keys, raised
before the model is touched. When most keys do not fit, the error says which architecture
the checkpoint looks like and which the model is.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from typing import Mapping, NoReturn, Sequence

import torch
from torch import nn

from .errors import WeightsLoadError, WrongArchitectureError
from .formats import guess_architecture

logger = logging.getLogger(__name__)

__all__ = ["LoadReport", "load_state_with_report", "DEFAULT_NEW_MODULE_PATTERNS"]

# snl_video's non-local blocks (and the usual upstream names for them).
DEFAULT_NEW_MODULE_PATTERNS: tuple[str, ...] = ("*nonlocal*", "*non_local*")

# A load where fewer than this fraction of the model's backbone keys fit is "another architecture".
_WRONG_ARCHITECTURE_FIT = 0.5


@dataclass
class LoadReport:
    """What happened to every key of a load.

    ``loaded``: copied from the checkpoint. ``reinitialised_head``: classifier keys whose
    shape differs (or that the checkpoint lacks), re-initialised. ``new``: model keys
    matching the allowed new-module patterns that the checkpoint lacks; they keep their
    initialisation. ``ignored``: keys the caller chose to ignore. ``defaulted``: BatchNorm
    ``num_batches_tracked`` counters the checkpoint lacks (set to 0). The three error lists
    (``missing``, ``mismatched``, ``unexpected``) must be empty for the load to happen.
    """

    loaded: list[str] = field(default_factory=list)
    reinitialised_head: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    defaulted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    source: str = "<state dict>"

    @property
    def ok(self) -> bool:
        return not (self.missing or self.mismatched or self.unexpected)

    def summary(self, *, max_keys: int = 10) -> str:
        """A few readable lines: counts per category and the first keys of each non-empty one."""

        def keys(items: Sequence[str]) -> str:
            shown = ", ".join(items[:max_keys])
            return shown + (f", ... (+{len(items) - max_keys})" if len(items) > max_keys else "")

        lines = [
            f"load report for {self.source}: {len(self.loaded)} loaded, "
            f"{len(self.reinitialised_head)} head re-initialised, {len(self.new)} new, "
            f"{len(self.ignored)} ignored, {len(self.defaulted)} defaulted, {len(self.missing)} missing, "
            f"{len(self.mismatched)} shape-mismatched, {len(self.unexpected)} unexpected"
        ]
        if self.reinitialised_head:
            lines.append(f"  head re-initialised: {keys(self.reinitialised_head)}")
        if self.new:
            lines.append(f"  new (kept at their initialisation): {keys(self.new)}")
        if self.ignored:
            lines.append(f"  ignored: {keys(self.ignored)}")
        if self.defaulted:
            lines.append(f"  set to 0 (BatchNorm counters the checkpoint predates): {len(self.defaulted)} keys")
        if self.missing:
            lines.append(f"  MISSING from the checkpoint: {keys(self.missing)}")
        if self.mismatched:
            shown = [f"{k} (checkpoint {list(a)} vs model {list(b)})" for k, a, b in self.mismatched]
            lines.append(f"  SHAPE MISMATCH: {keys(shown)}")
        if self.unexpected:
            lines.append(f"  UNEXPECTED (in the checkpoint, not in the model): {keys(self.unexpected)}")
        return "\n".join(lines)


def _matches(key: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def _reset_modules(model: nn.Module, keys: Sequence[str]) -> None:
    """Re-initialise the modules owning ``keys`` through their own ``reset_parameters``."""
    done: set[str] = set()
    for key in keys:
        module_name = key.rsplit(".", 1)[0] if "." in key else ""
        if module_name in done:
            continue
        done.add(module_name)
        module = model.get_submodule(module_name) if module_name else model
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
        else:
            logger.warning("head module %r has no reset_parameters(); it keeps its current values", module_name)


def load_state_with_report(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    head_prefixes: Sequence[str] = ("fc.",),
    ignore: Sequence[str] = (),
    new_module_patterns: Sequence[str] = DEFAULT_NEW_MODULE_PATTERNS,
    source: str = "<state dict>",
    checkpoint_description: str | None = None,
) -> LoadReport:
    """Load ``state_dict`` into ``model`` (already converted to the model's key names).

    Returns the :class:`LoadReport` (also logged). Raises :class:`WeightsLoadError` — or
    :class:`WrongArchitectureError` when most keys do not fit — with the report's summary,
    leaving the model untouched, if any backbone tensor is missing, mis-shaped or
    unexpected. ``checkpoint_description`` (e.g. ``DetectedCheckpoint.describe()``) is used
    in the wrong-architecture message; without it the architecture is guessed from the keys.
    """
    model_state = model.state_dict()
    report, to_load = _classify_keys(model, model_state, state_dict, head_prefixes=head_prefixes, ignore=ignore,
                                     new_module_patterns=new_module_patterns, source=source)
    if not report.ok:
        _refuse_load(model, model_state, state_dict, report, head_prefixes=head_prefixes,
                     new_module_patterns=new_module_patterns, source=source,
                     checkpoint_description=checkpoint_description)
    _load_strict(model, to_load, report)
    logger.info("%s", report.summary())
    return report


def _is_head(key: str, head_prefixes: Sequence[str]) -> bool:
    """Whether ``key`` belongs to the classifier (which may be re-initialised rather than loaded)."""
    return any(key.startswith(p) for p in head_prefixes)


def _is_bn_counter(model: nn.Module, key: str) -> bool:
    """Whether ``key`` is a BatchNorm ``num_batches_tracked`` counter of ``model`` (old checkpoints lack them)."""
    module, _, name = key.rpartition(".")
    if name != "num_batches_tracked":
        return False
    try:
        return isinstance(model.get_submodule(module), nn.modules.batchnorm._BatchNorm)
    except AttributeError:
        return False


def _classify_keys(
    model: nn.Module,
    model_state: Mapping[str, torch.Tensor],
    state_dict: Mapping[str, torch.Tensor],
    *,
    head_prefixes: Sequence[str],
    ignore: Sequence[str],
    new_module_patterns: Sequence[str],
    source: str,
) -> tuple[LoadReport, dict[str, torch.Tensor]]:
    """Put every model and checkpoint key in one category of the report, and collect the
    tensors to load (checkpoint values that fit, zeros for missing BatchNorm counters)."""
    report = LoadReport(source=source)
    to_load: dict[str, torch.Tensor] = {}
    for key, target in model_state.items():
        if key in state_dict:
            value = state_dict[key]
            if not isinstance(value, torch.Tensor):
                report.mismatched.append((key, (), tuple(target.shape)))
            elif tuple(value.shape) == tuple(target.shape):
                report.loaded.append(key)
                to_load[key] = value
            elif _is_head(key, head_prefixes):
                report.reinitialised_head.append(key)
            elif _matches(key, ignore):
                report.ignored.append(key)
            else:
                report.mismatched.append((key, tuple(value.shape), tuple(target.shape)))
        elif _is_head(key, head_prefixes):
            report.reinitialised_head.append(key)
        elif _matches(key, new_module_patterns):
            report.new.append(key)
        elif _matches(key, ignore):
            report.ignored.append(key)
        elif _is_bn_counter(model, key):
            report.defaulted.append(key)
            to_load[key] = torch.zeros_like(target)
        else:
            report.missing.append(key)
    for key in state_dict:
        if key not in model_state:
            (report.ignored if _matches(key, ignore) else report.unexpected).append(key)
    return report, to_load


def _refuse_load(
    model: nn.Module,
    model_state: Mapping[str, torch.Tensor],
    state_dict: Mapping[str, torch.Tensor],
    report: LoadReport,
    *,
    head_prefixes: Sequence[str],
    new_module_patterns: Sequence[str],
    source: str,
    checkpoint_description: str | None,
) -> NoReturn:
    """Log and raise the error of a load that does not fit: :class:`WrongArchitectureError` with
    advice when the two sides look like different networks, else :class:`WeightsLoadError`."""
    summary = report.summary()
    backbone = [k for k in model_state if not _is_head(k, head_prefixes) and not _matches(k, new_module_patterns)]
    # Share of backbone tensors that fit, out of all the model's backbone tensors plus the
    # checkpoint's leftovers: low when the two sides are different networks.
    fitting = sum(1 for k in report.loaded if not _is_head(k, head_prefixes))
    fit = fitting / max(1, len(backbone) + len(report.unexpected))
    ckpt_arch = guess_architecture(state_dict)
    model_arch = guess_architecture(model_state)
    depths_differ = ckpt_arch.depth is not None and model_arch.depth is not None and ckpt_arch.depth != model_arch.depth
    if fit < _WRONG_ARCHITECTURE_FIT or depths_differ:
        ckpt_desc = checkpoint_description or ckpt_arch.describe()
        alike = (
            ckpt_arch.blocks_per_stage == model_arch.blocks_per_stage
            and ckpt_arch.bottleneck == model_arch.bottleneck
            and bool(ckpt_arch.blocks_per_stage)
        )
        advice = (
            "The stage layouts look alike, so the key names probably differ: convert the checkpoint's keys "
            "to the model's (snl_video.weights.formats.convert_state) before loading."
            if alike
            else "Pick the model that matches the checkpoint, or the checkpoint that matches the model."
        )
        message = (
            f"{source} does not fit {type(model).__name__}: the checkpoint looks like {ckpt_desc}, "
            f"the model is {model_arch.describe()} (only {fit:.0%} of their tensors fit each other). "
            f"{advice}\n{summary}"
        )
        logger.error("%s", message)
        raise WrongArchitectureError(message, report)
    message = (
        f"{source} does not fit {type(model).__name__}; nothing was loaded. Fix the key conversion, or "
        f"name the keys to skip with ignore=[fnmatch patterns] (config: pretrained.ignore=['pattern', ...]).\n{summary}"
    )
    logger.error("%s", message)
    raise WeightsLoadError(message, report)


def _load_strict(model: nn.Module, to_load: Mapping[str, torch.Tensor], report: LoadReport) -> None:
    """Re-initialise the reported head, then load strictly: every model key is set exactly once,
    from the checkpoint or from the model's own (re-)initialised value."""
    if report.reinitialised_head:
        _reset_modules(model, report.reinitialised_head)
    current = model.state_dict()
    full = {k: to_load.get(k, current[k]) for k in current}
    model.load_state_dict(full, strict=True)
