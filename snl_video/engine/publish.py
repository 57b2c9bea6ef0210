"""Model folders in the Hugging Face Hub's layout: ``publish`` writes them, the loader reads them.

A published folder holds three files:

* ``model.safetensors``: the network's tensors only (safetensors cannot hold code, so
  reading a folder from a stranger runs nothing);
* ``config.json``: what rebuilds and feeds the network: architecture, non-local blocks and
  their placement, input spec, class names, evaluation protocol and the resolved recipe,
  under a ``format_version`` (:data:`PUBLISHED_FORMAT_VERSION`);
* ``README.md``: a model card with the Hub's YAML front matter (``library_name``, ``tags``,
  ``datasets``, ``metrics``), a results table, intended use, limits and how to load it.

:func:`publish_model` writes one from a training checkpoint or a run folder (then the run's
``eval/metrics.json`` fills the results), atomically: everything goes to a temporary folder
beside ``out`` that is renamed into place. :func:`read_published_folder` reads one back,
every key and shape checked, for :func:`snl_video.engine.loading.load_inference_model`
(``weights=DIR`` or ``weights="hf://OWNER/NAME[@REVISION]"``, the latter through
:func:`resolve_hub_weights` and ``huggingface_hub``'s cache).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidValueError, MissingFileError, UserError
from ..fileio import atomic_write, atomic_write_text, write_error

logger = logging.getLogger(__name__)

__all__ = ["MissingDependencyError", "PUBLISHED_FORMAT_VERSION", "WEIGHTS_FILE", "CONFIG_FILE", "CARD_FILE", "HUB_PREFIX", "PublishedFolder",
           "publish_model", "read_published_folder", "is_published_folder", "resolve_hub_weights",
           "write_safetensors", "push_folder_to_hub"]

#: Version of ``config.json``'s layout; a folder of a newer version is refused with a clear line.
PUBLISHED_FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
#: ``--weights hf://OWNER/NAME[@REVISION]`` names a model on the Hugging Face Hub.
HUB_PREFIX = "hf://"
#: Keys every ``config.json`` must have (``format_version`` 1).
REQUIRED_KEYS = ("format_version", "architecture", "num_classes", "class_names", "input_spec", "eval_protocol",
                 "recipe")


class MissingDependencyError(UserError):
    """An optional package a feature needs is not installed."""


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def write_safetensors(state: dict[str, torch.Tensor], path: str | os.PathLike[str], *,
                      metadata: dict[str, str] | None = None) -> Path:
    """Write a ``name → tensor`` dict as a safetensors file, atomically.

    Tensors are copied to contiguous CPU memory first: safetensors refuses tensors that
    share storage (tied weights, views), which a ``state_dict`` may hold.
    """
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    data = save(tensors, metadata=metadata)
    return atomic_write(path, lambda f: f.write(data))


def _find_run_checkpoint(run_dir: Path) -> Path:
    from .checkpoint import BEST, LAST

    for name in (BEST, LAST):
        if (run_dir / "checkpoints" / name).is_file():
            return run_dir / "checkpoints" / name
    raise MissingFileError(f"{run_dir} is not a run folder with a checkpoint (no checkpoints/{BEST} or "
                           f"checkpoints/{LAST}); pass --checkpoint FILE or the folder `snl-video train` wrote")


def _read_metrics(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidValueError(f"{path} is not readable JSON ({exc}); run `snl-video eval` again or pass "
                                "--checkpoint to publish without results") from None
    return data if isinstance(data, dict) else None


def _config_json(cfg: Any, *, class_names: list[str], input_spec: Any, source: Path, epoch: Any) -> dict[str, Any]:
    from ..config import config_to_dict
    from ..version import __version__

    recipe = config_to_dict(cfg)
    recipe["pretrained"] = None  # the initial weights of training are not needed: the trained ones are here
    return {
        "format_version": PUBLISHED_FORMAT_VERSION,
        "library_name": "snl_video",
        "library_version": __version__,
        "architecture": cfg.model.name,
        "model_options": dict(cfg.model.options),
        "num_classes": cfg.model.num_classes,
        "nonlocal_blocks": recipe.get("nonlocal_blocks"),
        "input_spec": input_spec.to_dict(),
        "class_names": list(class_names),
        "eval_protocol": {"num_clips": cfg.eval.num_clips, "num_crops": cfg.eval.num_crops,
                          "reduce": cfg.eval.reduce},
        "trained_from": {"checkpoint": source.name, "epoch": epoch if isinstance(epoch, int) else None},
        "recipe": recipe,
    }


#: (metrics.json key, model-index metric type, label); ``{k}`` is the run's top-k (5, or the class count).
_METRIC_ROWS = (("video_top1", "accuracy", "video-level top-1"), ("video_top5", "top_k_accuracy", "video-level top-{k}"),
                ("clip_top1", "accuracy", "clip-level top-1"), ("clip_top5", "top_k_accuracy", "clip-level top-{k}"),
                ("mean_class_accuracy", "mean_class_accuracy", "mean class accuracy"))


def _yaml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML scalar, quotes and escapes included


def _dataset_name(recipe: dict[str, Any]) -> str:
    """The dataset's name for the card: the source (``ucf101``, ``hmdb51``), or for a folder /
    list source the prepared folder's name (``folder`` alone says nothing)."""
    data = recipe.get("data", {})
    dataset = str(data.get("dataset", "unknown"))
    if dataset in ("folder", "list") and data.get("root"):
        return f"{Path(str(data['root'])).name} ({dataset})"
    return dataset


def model_card(config: dict[str, Any], metrics: dict[str, Any] | None, *, name: str) -> str:
    """The ``README.md`` of a published folder: Hub front matter + results, use, limits, loading.

    ``metrics`` is the run's ``eval/metrics.json``: its numbers, and its own description of
    the protocol (clip and video protocol, subset, split), go into the card as they are.
    """
    recipe = config["recipe"]
    split = recipe.get("data", {}).get("split")
    dataset = _dataset_name(recipe)
    nl = config.get("nonlocal_blocks")
    blocks = (f"{nl['kind']} non-local blocks at {nl.get('positions') or 'the default placement'}" if nl
              else "no non-local blocks")
    spec = config["input_spec"]
    protocol = config["eval_protocol"]
    tags = ["video-classification", "action-recognition", "non-local", "pytorch", config["architecture"]]
    if nl:
        tags.append(str(nl["kind"]))
    lines = ["---", "library_name: snl_video", "pipeline_tag: video-classification", "tags:"]
    lines += [f"- {_yaml_str(t)}" for t in tags]
    lines += ["datasets:", f"- {_yaml_str(dataset)}"]
    rows: list[tuple[str, str, float]] = []
    protocol_text = ""
    if metrics:
        k = metrics.get("top5_k", 5)
        rows = [(label.format(k=k), kind, float(metrics[key])) for key, kind, label in _METRIC_ROWS
                if isinstance(metrics.get(key), (int, float))]
        protocol_text = "; ".join(str(metrics[key]) for key in ("clip_protocol", "video_protocol") if key in metrics)
        protocol_text = (f"{protocol_text}; {metrics.get('num_videos', '?')} videos of the "
                         f"{metrics.get('subset', 'test')} subset, split {metrics.get('split', split)}")
        lines += ["metrics:", "- accuracy", "model-index:", f"- name: {_yaml_str(name)}", "  results:", "  - task:",
                  "      type: video-classification", "      name: Action recognition", "    dataset:",
                  f"      name: {_yaml_str(dataset)}", f"      type: {_yaml_str(dataset)}",
                  f"      split: {_yaml_str(str(metrics.get('subset', 'test')) + ' of split ' + str(split))}",
                  "    metrics:"]
        for label, kind, value in rows:
            lines += [f"    - type: {_yaml_str(kind)}", f"      name: {_yaml_str(label)}", f"      value: {value}"]
        lines += ["    source:", f"      name: {_yaml_str('snl-video eval: ' + protocol_text)}"]
    lines += ["---", "", f"# {name}", "",
              f"Architecture `{config['architecture']}` with {blocks}, trained with snl_video on `{dataset}` "
              f"(split {split}); {config['num_classes']} classes.", "",
              "## Results", ""]
    if rows:
        lines += ["| metric | value (%) |", "|---|---|"] + [f"| {label} | {value:.2f} |" for label, _, value in rows]
        lines += ["", f"Protocol: {protocol_text} (`eval/metrics.json` of the run)."]
    else:
        lines += ["No evaluation was published with this model (it was published from a checkpoint, or its run "
                  "had no `eval/metrics.json`)."]
    lines += ["", "## Intended use", "",
              f"Classifying short clips of human actions into the {config['num_classes']} classes listed in "
              "`config.json` (`class_names`), for research on non-local blocks and action recognition. "
              f"Default video protocol: {protocol['num_clips']} clips x {protocol['num_crops']} crops, "
              f"{protocol['reduce']}.", "",
              "## Limits", "",
              f"- Trained on `{dataset}` only: other footage, other classes or other camera set-ups can fail silently.",
              f"- Expects {spec['num_frames']}-frame clips at stride {spec['sampling_stride']}, resized and cropped to "
              f"{spec['crop_size']}px, normalised with mean {spec['mean']} / std {spec['std']}; snl_video applies "
              "this itself from `config.json`.",
              "- Not evaluated for fairness, safety-critical use or surveillance.", "",
              "## How to load it", "",
              "```bash",
              "snl-video predict --weights DIR_OR_hf://OWNER/NAME video.mp4",
              "HF_HUB_OFFLINE=1 snl-video predict --weights hf://OWNER/NAME video.mp4   # from the local cache",
              "```", "", "```python",
              "from snl_video.engine.loading import load_inference_model",
              "loaded = load_inference_model(weights=\"hf://OWNER/NAME\")  # or a local folder",
              "```", "",
              "`model.safetensors` holds the weights only; `config.json` holds the architecture, non-local blocks, "
              "input spec, class names and the training recipe.", ""]
    return "\n".join(lines)


def publish_model(
    source: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    push_to_hub: str | None = None,
    name: str | None = None,
) -> Path:
    """Write a Hub-style model folder (``model.safetensors``, ``config.json``, ``README.md``) at ``out``.

    Args:
        source: a training checkpoint, or a run folder (its ``checkpoints/best.pt``, else
            ``last.pt``, and its ``eval/metrics.json`` for the model card's results).
        out: the folder to create; it must not exist yet (or be empty), so nothing is overwritten.
        push_to_hub: ``OWNER/NAME``: upload the folder with ``huggingface_hub`` afterwards.
        name: the model card's title (default: the recipe's ``name``).
    """
    from .checkpoint import describe_checkpoint, load_training_checkpoint

    source = Path(source)
    metrics = None
    if source.is_dir():
        ckpt = _find_run_checkpoint(source)
        metrics = _read_metrics(source / "eval" / "metrics.json")
        evaluated = metrics.get("checkpoint") if metrics else None
        if evaluated is not None and Path(str(evaluated)).name != ckpt.name:
            # the numbers belong to another checkpoint of the run: not this model's results
            logger.warning("%s/eval/metrics.json evaluated %s, not %s: the card gets no results (run `snl-video eval "
                           "--checkpoint %s` first)", source, evaluated, ckpt, ckpt)
            metrics = None
    else:
        ckpt = source
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidValueError(f"--out {out} already exists and is not an empty folder; choose a new folder "
                                "(publish never overwrites a published model)")
    state = load_training_checkpoint(ckpt)
    described = describe_checkpoint(state, path=ckpt)
    cfg = described.recipe
    names = described.class_names
    if names is None:
        from .loading import generic_class_names

        names = generic_class_names(cfg.model.num_classes)
        logger.warning("%s names no classes: the folder lists class_0 ... class_%d", ckpt, len(names) - 1)
    config = _config_json(cfg, class_names=names, input_spec=described.input_spec, source=ckpt,
                          epoch=state.get("epoch"))
    card = model_card(config, metrics, name=name or cfg.name)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise write_error(out, exc) from exc
    try:
        write_safetensors(state["model"], tmp / WEIGHTS_FILE, metadata={"format": "pt", "library": "snl_video"})
        atomic_write_text(tmp / CONFIG_FILE, json.dumps(config, indent=2, allow_nan=False) + "\n")
        atomic_write_text(tmp / CARD_FILE, card)
        os.chmod(tmp, 0o777 & ~_umask())
        if out.exists():
            out.rmdir()  # empty (checked above)
        try:
            os.replace(tmp, out)
        except OSError as exc:
            if out.exists():  # another publish filled --out meanwhile: keep its folder, drop ours
                raise InvalidValueError(f"--out {out} was written by another process while publishing; choose a "
                                        "new folder") from None
            raise write_error(out, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("published %s (%s, %d classes%s) to %s", ckpt, cfg.model.name, len(names),
                ", with its evaluation" if metrics else "", out)
    if push_to_hub is not None:
        push_folder_to_hub(out, push_to_hub)
    return out


def _umask() -> int:
    from ..fileio import current_umask

    return current_umask()


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise MissingDependencyError("huggingface_hub is not installed: `pip install \"snl-video[hub]\"` (or "
                                     "`pip install huggingface_hub`) to load hf:// names or push to the Hub") from None
    return huggingface_hub


def push_folder_to_hub(folder: str | os.PathLike[str], repo_id: str) -> str:
    """Upload a published folder to the Hub model repository ``repo_id`` (created if needed).

    A thin call to ``huggingface_hub.HfApi``; it needs a token (``hf auth login`` or
    ``HF_TOKEN``) and the network, so the test suite cannot exercise it.
    """
    hub = _hub()
    _split_repo(repo_id, given=repo_id)
    api = hub.HfApi(library_name="snl_video")
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                                 commit_message="snl-video publish")
    except Exception as exc:  # noqa: BLE001 - network, token, permissions: the user's to fix, the folder stays
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"push of {folder} to the Hub repository {repo_id} failed ({first}); the folder is kept: "
                        f"log in (`hf auth login` or HF_TOKEN) and upload it with huggingface_hub's CLI: "
                        f"`hf upload {repo_id} {folder}`") from None
    logger.info("pushed %s to https://huggingface.co/%s", folder, repo_id)
    return str(info)


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedFolder:
    """A published folder read back: its ``config.json`` and its tensors (keys not yet checked
    against a model: :func:`snl_video.engine.loading.load_inference_model` does that)."""

    path: Path
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]

    def as_training_state(self) -> dict[str, Any]:
        """The folder in a training checkpoint's shape (``model``, ``recipe``, ``class_names``,
        ``input_spec``), so the one checkpoint path rebuilds it."""
        return {"model": self.state_dict, "recipe": self.config["recipe"],
                "class_names": self.config["class_names"], "input_spec": self.config["input_spec"]}


def is_published_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder with a ``config.json`` (what ``--weights DIR`` expects)."""
    return Path(path).is_dir() and (Path(path) / CONFIG_FILE).is_file()


def read_published_folder(folder: str | os.PathLike[str], *, shown_as: str | None = None) -> PublishedFolder:
    """Read and check a published folder's ``config.json`` and ``model.safetensors``.

    Raises:
        InvalidValueError: one line naming what is wrong (no config, bad JSON, a newer format,
            missing keys, an architecture that disagrees with the recipe, an unreadable
            safetensors file).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    where = shown_as or str(folder)
    cfg_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not cfg_path.is_file() or not weights_path.is_file():
        missing = [p.name for p in (cfg_path, weights_path) if not p.is_file()]
        if (folder / "checkpoints").is_dir():
            raise MissingFileError(f"{where} is a run folder, not a published model folder: pass --checkpoint "
                                   f"{folder / 'checkpoints' / 'best.pt'} (or last.pt), or `snl-video publish {folder} "
                                   "--out DIR` first")
        raise MissingFileError(f"{where} is not a published model folder: {' and '.join(missing)} missing "
                               "(`snl-video publish` writes model.safetensors, config.json and README.md)")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidValueError(f"{where}/{CONFIG_FILE} is not readable JSON ({exc}); publish the model again") from None
    if not isinstance(config, dict):
        raise InvalidValueError(f"{where}/{CONFIG_FILE} holds {type(config).__name__}, not an object; publish the "
                                "model again")
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise InvalidValueError(f"{where}/{CONFIG_FILE} lacks {', '.join(missing)}: not a folder `snl-video publish` "
                                "wrote, or it was edited; publish the model again")
    version = config["format_version"]
    if not isinstance(version, int) or version > PUBLISHED_FORMAT_VERSION or version < 1:
        raise InvalidValueError(f"{where}/{CONFIG_FILE} has format_version {version!r}; this snl_video reads 1 to "
                                f"{PUBLISHED_FORMAT_VERSION}: upgrade snl_video")
    recipe = config["recipe"]
    recipe_arch = recipe.get("model", {}).get("name") if isinstance(recipe, dict) else None
    if recipe_arch != config["architecture"]:
        raise InvalidValueError(f"{where}/{CONFIG_FILE}: architecture {config['architecture']!r} disagrees with its "
                                f"recipe's model.name {recipe_arch!r}; the file was edited: publish the model again")
    names = config["class_names"]
    if not isinstance(names, list) or len(names) != config["num_classes"]:
        raise InvalidValueError(f"{where}/{CONFIG_FILE}: {len(names) if isinstance(names, list) else 'no list of'} "
                                f"class names for num_classes {config['num_classes']!r}; publish the model again")
    try:
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise InvalidValueError(f"{where}/{WEIGHTS_FILE} is not a readable safetensors file ({exc}); download or "
                                "publish it again") from None
    return PublishedFolder(path=folder, config=config, state_dict=state)


def _split_repo(repo: str, *, given: str) -> tuple[str, str]:
    owner, slash, name = repo.partition("/")
    if not slash or not owner or not name or "/" in name:
        raise InvalidValueError(f"{given!r}: expected a Hub model name OWNER/NAME (e.g. hf://my-lab/r3d50-snl-ucf101"
                                "[@REVISION])")
    return owner, name


def resolve_hub_weights(spec: str) -> Path:
    """The local folder of ``hf://OWNER/NAME[@REVISION]``: ``huggingface_hub.snapshot_download``
    (its cache; ``HF_HUB_OFFLINE=1`` reads only the cache). Raises one-line errors for a
    missing package, repository, revision, or a model not cached while offline."""
    hub = _hub()
    from huggingface_hub import errors as hub_errors

    rest = spec[len(HUB_PREFIX):]
    repo, _, revision = rest.partition("@")
    _split_repo(repo, given=spec)
    try:
        path = hub.snapshot_download(repo_id=repo, revision=revision or None, repo_type="model",
                                     allow_patterns=[WEIGHTS_FILE, CONFIG_FILE, CARD_FILE], library_name="snl_video")
    except hub_errors.RevisionNotFoundError:
        raise MissingFileError(f"{spec}: the Hub repository {repo} has no revision {revision!r}") from None
    except hub_errors.RepositoryNotFoundError:
        raise MissingFileError(f"{spec}: no Hub model repository {repo} (or it is private: log in with "
                               "`hf auth login` or HF_TOKEN)") from None
    except hub_errors.LocalEntryNotFoundError:
        raise MissingFileError(f"{spec} is not in the huggingface_hub cache and the Hub cannot be reached (offline: "
                               "HF_HUB_OFFLINE is set, or no network); download it once online") from None
    except (hub_errors.HfHubHTTPError, OSError) as exc:
        raise MissingFileError(f"{spec}: download failed ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None
    logger.debug("%s -> %s", spec, path)
    return Path(path)
