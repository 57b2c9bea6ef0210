"""Evaluation: clip-level and video-level accuracy of a model on the test split.

Protocols (recorded in ``metrics.json``):

* **clip level** (the paper's numbers, as 3D-ResNets-PyTorch reports them): one clip per
  test video, the ``num_frames`` frames at the temporal centre, resized to the crop size on
  the short side and centre-cropped;
* **video level**: ``eval.num_clips`` uniformly spaced clips x ``eval.num_crops`` crops per
  video, softmax probabilities averaged (``eval.reduce``).

Under ``torchrun`` each rank scores a shard (``DistributedSampler``, which pads the last
shard with repeats); the outputs are gathered and de-duplicated by dataset index, so every
test video is counted exactly once and the metrics equal a one-process run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ..config import ExperimentConfig
from . import distributed as dist_utils
from .builders import build_dataset, class_names
from ..progress import progress as progress_bar
from .metrics import deduplicate_by_index
from .reports import MetricsReport, compute_metrics_report, write_evaluation_outputs
from .naming import class_order, source_video_names
from .preflight import usable_workers, warn_if_slow_on_cpu
from ..errors import InvalidValueError, MissingFileError
from ..inputspec import rgb_triple

logger = logging.getLogger(__name__)

__all__ = ["collect_logits", "evaluate_model", "run_evaluation"]


def _loader(dataset: Any, batch_size: int, num_workers: int) -> DataLoader:
    sampler: DistributedSampler[int] | None = (
        DistributedSampler(dataset, shuffle=False) if dist_utils.is_distributed() else None
    )
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=num_workers,
                      pin_memory=torch.cuda.is_available())


@torch.no_grad()
def collect_logits(
    model: nn.Module,
    loader: Iterable[dict],
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    desc: str = "eval",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``model`` over ``loader`` and collect the logits of every item this process sees:
    ``(indices (N,), labels (N,), logits (N, [V,] C))``.

    An item with several views (``(V, C, T, H, W)``) is scored view by view in one batch and
    keeps its ``V`` axis, so the caller can de-duplicate by video before expanding views.
    """
    model.eval()
    indices, labels, logits = [], [], []
    for batch in progress_bar(loader, enabled=progress, desc=desc, leave=False, unit="batch"):
        clip = batch["clip"]
        views = clip.shape[1] if clip.ndim == 6 else None
        x = clip.flatten(0, 1) if views is not None else clip
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = model(x)
        out = out.float().cpu()
        if views is not None:
            out = out.view(clip.shape[0], views, -1)
        logits.append(out.numpy())
        labels.append(np.asarray(batch["label"]))
        indices.append(np.asarray(batch["index"]))
    if not logits:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    return np.concatenate(indices), np.concatenate(labels), np.concatenate(logits)


def _gather(indices: np.ndarray, labels: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ranks' predictions, each dataset index once, sorted by index."""
    parts = dist_utils.all_gather_objects((indices, labels, logits))
    parts = [p for p in parts if len(p[0])]
    idx = np.concatenate([p[0] for p in parts])
    lab = np.concatenate([p[1] for p in parts])
    out = np.concatenate([p[2] for p in parts])
    return deduplicate_by_index(idx, lab, out)


def evaluate_model(
    model: nn.Module,
    cfg: ExperimentConfig,
    *,
    device: torch.device,
    video_level: bool = True,
    progress: bool = False,
    extra: dict[str, Any] | None = None,
    clip_outputs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    subset: Literal["test", "val"] = "test",
    model_class_names: Sequence[str] | None = None,
    model_source: str = "the checkpoint",
    strict_classes: bool = True,
) -> MetricsReport:
    """Clip-level (and, with ``video_level``, video-level) metrics of ``model`` on the test split
    (``subset="val"``: the validation set that selects ``best.pt``, see ``data.val_fraction``).

    Without ``video_level`` (the quick evaluation during training) the video-level fields
    repeat the clip-level protocol (one view per video) and only the clip numbers are logged.
    ``clip_outputs`` (``(indices, labels, logits)`` of the clip-level pass, as
    :attr:`MetricsReport.clip_outputs` holds them) skips that pass: the final evaluation
    after training reuses the one the last epoch computed with the same weights.
    ``model_class_names``: the classes the model's outputs score, in output order (a
    checkpoint's ``class_names``); the same classes numbered otherwise by the dataset are
    matched by name, other classes are an error (``strict_classes``) or a warning
    (:func:`~snl_video.engine.naming.class_order`; ``model_source`` names the model there).
    Every rank returns the same report.
    """
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.runtime.amp) if device.type == "cuda" else None
    if cfg.runtime.amp == "bf16" and device.type == "cpu":
        amp_dtype = torch.bfloat16
    workers = usable_workers(cfg.data.num_workers)
    dataset_class_names = class_names(cfg)
    # checked before any forward pass; order[label] = the model output scoring dataset class `label`
    order = class_order(model_class_names, dataset_class_names, model_source=model_source, strict=strict_classes)
    clip_ds = build_dataset(cfg, subset=subset, mode="clip")
    if clip_outputs is not None and len(clip_outputs[0]) == len(clip_ds):
        idx, lab, clip_logits = clip_outputs
        logger.info("clip level: the last epoch's evaluation of these weights (%d clips), not computed again", len(idx))
    else:
        idx, lab, clip_logits = _gather(*collect_logits(
            model, _loader(clip_ds, cfg.eval.batch_size, workers), device=device, amp_dtype=amp_dtype,
            channels_last=cfg.runtime.channels_last, desc="eval clips", progress=progress))
        if order is not None:
            clip_logits = clip_logits[..., order]
    if video_level:
        video_ds = build_dataset(cfg, subset=subset, mode="video")
        # each item holds num_clips x num_crops views: keep the number of views per batch near eval.batch_size
        per_item = cfg.eval.num_clips * cfg.eval.num_crops
        vbatch = max(1, cfg.eval.batch_size // per_item)
        vidx, vlab, vlogits = _gather(*collect_logits(
            model, _loader(video_ds, vbatch, workers), device=device, amp_dtype=amp_dtype,
            channels_last=cfg.runtime.channels_last, desc="eval videos", progress=progress))
        if order is not None:
            vlogits = vlogits[..., order]
        views = vlogits.shape[1]
        view_scores = vlogits.reshape(-1, vlogits.shape[-1])
        view_labels = np.repeat(vlab, views)
        view_ids = np.repeat(vidx, views)
    else:
        view_scores, view_labels, view_ids = clip_logits, lab, idx
    names = dict(enumerate(source_video_names(cfg, [v.path for v in clip_ds.videos])))  # the split file's name
    meta = {
        "clip_protocol": f"centre clip of {cfg.data.num_frames} frames (stride {cfg.data.sampling_stride}), "
                         f"centre crop {cfg.data.crop_size}",
        "video_protocol": (f"{cfg.eval.num_clips} uniform clips x {cfg.eval.num_crops} crops, {cfg.eval.reduce}"
                           if video_level else "as clip level (quick evaluation)"),
        "split": cfg.data.split,
        "run": cfg.name,
        "subset": subset,
        "dataset": cfg.data.dataset,
        "world_size": dist_utils.world_size(),
        # the protocol as numbers too, so `compare` can tell runs evaluated differently apart
        "eval_num_clips": cfg.eval.num_clips if video_level else 1,
        "eval_num_crops": cfg.eval.num_crops if video_level else 1,
        "num_frames": cfg.data.num_frames,
        "sampling_stride": cfg.data.sampling_stride,
        "crop_size": cfg.data.crop_size,
    }
    meta.update(extra or {})
    report = compute_metrics_report(
        clip_logits, lab, view_scores, view_labels, view_ids, num_classes=cfg.model.num_classes,
        class_names=dataset_class_names, video_names=names, reduce=cfg.eval.reduce, extra=meta,
        video_level=video_level,
    )
    report.clip_outputs = (idx, lab, clip_logits)
    return report


def _load_on_main_and_share(checkpoint: str | os.PathLike[str], load: Any) -> dict[str, Any]:
    """The checkpoint's model state and epoch, read by rank 0 only and broadcast to the others.

    Under ``torchrun`` across machines only global rank 0 writes checkpoints, to its own
    ``output_dir``; the other nodes need not see that file (no shared filesystem needed).
    A failure to read it on rank 0 is raised on every rank (none is left waiting).
    """
    if not dist_utils.is_distributed():
        return load(checkpoint)
    payload: Any = None
    if dist_utils.is_main():
        try:
            state = load(checkpoint)
            payload = {"model": state["model"], "epoch": state.get("epoch")}
        except (OSError, ValueError) as exc:
            payload = f"{type(exc).__name__}: {exc}"
    payload = dist_utils.broadcast_object(payload)
    if isinstance(payload, str):
        raise InvalidValueError(f"rank 0 could not read the checkpoint {checkpoint}: {payload}")
    return payload


def _recorded_split(state: dict[str, Any]) -> object:
    """``data.split`` of the recipe stored in a training checkpoint, or None when it holds none."""
    recorded = state.get("recipe")
    data = recorded.get("data") if isinstance(recorded, dict) else None
    return data.get("split") if isinstance(data, dict) else None


def _check_run_folder_is_for_this_data(cfg: ExperimentConfig, state: dict[str, Any],
                                       checkpoint: str | os.PathLike[str], *, overlap: int) -> None:
    """Refuse to write into the run's own ``eval/`` an evaluation on other data than the run's.

    That folder is the run's result: ``compare`` and ``study`` read its ``metrics.json`` as
    the run's test score. An evaluation on another dataset, prepared folder or split (an
    override of ``data.root`` / ``data.dataset`` / ``data.split``), or one allowed to score
    training videos (``--allow-train-overlap``), would silently replace it there.

    Raises:
        InvalidValueError: naming what differs and ``--output-dir``, the way out.
    """
    recorded = state.get("recipe")
    data = recorded.get("data") if isinstance(recorded, dict) else None
    changed = []
    if isinstance(data, dict):
        if "root" in data and Path(str(data["root"])).expanduser().resolve() != \
                Path(cfg.data.root).expanduser().resolve():
            changed.append(f"data.root {cfg.data.root} (the run's: {data['root']})")
        for key in ("dataset", "split"):
            if key in data and str(data[key]) != str(getattr(cfg.data, key)):
                changed.append(f"data.{key} {getattr(cfg.data, key)} (the run's: {data[key]})")
    if overlap:
        changed.append(f"{overlap} test videos it was trained on (--allow-train-overlap)")
    if changed:
        out = Path(cfg.runtime.output_dir) / "eval"
        raise InvalidValueError(
            f"this evaluation of {checkpoint} is on other data than its run's ({'; '.join(changed)}): its outputs "
            f"would replace the run's own evaluation in {out}, which `compare` and `study` read as the run's "
            "result; pass --output-dir FOLDER for them")


def _with_trained_normalisation(cfg: ExperimentConfig, state: dict[str, Any],
                                checkpoint: str | os.PathLike[str]) -> ExperimentConfig:
    """``cfg`` fed as the checkpoint's network was trained: its stored mean / std / value scale
    win over the recipe's (as they do for predict, features and export), with a warning when
    they differ. An ``eval --config RECIPE`` whose recipe resolves another normalisation (its
    ``pretrained:`` file is not on this machine, a ``data.mean`` override at training time)
    would otherwise score the network on inputs it was not trained on, with exit code 0."""
    import dataclasses

    from .builders import normalization_from_config
    from .checkpoint import checkpoint_input_spec

    stored = checkpoint_input_spec(state, path=checkpoint)
    if stored is None:  # a checkpoint written before checkpoints described their input
        return cfg
    recipe = normalization_from_config(cfg)
    trained = (stored.mean, stored.std, float(stored.value_scale))
    given = (recipe.mean, recipe.std, float(recipe.value_scale))
    if np.allclose(np.hstack([np.ravel(v) for v in trained]), np.hstack([np.ravel(v) for v in given]),
                   rtol=0, atol=1e-6):
        return cfg
    logger.warning("%s was trained on inputs normalised with mean %s, std %s (value scale %g); the recipe says mean "
                   "%s, std %s (value scale %g): evaluating with the checkpoint's, as predict does", checkpoint,
                   list(stored.mean), list(stored.std), stored.value_scale, list(recipe.mean), list(recipe.std),
                   recipe.value_scale)
    data = dataclasses.replace(cfg.data, mean=rgb_triple(stored.mean), std=rgb_triple(stored.std),
                               value_scale=float(stored.value_scale))
    return dataclasses.replace(cfg, data=data)


def run_evaluation(
    cfg: ExperimentConfig,
    checkpoint: str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    clip_outputs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    allow_train_overlap: bool = False,
) -> MetricsReport:
    """``snl-video eval``: load ``checkpoint`` into the config's model, evaluate, write the outputs.

    A checkpoint that records its training videos (``train_videos``) is refused on a test
    subset holding any of them (:func:`~snl_video.engine.records.check_train_test_overlap`),
    unless ``allow_train_overlap``.

    Outputs go to ``out_dir`` (default ``<runtime.output_dir>/eval``): ``metrics.json``, the
    per-video, per-class and confusion CSVs and the confusion PNG (written by rank 0 only).
    ``clip_outputs``: the clip-level pass already computed with these weights (see
    :func:`evaluate_model`).
    Under ``torchrun`` only rank 0 reads ``checkpoint`` and sends the weights to the other
    ranks, so nodes without a shared filesystem evaluate too.
    """
    from .builders import resolve_device
    from .checkpoint import load_training_checkpoint
    from .loading import model_from_training_state
    from .preflight import preflight
    from .runtime import flush_denormal

    # the model, the test data and the labels are checked before the checkpoint is read (the
    # trackers are not: an evaluation's files do not depend on them, see log_evaluation)
    preflight(cfg, subsets=("test",), trackers=False)
    # Under torchrun only global rank 0 reads the file (the other nodes may not see it: no
    # shared filesystem needed); a missing file there reaches every rank as one error through
    # _load_on_main_and_share, so this early check is for a single process only.
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1 and not Path(checkpoint).is_file():
        raise MissingFileError(f"checkpoint {checkpoint} does not exist (train writes <output_dir>/checkpoints/last.pt)")
    device = resolve_device(cfg.runtime.device)
    # denormals flushed on every CPU thread for the evaluation, the caller's setting restored after
    with flush_denormal(cfg.runtime.flush_denormal):
        started = dist_utils.setup_distributed(device)
        try:
            state = _load_on_main_and_share(checkpoint, load_training_checkpoint)
            from .records import check_train_test_overlap

            overlap = check_train_test_overlap(state.get("train_videos"), cfg, allow=allow_train_overlap,
                                               checkpoint=checkpoint, trained_split=_recorded_split(state))
            if out_dir is None:
                _check_run_folder_is_for_this_data(cfg, state, checkpoint, overlap=overlap)
            cfg = _with_trained_normalisation(cfg, state, checkpoint)
            model = model_from_training_state(state, cfg, path=checkpoint)
            model.to(device)
            if cfg.runtime.channels_last:
                model.to(memory_format=torch.channels_last_3d)
            show = cfg.runtime.progress if progress is None else progress
            if device.type == "cpu" and clip_outputs is None:
                warn_if_slow_on_cpu(model, cfg)
            report = evaluate_model(model, cfg, device=device, progress=show and dist_utils.is_main(),
                                    extra={"checkpoint": str(checkpoint), "epoch": state.get("epoch")},
                                    clip_outputs=clip_outputs, model_class_names=state.get("class_names"),
                                    model_source=str(checkpoint))
            if dist_utils.is_main():
                out = Path(out_dir) if out_dir is not None else Path(cfg.runtime.output_dir) / "eval"
                paths = write_evaluation_outputs(report, out)
                logger.info("evaluation outputs: %s", ", ".join(str(p) for p in paths.values()))
                if out_dir is None:  # the run's own eval/ folder: its W&B / MLflow run gets the figures and files
                    from .trackers import log_evaluation

                    log_evaluation(cfg, report.to_json_dict(),
                                   [p for p in paths.values() if p.suffix == ".png" or p.name == "metrics.json"])
            return report
        finally:
            if started:
                dist_utils.cleanup_distributed()
