"""``snl-video eval --weights``: a registry or foreign checkpoint evaluated on a prepared dataset.

No training: the network comes from :func:`~snl_video.engine.loading.load_inference_model`
(``weights=``), optionally with the classifier of a training checkpoint
(:func:`apply_head_from`), and is scored by :func:`~snl_video.engine.evaluate.evaluate_model`
on the recipe's test split with the recipe's protocol, fed as its input spec says
(:func:`evaluation_config_for`). The outputs are those of ``eval``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from torch import nn

from ..config import ExperimentConfig
from .loading import InferenceModel, generic_class_names, load_inference_model
from ..errors import InvalidValueError
from ..inputspec import rgb_triple

logger = logging.getLogger(__name__)

__all__ = ["apply_head_from", "evaluation_config_for", "evaluate_weights"]


def apply_head_from(loaded: InferenceModel, checkpoint: str | os.PathLike[str], *,
                    stored: dict[str, Any] | None = None) -> InferenceModel:
    """Replace ``loaded``'s classifier (``fc``) by the one of a training checkpoint (its class
    names too, when it stores them): a backbone evaluated with a head trained elsewhere.
    ``stored``: the checkpoint's contents when the caller has already read it."""
    from .checkpoint import load_training_checkpoint

    if stored is None:
        stored = load_training_checkpoint(checkpoint)
    state = stored["model"]
    head = {k.removeprefix("fc."): v for k, v in state.items() if k.startswith("fc.")}
    fc = getattr(loaded.model, "fc", None)
    if fc is None or set(head) != {"weight", "bias"}:
        raise InvalidValueError(f"--head-from {checkpoint}: no fc.weight / fc.bias in it (is it an snl-video checkpoint?)")
    if head["weight"].shape[1] != fc.in_features:
        raise InvalidValueError(f"--head-from {checkpoint}: its head takes {head['weight'].shape[1]} features, the "
                         f"{loaded.architecture} backbone gives {fc.in_features}: use a checkpoint of that architecture")
    new = nn.Linear(fc.in_features, head["weight"].shape[0]).to(loaded.device)
    new.load_state_dict(head)
    loaded.model.fc = new
    names = stored.get("class_names")
    loaded.class_names = (list(names) if names and len(names) == new.out_features
                          else generic_class_names(new.out_features))
    loaded.source += f" + head of {checkpoint}"
    return loaded


def evaluation_config_for(loaded: InferenceModel, cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` with the model's input spec (frames, stride, crop, mean/std) in its data section,
    so the dataset feeds the network what it was trained on; the protocol stays ``cfg``'s."""
    spec = loaded.input_spec
    scale = spec.value_scale
    data = dataclasses.replace(
        cfg.data, num_frames=spec.num_frames, sampling_stride=spec.sampling_stride, crop_size=spec.crop_size,
        # the recipe's mean/std are on [0, 1] pixels:
        # (x * value_scale - mean) / std == (x - mean / value_scale) / (std / value_scale)
        mean=rgb_triple(m / scale for m in spec.mean), std=rgb_triple(s / scale for s in spec.std),
    )
    model = dataclasses.replace(cfg.model, name=loaded.architecture, num_classes=loaded.num_classes)
    return dataclasses.replace(cfg, data=data, model=model, nonlocal_blocks=None, pretrained=None)


def evaluate_weights(
    cfg: ExperimentConfig,
    weights: str | os.PathLike[str],
    *,
    head_from: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    allow_unsafe_pickle: bool = False,
    allow_train_overlap: bool = False,
) -> Any:
    """``snl-video eval --weights``: evaluate a registry or foreign checkpoint (no training)
    on ``cfg``'s test split with ``cfg``'s protocol, writing the same outputs as ``eval``.

    The head must have the dataset's class count (a Kinetics head on a Kinetics-class
    dataset), or come from ``head_from`` (a training checkpoint of the same backbone). A head
    trained on videos that ``cfg``'s test subset holds is refused, as ``eval --checkpoint``
    refuses such a checkpoint (:func:`~snl_video.engine.records.check_train_test_overlap`),
    unless ``allow_train_overlap``.
    """
    from .builders import resolve_device
    from .checkpoint import load_training_checkpoint
    from .evaluate import evaluate_model
    from .records import check_train_test_overlap
    from .reports import write_evaluation_outputs

    stored = None
    if head_from is not None:  # checked before the weights are read: the head's training videos vs the test subset
        stored = load_training_checkpoint(head_from)
        check_train_test_overlap(stored.get("train_videos"), cfg, allow=allow_train_overlap, checkpoint=head_from)
    device = resolve_device(cfg.runtime.device)
    loaded = load_inference_model(weights=weights, device=device, allow_unsafe_pickle=allow_unsafe_pickle)
    if head_from is not None:
        apply_head_from(loaded, head_from, stored=stored)
    if loaded.num_classes != cfg.model.num_classes:
        raise InvalidValueError(f"{weights} has a {loaded.num_classes}-class head but the recipe's dataset has "
                         f"{cfg.model.num_classes} classes: pass --head-from CKPT (a checkpoint trained on it), or "
                         "evaluate on a dataset with the head's classes")
    eval_cfg = evaluation_config_for(loaded, cfg)
    show = cfg.runtime.progress if progress is None else progress
    # a head of another preparation's class order is matched by name; a training checkpoint's
    # head (--head-from, or --weights CKPT) on other classes is an error, a registry head's
    # names (spelled as its source spells them) only a warning
    report = evaluate_model(loaded.model, eval_cfg, device=device, progress=show,
                            extra={"weights": str(weights), "head_from": str(head_from) if head_from else None},
                            model_class_names=loaded.class_names, model_source=loaded.source,
                            strict_classes=head_from is not None or loaded.recipe is not None)
    out = Path(out_dir) if out_dir is not None else Path(cfg.runtime.output_dir) / "eval"
    paths = write_evaluation_outputs(report, out)
    logger.info("evaluation outputs: %s", ", ".join(str(p) for p in paths.values()))
    return report
