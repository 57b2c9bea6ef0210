"""The verbs of ``snl-video`` as Python functions: what ``snl_video.<verb>`` is.

Each function here is what the command of the same name runs after parsing its flags, so
a script and the command line cannot drift apart. They share one calling convention:

* the model is named by keyword only, and in one way: ``checkpoint=`` (a checkpoint written
  by ``train``), ``weights=`` (a registry name or a foreign checkpoint file) or, for a
  training recipe, ``config=`` (a YAML path or an :class:`~snl_video.config.ExperimentConfig`);
  ``config=`` beside ``checkpoint=`` is only for checkpoints older than self-describing ones;
* ``overrides=`` are dotted ``key=value`` changes to the recipe, as on the command line;
* outputs are ``output_dir=`` (a folder) or ``output_file=`` (one file), named by what they are.

``predict`` is :func:`snl_video.engine.predict.predict` itself (it already has this shape).
Each verb flushes denormals on every CPU thread while it computes and restores the caller's
setting when it returns (:func:`snl_video.engine.runtime.flush_denormal`; loading a model
with :func:`load_model` changes nothing).
``compare`` is not here: it still lives in the command module (see ``snl_video.compare``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

from ..errors import InvalidValueError
from .predict import predict
from .runtime import flush_denormal

PathLike = str | os.PathLike[str]

if TYPE_CHECKING:
    import torch

    from ..config import ExperimentConfig
    from ..data.prepare import ShortVideos, Storage
    from .explain import ExplainResult, Query, Upsample
    from .export import ExportFormat, ExportResult
    from .features import FeaturesReport
    from .loading import InferenceModel
    from .reports import MetricsReport
    from .train import TrainResult

    Recipe = PathLike | ExperimentConfig  # a YAML path or a config object

logger = logging.getLogger(__name__)

__all__ = ["train", "evaluate", "evaluation_recipe", "predict", "explain", "export", "features", "spectrum",
           "SpectrumResult", "prepare", "compare", "study", "publish", "load_model"]



def load_model(*, checkpoint: PathLike | None = None, weights: PathLike | None = None, config: Recipe | None = None,
               overrides: Sequence[str] = (), device: str | torch.device = "cpu",
               allow_unsafe_pickle: bool = False, precision: Literal["fp32", "bf16"] = "fp32",
               crop_size: int | None = None) -> InferenceModel:
    """The model named by ``checkpoint=`` or ``weights=``, through the one inference loader
    (:func:`~snl_video.engine.loading.load_inference_model`), set to ``precision`` (bf16
    autocast is refused on a CPU without native bf16: docs/cpu_inference.md); ``crop_size``: a
    test crop other than the model's own (short side resized to it, then cropped; refused when
    the model cannot take it, :meth:`~snl_video.engine.loading.InferenceModel.set_crop_size`)."""
    from .loading import load_inference_model

    loaded = load_inference_model(checkpoint=checkpoint, weights=weights, config=config, overrides=overrides,
                                  device=device, allow_unsafe_pickle=allow_unsafe_pickle, crop_size=crop_size)
    return loaded.set_precision(precision)


def _recipe(config: Recipe, overrides: Sequence[str]) -> ExperimentConfig:
    from ..config import ExperimentConfig, load_config

    if isinstance(config, ExperimentConfig):
        if overrides:
            raise InvalidValueError(f"overrides {list(overrides)} go with a recipe file; apply them to the config "
                                    "object before passing it (or pass its path)")
        return config
    return load_config(config, list(overrides))


def train(*, config: Recipe, overrides: Sequence[str] = (), resume: bool | PathLike = False) -> TrainResult:
    """Fine-tune the recipe ``config`` (``snl-video train``); ``resume=True`` continues the run
    in its output folder, a path continues from that checkpoint. Returns the run's summary."""
    from .train import train as train_recipe

    return train_recipe(_recipe(config, overrides), resume=resume)


def evaluation_recipe(*, checkpoint: PathLike | None = None, weights: PathLike | None = None,
                      config: Recipe | None = None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The recipe ``evaluate`` runs: ``config`` if given, else the one a training checkpoint carries."""
    if (checkpoint is None) == (weights is None):
        raise InvalidValueError("give exactly one of checkpoint= (--checkpoint CKPT) or weights= (--weights NAME|FILE)")
    if weights is not None and config is None:
        raise InvalidValueError("--weights needs --config RECIPE (the dataset and protocol); --head-from goes with "
                                "--weights")
    if config is not None:
        return _recipe(config, overrides)
    assert checkpoint is not None  # exactly one of checkpoint= and weights= (checked above), and not weights=
    from .checkpoint import checkpoint_recipe, load_training_checkpoint

    return checkpoint_recipe(load_training_checkpoint(checkpoint), path=checkpoint, overrides=list(overrides))


def evaluate(*, checkpoint: PathLike | None = None, weights: PathLike | None = None, config: Recipe | None = None,
             overrides: Sequence[str] = (), head_from: PathLike | None = None, output_dir: PathLike | None = None,
             progress: bool | None = None, allow_unsafe_pickle: bool = False,
             allow_train_overlap: bool = False) -> MetricsReport:
    """Clip- and video-level test metrics (``snl-video eval``), written to ``output_dir``
    (default ``<runtime.output_dir>/eval``).

    ``checkpoint=`` a training checkpoint (its own recipe unless ``config=`` is given), or
    ``weights=`` a registry name / foreign file evaluated on the recipe ``config=`` without
    training (``head_from=``: take the classifier from a training checkpoint). One writer per
    output folder (:func:`snl_video.locking.output_lock`); ``allow_train_overlap``: evaluate even
    when the test subset holds videos the checkpoint (or the ``head_from`` checkpoint) was
    trained on (otherwise an error).
    """
    from ..locking import output_lock

    if head_from is not None and weights is None:
        raise InvalidValueError("--weights needs --config RECIPE (the dataset and protocol); --head-from goes with "
                                "--weights")

    def run(cfg: ExperimentConfig) -> MetricsReport:
        if weights is not None:
            from .evaluate_weights import evaluate_weights

            with flush_denormal(cfg.runtime.flush_denormal):  # as run_evaluation does
                return evaluate_weights(cfg, weights, head_from=head_from, out_dir=output_dir, progress=progress,
                                        allow_unsafe_pickle=allow_unsafe_pickle,
                                        allow_train_overlap=allow_train_overlap)
        from .evaluate import run_evaluation

        assert checkpoint is not None  # evaluation_recipe (run first) refuses neither or both of checkpoint/weights
        return run_evaluation(cfg, checkpoint, out_dir=output_dir, progress=progress,
                              allow_train_overlap=allow_train_overlap)

    if output_dir is not None:  # locked (and checked writable) before the checkpoint is read
        with output_lock(output_dir, "eval"):
            return run(evaluation_recipe(checkpoint=checkpoint, weights=weights, config=config, overrides=overrides))
    cfg = evaluation_recipe(checkpoint=checkpoint, weights=weights, config=config, overrides=overrides)
    with output_lock(Path(cfg.runtime.output_dir) / "eval", "eval"):
        return run(cfg)


def explain(video: PathLike, *, checkpoint: PathLike | None = None, weights: PathLike | None = None,
            config: Recipe | None = None, overrides: Sequence[str] = (), output_dir: PathLike,
            queries: Sequence[Query] | None = None, upsample: Upsample = "nearest", with_gradcam: bool = False,
            gradcam_class: str | None = None, animation: Literal["gif", "mp4"] = "gif", backend: Any = None,
            device: str | torch.device = "cpu", allow_unsafe_pickle: bool = False,
            precision: Literal["fp32", "bf16"] = "fp32", crop_size: int | None = None) -> ExplainResult:
    """Affinity maps of the model's non-local blocks (and Grad-CAM) on the centre clip of
    ``video`` (``snl-video explain``), written to ``output_dir``; ``precision="bf16"`` runs the
    network under bf16 autocast (the maps are float32 either way, see :mod:`snl_video.engine.explain`);
    ``crop_size``: a test crop other than the model's own (as :func:`load_model`)."""
    from .explain import explain_video

    loaded = load_model(checkpoint=checkpoint, weights=weights, config=config, overrides=overrides, device=device,
                        allow_unsafe_pickle=allow_unsafe_pickle, precision=precision, crop_size=crop_size)
    with flush_denormal(loaded.flush_denormal):
        return explain_video(loaded, video, output_dir, queries=queries, upsample=upsample,
                             with_gradcam=with_gradcam, gradcam_class=gradcam_class, animation=animation,
                             backend=backend)


def export(*, checkpoint: PathLike | None = None, weights: PathLike | None = None, config: Recipe | None = None,
           overrides: Sequence[str] = (), output_file: PathLike, format: ExportFormat = "pt2",
           num_frames: int | None = None, size: int | None = None, verify: bool = False, opset: int = 18,
           device: str | torch.device = "cpu", allow_unsafe_pickle: bool = False,
           precision: Literal["fp32", "bf16"] = "fp32", crop_size: int | None = None) -> ExportResult:
    """The model as ONNX or ``torch.export`` in ``output_file``, its preprocessing beside it
    (``snl-video export``); clip length and size default to the model's input spec.
    ``verify`` compares the program's logits with the PyTorch model run in ``precision``
    (the program itself is float32; bf16 has its own limit, see :mod:`snl_video.engine.export`).
    ``crop_size``: a test crop other than the model's own (as :func:`load_model`; the default of ``size``)."""
    from ..fileio import ensure_writable_dir
    from .export import export_model

    ensure_writable_dir(Path(output_file).parent)  # an unwritable destination fails before the model loads
    loaded = load_model(checkpoint=checkpoint, weights=weights, config=config, overrides=overrides, device=device,
                        allow_unsafe_pickle=allow_unsafe_pickle, crop_size=crop_size)
    with flush_denormal(loaded.flush_denormal):
        return export_model(loaded, output_file, format=format, num_frames=num_frames, size=size, verify=verify,
                            opset=opset, precision=precision)


def features(inputs: PathLike | Sequence[PathLike], *, checkpoint: PathLike | None = None,
             weights: PathLike | None = None, config: Recipe | None = None, overrides: Sequence[str] = (),
             output_dir: PathLike, layer: str | None = None, per_clip: bool = False, num_clips: int | None = None,
             num_crops: Literal[1, 3] | None = None, backend: Any = None, batch_size: int = 16, num_workers: int = 0,
             progress: bool = False, device: str | torch.device = "cpu",
             allow_unsafe_pickle: bool = False, overwrite: bool = False,
             precision: Literal["fp32", "bf16"] = "fp32", crop_size: int | None = None) -> FeaturesReport:
    """Per-video features of videos, a list file or a prepared dataset (``snl-video features``),
    one ``.npy`` per video and an index in ``output_dir`` (resumable; a rerun with other settings
    is refused unless ``overwrite``). One writer per ``output_dir``. ``crop_size``: a test crop
    other than the model's own (as :func:`load_model`; ``features.json`` records it)."""
    from ..locking import output_lock
    from .features import collect_sources, extract_features

    collect_sources(inputs)  # bad paths fail before the model loads
    with output_lock(output_dir, "features"):  # an unwritable folder fails before the model loads
        loaded = load_model(checkpoint=checkpoint, weights=weights, config=config, overrides=overrides, device=device,
                            allow_unsafe_pickle=allow_unsafe_pickle, precision=precision, crop_size=crop_size)
        with flush_denormal(loaded.flush_denormal):
            return extract_features(loaded, inputs, output_dir, layer=layer, per_clip=per_clip, num_clips=num_clips,
                                    num_crops=num_crops, backend=backend, batch_size=batch_size,
                                    num_workers=num_workers, progress=progress, overwrite=overwrite)


@dataclass(frozen=True)
class SpectrumResult:
    """Per block: its affinity's eigenvalues and filter response (``blocks``); the files written."""

    blocks: list[dict[str, Any]]
    files: dict[str, Path]


def spectrum(video: PathLike, *, checkpoint: PathLike | None = None, weights: PathLike | None = None,
             config: Recipe | None = None, overrides: Sequence[str] = (), output_dir: PathLike, backend: Any = None,
             device: str | torch.device = "cpu", allow_unsafe_pickle: bool = False,
             crop_size: int | None = None) -> SpectrumResult:
    """Eigenvalues of each non-local block's affinity on the centre clip of ``video`` and its
    graph filter's frequency response (``snl-video spectrum``), written to ``output_dir``
    (``crop_size``: a test crop other than the model's own, as :func:`load_model`)."""
    from .spectrum import compute_spectra, model_input, write_spectrum_report

    loaded = load_model(checkpoint=checkpoint, weights=weights, config=config, overrides=overrides, device=device,
                        allow_unsafe_pickle=allow_unsafe_pickle, crop_size=crop_size)
    clip = model_input(loaded, video, backend=backend).to(loaded.device)
    source: dict[str, Any] = {"checkpoint": str(checkpoint)} if checkpoint is not None else {"weights": str(weights)}
    if config is not None and not hasattr(config, "model"):
        source["config"] = str(config)
    source["input_spec"] = loaded.input_spec.to_dict()
    with flush_denormal(loaded.flush_denormal):
        blocks = compute_spectra(loaded.model, clip)
    files = write_spectrum_report(blocks, output_dir, extra={"video": str(video), **source})
    return SpectrumResult(blocks, files)


def prepare(dataset: str, *, output_dir: PathLike, options: Mapping[str, Any] | None = None, num_workers: int = 1,
            allow_missing: bool = False, short_side: int = 128, num_frames: int = 16,
            short_videos: ShortVideos = "loop", storage: Storage = "jpeg",
            jpeg_quality: int = 90, progress: bool = True) -> dict[str, Any]:
    """Verify a dataset's videos and write them in the prepared format (``snl-video prepare``).

    ``dataset`` is a registered source (``ucf101``, ``hmdb51``, ``folder``, ``list``, ...);
    ``options`` are its inputs keyed as its flags without dashes (``{"videos": ..., "splits": ...}``;
    strings are parsed as on the command line). ``storage="jpeg"`` (default) writes each
    video's frames as packed JPEGs (~8x smaller); ``storage="npy"`` writes raw frames, the
    fastest to read. Returns the preparation report.
    """
    from ..data.prepare import PrepareSettings, prepare_manifest
    from ..data.source_spec import parse_options
    from ..data.sources import get_source

    settings = PrepareSettings(short_side=short_side, num_frames=num_frames, short_videos=short_videos,
                               storage=storage, jpeg_quality=jpeg_quality)
    if num_workers < 1:
        raise InvalidValueError(f"--num-workers must be >= 1, got {num_workers}")
    source = get_source(dataset)
    assert source.inputs is not None, f"dataset source {source.name!r} registers no inputs for prepare"
    # the manifest first: every split/list problem is reported before any video is touched
    inputs = source.inputs(parse_options(source.options, dict(options or {}), where=f"prepare {dataset}"))
    counts = inputs.manifest.groupby(["split", "subset"]).size()
    logger.info("%s: %d classes; videos per split and subset: %s", dataset, inputs.manifest["label"].nunique(),
                ", ".join(f"{s}/{sub}: {n}" for (s, sub), n in counts.items()))
    return prepare_manifest(inputs.manifest, inputs.videos_dir, Path(output_dir), dataset=dataset,
                            workers=num_workers, allow_missing=allow_missing, settings=settings, progress=progress)


def compare(runs: Sequence[PathLike], *, output_dir: PathLike = "runs/compare", level: Literal["clip", "video"] = "clip",
            profile: bool = True, curves: bool = True, allow_mixed: bool = False, log_warnings: bool = True,
            reference: str | None = None) -> Any:
    """Compare finished runs (``snl-video compare``): one row per run folder (accuracy, deltas
    against the baseline, cost, protocol), written to ``output_dir`` as ``table.md``/``.csv``
    (and the training curves); returns the :class:`~snl_video.engine.compare.Comparison`. Runs
    evaluated under different protocols are refused unless ``allow_mixed``; the warnings are
    logged unless ``log_warnings`` is false (they are in the comparison's notes either way).
    ``reference`` names published rows (``"table7"``: :data:`snl_video.engine.published.REFERENCES`)
    shown in a table of their own below the measured one, marked as published."""
    from .compare import compare_runs, write_comparison

    comparison = compare_runs([Path(r) for r in runs], level=level, profile=profile, allow_mixed=allow_mixed,
                              log_warnings=log_warnings, reference=reference)
    comparison.written = write_comparison(comparison, Path(output_dir), curves=curves)
    return comparison


def study(spec: PathLike, *, output_dir: PathLike, overrides: Sequence[str] = (), jobs: int = 1,
          shard: tuple[int, int] = (1, 1), progress: bool = True) -> Any:
    """Run a study (``snl-video study``): the spec's recipe x variants x seeds, each cell an
    ordinary run folder under ``output_dir/cells``, aggregated into ``summary.json`` and tables;
    resumable (see :mod:`snl_video.engine.study`). Returns the :class:`~snl_video.engine.study.StudyResult`."""
    from .study import load_study_spec, run_study

    return run_study(load_study_spec(spec, list(overrides)), output_dir, jobs=jobs, shard=shard, progress=progress)


def publish(source: PathLike, *, output_dir: PathLike, push_to_hub: str | None = None, name: str | None = None) -> Path:
    """A trained model (checkpoint or run folder) as a Hub-style folder (``snl-video publish``):
    ``model.safetensors``, ``config.json`` and a model card; ``push_to_hub`` uploads it."""
    from .publish import publish_model

    return publish_model(source, out=output_dir, push_to_hub=push_to_hub, name=name)
