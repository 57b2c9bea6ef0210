"""From a validated :class:`~snl_video.config.ExperimentConfig` to the objects a run needs.

Train and eval share these, so a checkpoint is always evaluated with the model, the
normalisation and the clip spec it was trained with.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from torch import nn

from ..errors import InvalidValueError, MissingFileError
from ..config import ExperimentConfig, NonLocalConfig
from ..data.datasets import ClipDataset, prepared_dataset, video_file_dataset
from ..data.transforms import HARA_KINETICS_NORMALIZATION, NormalizationSpec, input_transform, train_transform
from ..inputspec import InputSpec, rgb_triple

logger = logging.getLogger(__name__)

__all__ = ["resolve_device", "ResolvedRecipe", "resolve_recipe", "build_model_from_config", "normalization_from_config",
           "input_spec_from_config", "build_dataset", "class_names", "selection_subset"]


def resolve_device(name: str) -> torch.device:
    """``auto`` → the CUDA device of this process (``LOCAL_RANK``) when there is one, else the CPU."""
    import os

    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise InvalidValueError("runtime.device=cuda but no CUDA device is visible; use runtime.device=cpu or auto")
        index = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


@dataclass(frozen=True)
class ResolvedRecipe:
    """A recipe with everything that shapes the model written out, and what was filled in.

    ``implied`` holds one ``(dotted key, value, why)`` per value the recipe did not give: the
    model options and non-local placement a weights registry entry implies, the default
    block positions, the normalisation.
    """

    config: ExperimentConfig
    implied: tuple[tuple[str, Any, str], ...]

    def describe(self) -> list[str]:
        """One line per filled-in value (for ``config check`` and the training log)."""
        return [f"{key}={value!r} ({why})" for key, value, why in self.implied]


def resolve_recipe(cfg: ExperimentConfig) -> ResolvedRecipe:
    """Write out everything that shapes the model ``cfg`` trains, so the record is the model.

    The one place where implicit model facts become explicit recipe values:

    * the model options a weights registry entry needs (``pretrained: r3d18.hara2017_k400``
      → ``model.options.shortcut: A``; FFC's ``lfu``); one given with another value is an
      error naming both;
    * the non-local blocks a registry checkpoint holds (BAT's placement), when the recipe
      places none;
    * the non-local positions (the default placement, made explicit for this backbone);
    * the normalisation (``data.mean/std/value_scale``: the pretrained weights' (a registry
      entry, or the one a file stands for: :func:`pretrained_input_spec`), else the default).

    Train records the result in ``config.yaml`` and every checkpoint; every builder
    (:func:`build_model_from_config`) resolves again, which changes nothing on a resolved
    recipe and repairs a recipe recorded before this existed. Idempotent.
    """
    from ..models.registry import weights_implied

    implied: list[tuple[str, Any, str]] = []
    model = cfg.model
    nonlocal_cfg = cfg.nonlocal_blocks
    by_weights = weights_implied(model.name, cfg.pretrained.source) if cfg.pretrained is not None else None
    if by_weights is not None:
        options = dict(model.options)
        for key, value in by_weights.model_options:
            if key not in options:
                options[key] = value
                implied.append((f"model.options.{key}", value, f"{by_weights.weights} needs it"))
            elif options[key] != value:
                raise InvalidValueError(
                    f"{by_weights.weights} needs {model.name} built with {key}={value!r}, but model.options.{key}="
                    f"{options[key]!r} was given: set model.options.{key}={value} or leave it out")
        model = dataclasses.replace(model, options=options)
        if nonlocal_cfg is None and by_weights.nonlocal_blocks is not None:
            placed = by_weights.nonlocal_blocks
            nonlocal_cfg = NonLocalConfig(
                kind=str(placed["kind"]), options=dict(placed.get("options", {})),
                positions={str(k): tuple(int(i) for i in v) for k, v in placed["positions"].items()}
                if placed.get("positions") is not None else None)
            implied.append(("nonlocal_blocks", {"kind": nonlocal_cfg.kind, "options": dict(nonlocal_cfg.options)},
                            f"the blocks {by_weights.weights} holds"))
    if nonlocal_cfg is not None and nonlocal_cfg.positions is None:
        depths = _stage_depths(model.name, model.options)
        if depths is not None:
            from ..models import default_positions

            positions = {stage: tuple(idx) for stage, idx in default_positions(depths).items()}
            nonlocal_cfg = dataclasses.replace(nonlocal_cfg, positions=positions)
            implied.append(("nonlocal_blocks.positions", {k: list(v) for k, v in positions.items()},
                            "the default placement"))
    data = cfg.data
    if data.mean is None or data.std is None:  # (given mean/std with no value_scale: 1, as documented)
        norm = normalization_from_config(cfg)
        data = dataclasses.replace(data, mean=rgb_triple(norm.mean), std=rgb_triple(norm.std),
                                   value_scale=float(norm.value_scale))
        known = pretrained_input_spec(cfg)
        source = known[1] if known is not None else "the default"
        implied.append(("data.mean/std/value_scale", (data.mean, data.std, data.value_scale),
                        f"the normalisation of {source}"))
    resolved = dataclasses.replace(cfg, model=model, nonlocal_blocks=nonlocal_cfg, data=data)
    return ResolvedRecipe(resolved, tuple(implied))


def _stage_depths(name: str, options: dict[str, Any]) -> dict[str, int] | None:
    """Residual blocks per stage of model ``name`` with ``options`` (None when it cannot tell:
    an unknown name or option is reported by the model build itself)."""
    from ..models import model_entry

    try:
        spec = model_entry(name).make_spec(**options)
    except (InvalidValueError, TypeError, ValueError, AttributeError):
        return None
    if not hasattr(spec, "stage_depths"):  # torchvision's baselines: no stages to place blocks in
        return None
    return dict(spec.stage_depths())


def build_model_from_config(cfg: ExperimentConfig, *, load_weights: bool = True) -> nn.Module:
    """The backbone with its non-local blocks; pretrained weights loaded (with a report) when asked.

    The recipe is resolved first (:func:`resolve_recipe`): the model is the same whether or not
    the weights are loaded, so a checkpoint of a run always fits the model its recipe builds.
    """
    from ..models import build_model

    cfg = resolve_recipe(cfg).config
    spec: dict[str, Any] | None = None
    if cfg.nonlocal_blocks is not None:
        nl = cfg.nonlocal_blocks
        spec = {"kind": nl.kind, "options": dict(nl.options)}
        # The clip size: size-bound blocks (srb lo / spectrum_relu) take their map's size from it.
        spec["input_size"] = [cfg.data.num_frames, cfg.data.crop_size, cfg.data.crop_size]
        if nl.positions is not None:
            spec["positions"] = {stage: list(idx) for stage, idx in nl.positions.items()}
    kw = dict(cfg.model.options)
    pretrained = cfg.pretrained if load_weights else None
    source: Any = pretrained.source if pretrained is not None else None
    ignore = tuple(pretrained.ignore) if pretrained is not None else ()
    if pretrained is not None:
        source, ignore = _head_for_these_classes(cfg, source, ignore)
    # One fine-tuning path: build, place the blocks, then load any checkpoint format with
    # a load report (head re-initialised, blocks new, wrong architecture refused).
    model = build_model(
        cfg.model.name,
        num_classes=cfg.model.num_classes,
        nonlocal_blocks=spec,
        pretrained=source,
        pretrained_ignore=ignore,
        **kw,
    )
    if cfg.model.dropout > 0 and hasattr(model, "dropout"):
        model.dropout = nn.Dropout(cfg.model.dropout)
    return model


def _head_for_these_classes(cfg: ExperimentConfig, source: str,
                            ignore: tuple[str, ...]) -> tuple[Any, tuple[str, ...]]:
    """Fine-tuning from an snl-video checkpoint whose head has as many classes as the dataset:
    its head is kept only where its classes are the dataset's, matched by name.

    Heads load by shape, so without this a checkpoint trained on one preparation would start
    the fine-tune with its rows meaning other labels: the same classes numbered otherwise (its
    rows are reordered to the dataset's labels, in memory) or other classes altogether (its
    head is left out and starts fresh, as for a pretrained file of another class count). Any
    other source, or names that cannot be compared, load as given.
    """
    from .naming import class_order

    path = Path(source).expanduser()
    if not path.is_file():
        return source, ignore
    from ..weights import WeightsError, read_checkpoint_file

    try:
        content = read_checkpoint_file(path)
    except (WeightsError, OSError, ValueError):
        return source, ignore  # the load (next) reports what is wrong with the file
    if not isinstance(content, dict) or not isinstance(content.get("model"), dict):
        return source, ignore
    names, state = content.get("class_names"), content["model"]
    head = state.get("fc.weight"), state.get("fc.bias")
    if not names or head[0] is None or head[1] is None or len(names) != head[0].shape[0] \
            or len(names) != cfg.model.num_classes:
        return source, ignore
    try:
        order = class_order(names, class_names(cfg), model_source=str(path))
    except InvalidValueError:
        logger.warning("%s was trained on other classes than the dataset's (e.g. %r): its head is not loaded "
                       "(re-initialised, as for other class counts)", path, names[0])
        return {**content, "model": {k: v for k, v in state.items() if not k.startswith("fc.")}}, ignore
    if order is None:
        return source, ignore
    index = torch.as_tensor(order)
    content = {**content, "model": {**state, "fc.weight": head[0][index], "fc.bias": head[1][index]}}
    return content, ignore


def normalization_from_config(cfg: ExperimentConfig) -> NormalizationSpec:
    """``data.mean/std`` (in ``data.value_scale`` units) if given, else the pretrained weights'
    (:func:`pretrained_input_spec`), else 3D-ResNets-PyTorch's Kinetics statistics
    (:data:`~snl_video.data.transforms.HARA_KINETICS_NORMALIZATION`)."""
    if cfg.data.mean is not None and cfg.data.std is not None:
        scale = cfg.data.value_scale if cfg.data.value_scale is not None else 1.0
        return NormalizationSpec(rgb_triple(cfg.data.mean), rgb_triple(cfg.data.std), float(scale))
    spec = pretrained_input_spec(cfg)
    if spec is not None:
        return NormalizationSpec.from_any(spec[0])
    return HARA_KINETICS_NORMALIZATION


def pretrained_input_spec(cfg: ExperimentConfig) -> tuple[InputSpec, str] | None:
    """What the recipe's pretrained weights were fed, and where that is known from: a registry
    name's entry; for a file, the input spec an snl-video checkpoint records, else the entry of
    the registry the file stands for (:func:`~snl_video.weights.entry_for_file`: its upstream
    name, or its format and architecture). A file of a known family is thereby fed as its
    registry name would be (torchvision's ``r3d_18`` state dict saved as ``my_r3d18.pth`` gets
    torchvision's mean/std, not the default's). ``None``: nothing is known (a foreign file of
    no registered family, an unreadable file: its load reports that)."""
    if cfg.pretrained is None:
        return None
    from ..weights import entry_for_file, eval_transform_params, list_weights

    source = cfg.pretrained.source
    path = Path(source).expanduser()
    if not path.is_file():
        return (eval_transform_params(source), source) if source in list_weights() else None
    from ..weights import WeightsError, detect_format, read_checkpoint_file

    try:
        content = read_checkpoint_file(path)
        if isinstance(content, dict) and isinstance(content.get("input_spec"), dict):  # an snl-video checkpoint
            return InputSpec.from_dict(content["input_spec"], where=f"{path} input_spec"), str(path)
        detected = detect_format(content, source=str(path))
    except (WeightsError, InvalidValueError, OSError, ValueError):
        return None  # the weights load (after this) says what is wrong with the file
    entry = entry_for_file(path.name, architecture=cfg.model.name, format=detected.format)
    return (entry.input_spec, f"{path.name}, a {entry.name} file") if entry is not None else None


def input_spec_from_config(cfg: ExperimentConfig) -> InputSpec:
    """The input a model trained with ``cfg`` is fed: the recipe's clip (``data.num_frames``,
    ``data.sampling_stride``, ``data.crop_size``) and its normalisation
    (:func:`normalization_from_config`). This is what a checkpoint stores."""
    norm = normalization_from_config(cfg)
    return InputSpec(num_frames=int(cfg.data.num_frames), sampling_stride=int(cfg.data.sampling_stride),
                     crop_size=int(cfg.data.crop_size), mean=norm.mean, std=norm.std,
                     value_scale=float(norm.value_scale))


def build_dataset(
    cfg: ExperimentConfig, *, subset: Literal["train", "val", "test"], mode: Literal["train", "clip", "video"]
) -> ClipDataset:
    """The dataset of ``subset`` in ``mode`` with the config's clip spec and transforms."""
    d = cfg.data
    spec = input_spec_from_config(cfg)  # what predict / explain / features feed a model trained with cfg
    if mode == "train":
        transform = train_transform(spec, size=d.crop_size, crop=d.train_crop, flip=d.horizontal_flip)
        if d.train_crop == "multiscale":
            from ..data.transforms import MultiScaleRandomCrop

            transform.transforms[1] = MultiScaleRandomCrop(d.crop_size, tuple(d.train_scales))
    else:
        crops = cfg.eval.num_crops if mode == "video" else 1
        transform = input_transform(spec, crops=crops)
    kwargs = dict(
        split=d.split, subset=subset, mode=mode, transform=transform, num_frames=d.num_frames,
        stride=d.sampling_stride, num_clips=cfg.eval.num_clips,
        max_failure_fraction=d.max_decode_failure_fraction,
        val_fraction=d.val_fraction, val_seed=VAL_SEED, dataset=d.dataset,
    )
    if d.backend == "prepared":
        root = Path(d.root)
        if not (root / "index.csv").is_file():
            raise MissingFileError(f"data.root={d.root!r} has no index.csv: run `snl-video prepare {d.dataset} --output-dir "
                                    f"{d.root}` first")
        return prepared_dataset(root, **kwargs)
    assert d.splits_dir is not None  # the config's validation requires it with a decoding backend
    return video_file_dataset(d.root, d.splits_dir, backend=d.backend, **kwargs)


#: The validation draw does not follow runtime.seed: runs with different seeds select on the same videos.
VAL_SEED = 0


def selection_subset(cfg: ExperimentConfig) -> Literal["val", "test"]:
    """Which subset the periodic evaluation (and so ``best.pt``) uses: ``val`` with
    ``data.val_fraction > 0`` or a split prepared with its own validation subset, else ``test``."""
    if cfg.data.val_fraction > 0:
        return "val"
    if cfg.data.backend == "prepared":
        try:
            index = pd.read_csv(Path(cfg.data.root) / "index.csv", keep_default_na=False)
        except (OSError, ValueError):
            return "test"
        column = f"subset_{cfg.data.split}"
        if column in index.columns and (index[column].astype(str) == "val").any():
            return "val"
    return "test"


def class_names(cfg: ExperimentConfig) -> list[str] | None:
    """Class names by label: the dataset's full class list (``classes.json`` written by
    ``prepare``, or ``classInd.txt`` with a decoding backend), so classes no video of a
    subset has are named too; else the prepared index, or ``classInd.txt`` with a decoding
    backend; ``None`` when none can be read."""
    from .naming import full_class_list

    every = full_class_list(cfg)
    if every is not None:
        return [every[i] if i < len(every) else str(i) for i in range(cfg.model.num_classes)]
    if cfg.data.backend != "prepared":
        if not cfg.data.splits_dir:
            return None
        from ..data.ucf101 import SplitFileError, read_class_index

        try:
            names_list = read_class_index(cfg.data.splits_dir)
        except (OSError, ValueError, SplitFileError):
            return None
        return names_list if len(names_list) == cfg.model.num_classes else None
    try:
        index = pd.read_csv(Path(cfg.data.root) / "index.csv", usecols=["class_name", "label"])
    except (OSError, ValueError):
        return None
    names = dict(zip(index["label"].astype(int), index["class_name"].astype(str)))
    return [names.get(i, str(i)) for i in range(cfg.model.num_classes)]
