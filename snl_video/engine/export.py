"""Export a trained model for deployment: ``torch.export`` (``.pt2``) or ONNX (dynamo exporter).

The exported graph is ``model.forward`` exactly: it takes the *normalised* float clip
``(B, 3, T, H, W)`` and returns logits ``(B, num_classes)``, with a dynamic batch size.
Preprocessing is not built in; it is written beside the model as JSON
(``<out>.preprocessing.json``: decode RGB, take ``num_frames`` frames ``sampling_stride``
apart, resize the short side to ``crop_size``, centre-crop, scale pixels to
``[0, value_scale]``, subtract ``mean``, divide by ``std``, layout ``(3, T, H, W)``), with
the class names in head order.

``verify=True`` runs the exported program (``torch.export.load`` or onnxruntime) on a
random clip with another batch size than the example (so the dynamic batch is exercised)
and reports ``max |exported - pytorch| / max |pytorch|``, failing above ``1e-4``.

``precision="bf16"`` (with ``verify``) compares the exported program with the PyTorch
model run as ``predict --precision bf16`` runs it (bf16 autocast, channels-last 3D on the
CPU), so a deployment can be checked against the toolkit's fast CPU inference. The exported
program itself stays float32 (its input and weights; ONNX runtimes and ``torch.export``
consumers pick their own precision). The limit is then :data:`VERIFY_TOLERANCES` ``["bf16"]``
= ``3e-2`` (relative to the largest logit, as above): bf16 keeps 8 significant bits (a
relative rounding of ``2**-9`` ≈ 2e-3 per value) and every convolution and projection rounds
its inputs again, so bf16 logits differ from float32 ones by the network's own accumulation
of that rounding — measured ``5e-3``–``1.2e-2`` on r3d18, r3d50 and i3d_r50 with and without
SNL blocks and on the one-block test nets (random clips, random weights; ``docs/cpu_inference.md``);
3e-2 is about 3x the largest. It is a coarser check than fp32's 1e-4: a program whose head
weights were scaled by 1.25 after writing misses it at 1.0e-1 (tested), a change within
bf16's own rounding would pass; verify in fp32 for the exact check. Where the model's bf16 forward itself
strays further from float32 (softmax NL / DNL blocks far from their identity start reach
1e-1–2e-1), bf16 cannot verify anything: the check then also compares with float32 and says
which of the two failed (the program, or bf16 for this model). bf16 on a CPU without native
bf16 is refused, as for the inference verbs (:mod:`snl_video.engine.precision`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, get_args

import torch

from ..fileio import atomic_write_text, current_umask
from .loading import InferenceModel
from ..errors import InvalidValueError
from .onnx_ops import onnx_translation_table
from .precision import Precision, autocast_dtype, channels_last_by_default

logger = logging.getLogger(__name__)

__all__ = ["ExportFormat", "ExportResult", "export_model", "name_batch_axis", "verify_export", "VERIFY_TOLERANCE",
           "VERIFY_TOLERANCES", "atomic_output"]

ExportFormat = Literal["onnx", "pt2"]
#: Largest accepted relative difference of the exported logits (max abs diff / max abs logit).
VERIFY_TOLERANCE = 1e-4
#: The same limit per verification precision: the PyTorch reference in fp32, or under bf16
#: autocast (bf16's rounding through the network; see the module docstring).
VERIFY_TOLERANCES: dict[str, float] = {"fp32": VERIFY_TOLERANCE, "bf16": 3e-2}


@dataclass(frozen=True)
class ExportResult:
    """Where the program went, its input shape, and the verification figure (None if not run),
    with the precision of the PyTorch reference it was compared against and the limit it met."""

    path: Path
    preprocessing: Path
    format: ExportFormat
    input_shape: tuple[int, int, int, int, int]
    relative_error: float | None
    precision: Precision = "fp32"
    tolerance: float | None = None


def atomic_output(path: Path, write: Callable[[Path], object]) -> None:
    """Let ``write(tmp_path)`` produce the file under a temporary name, then rename it into place.

    Every exported file goes through here (torch.export and ONNX write their own files, so the
    atomic writers of :mod:`snl_video.fileio` do not fit); tests replace it to tamper with a
    written program before ``--verify`` reads it back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0600 would survive a writer that reuses the file
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        for leftover in (Path(tmp), Path(tmp + ".data")):
            if leftover.exists():
                leftover.unlink()


def name_batch_axis(model: Any, name: str = "batch") -> None:
    """Rename the symbolic first axis of ``model``'s first input (torch.export calls it ``s53`` or
    the like) to ``name`` in every value of the graph (an ``onnx_ir`` model, as ``torch.onnx.export``
    gives), so an ONNX runtime or viewer shows ``batch``, as the preprocessing record says."""
    graph = model.graph
    first = graph.inputs[0].shape[0]
    old = getattr(first, "value", None)
    if isinstance(first, int) or not isinstance(old, str) or old == name:
        return
    values = list(graph.inputs) + list(graph.outputs) + [out for node in graph.all_nodes() for out in node.outputs]
    renamed = 0
    for value in values:
        shape = value.shape
        if shape is None or not any(getattr(d, "value", None) == old for d in shape):
            continue
        value.shape = type(shape)([name if (not isinstance(d, int) and getattr(d, "value", None) == old) else d
                                   for d in shape])
        renamed += 1
    logger.debug("ONNX batch axis %r named %r in %d value(s)", old, name, renamed)


def _require_onnx() -> None:
    missing = []
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise InvalidValueError(f"--format onnx needs {', '.join(missing)}: pip install 'snl_video[export]' "
                         "(or use --format pt2)")


def export_model(
    loaded: InferenceModel,
    out: str | os.PathLike[str],
    *,
    format: ExportFormat = "pt2",
    num_frames: int | None = None,
    size: int | None = None,
    verify: bool = False,
    opset: int = 18,
    precision: Precision = "fp32",
) -> ExportResult:
    """Export ``loaded.model`` (eval mode, CPU, float32) for clips of ``num_frames`` x ``size`` x ``size``.

    ``num_frames``/``size`` default to the model's clip spec; a foreign file whose spec is
    unknown needs them. ``precision``: the PyTorch reference of ``verify`` (``bf16``: under
    bf16 autocast, limit :data:`VERIFY_TOLERANCES` ``["bf16"]``; refused without ``verify``
    and on a CPU without native bf16). Raises ``InvalidValueError`` naming the problem when
    the model does not run at that size or the verification misses its limit.
    """
    out, num_frames, size, amp_dtype = _check_export_request(loaded, out, format=format, num_frames=num_frames,
                                                             size=size, verify=verify, precision=precision)
    model = loaded.model.to("cpu").eval()
    example = torch.randn(2, 3, num_frames, size, size)
    _check_model_runs(model, example)
    _write_program(model, example, out, format=format, opset=opset)
    side = out.with_name(out.name + ".preprocessing.json")
    atomic_write_text(side, json.dumps(_preprocessing_record(loaded, format=format, num_frames=num_frames, size=size),
                                       indent=1) + "\n")
    rel = None
    tolerance: float | None = None
    if verify:
        tolerance = VERIFY_TOLERANCES[precision]
        rel = _verify_within_tolerance(model, out, loaded, format=format, num_frames=num_frames, size=size,
                                       precision=precision, amp_dtype=amp_dtype)
    logger.info("exported %s (%s, input (B, 3, %d, %d, %d))%s", out, format, num_frames, size, size,
                f", verified against PyTorch in {precision}: relative error {rel:.2e}" if rel is not None else "")
    return ExportResult(out, side, format, (-1, 3, num_frames, size, size), rel, precision, tolerance)


def _check_export_request(loaded: InferenceModel, out: str | os.PathLike[str], *, format: ExportFormat,
                          num_frames: int | None, size: int | None, verify: bool,
                          precision: Precision) -> tuple[Path, int, int, torch.dtype | None]:
    """Refuse an export request that cannot work before anything is traced, and fill the clip size
    from the model's spec: returns the output path, clip length, crop size and autocast dtype."""
    if format not in get_args(ExportFormat):
        raise InvalidValueError(f"--format must be 'onnx' or 'pt2', got {format!r}")
    amp_dtype = autocast_dtype(precision, "cpu")  # refuses an unknown name, and bf16 where it is emulated
    if precision != "fp32" and not verify:
        raise InvalidValueError(f"--precision {precision} is the precision --verify checks the export against (the "
                                "exported program is float32): add --verify, or leave --precision out")
    if (num_frames is None or size is None) and not loaded.input_known:
        raise InvalidValueError(f"the input size of {loaded.source} is unknown (no recipe or registry entry): "
                         "pass --num-frames T --crop-size S")
    num_frames = num_frames if num_frames is not None else loaded.num_frames
    size = size if size is not None else loaded.crop_size
    if num_frames < 1 or size < 1:
        raise InvalidValueError(f"--num-frames and --crop-size must be positive, got {num_frames} and {size}")
    out = Path(out)
    expected_suffix = {"onnx": ".onnx", "pt2": ".pt2"}[format]
    if out.suffix != expected_suffix:
        raise InvalidValueError(f"--output-file {out}: an {format} export is written to a '{expected_suffix}' file")
    if format == "onnx":
        _require_onnx()
    return out, num_frames, size, amp_dtype


def _check_model_runs(model: torch.nn.Module, example: torch.Tensor) -> None:
    """Run the model once on the example clip, so a size the network rejects is a one-line user
    error rather than a long trace from inside ``torch.export``."""
    num_frames, size = example.shape[2], example.shape[4]
    try:
        with torch.no_grad():
            model(example)
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise InvalidValueError(f"the model does not run on clips of {num_frames}x{size}x{size} ({first}); pass --num-frames / "
                         "--crop-size the network accepts (its recipe's are the safe choice)") from None


class _NamedInput(torch.nn.Module):
    """Wraps the model so that its input is called ``clip`` in both formats."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.inner(clip)


def _write_program(model: torch.nn.Module, example: torch.Tensor, out: Path, *, format: ExportFormat,
                   opset: int) -> None:
    """Trace the model with a dynamic batch axis (``torch.export``) and write it atomically to ``out``
    as a ``.pt2`` program or an ONNX model (dynamo exporter, batch axis named ``batch``)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = {"clip": {0: batch}}
    wrapped = _NamedInput(model).eval()
    with torch.no_grad():
        program = torch.export.export(wrapped, (example,), dynamic_shapes=dynamic, strict=False)
    if format == "pt2":
        atomic_output(out, lambda tmp: torch.export.save(program, str(tmp)))
    else:
        def write_onnx(tmp: Path) -> None:
            onnx_program = torch.onnx.export(program, (example,), dynamo=True, input_names=["clip"],
                                             output_names=["logits"], opset_version=opset, verbose=False,
                                             custom_translation_table=onnx_translation_table())
            assert onnx_program is not None  # dynamo=True returns an ONNXProgram (None: the TorchScript exporter)
            name_batch_axis(onnx_program.model, "batch")
            onnx_program.save(str(tmp))

        atomic_output(out, write_onnx)


def _resize_step(resize: int | tuple[int, int] | None, size: int) -> str:
    """The resize-and-crop step in words, as :func:`snl_video.data.transforms.input_transform` does it."""
    if isinstance(resize, tuple):
        return f"resize to {resize[0]}x{resize[1]} (height x width, antialiased), centre-crop {size}x{size}"
    return f"resize the short side to {resize or size} (antialiased), centre-crop {size}x{size}"


def _preprocessing_record(loaded: InferenceModel, *, format: ExportFormat, num_frames: int,
                         size: int) -> dict[str, Any]:
    """The ``<out>.preprocessing.json`` record: the exported program's input and output, the steps
    that turn a video into its input (in words and as the toolkit's input-spec record) and the
    class names, so a deployment outside the toolkit can feed it correctly."""
    n = loaded.normalization
    used = loaded.input_spec.replace(num_frames=num_frames)  # --num-frames / --crop-size as exported
    if size != used.crop_size:  # another crop: the short side goes to it (a published resize no longer applies)
        used = used.replace(crop_size=size, resize=None)
    prepared = ([f"resize the short side to {loaded.frame_short_side} (antialiased): the frames the model was "
                 "trained on were stored at that size"] if loaded.frame_short_side is not None else [])
    return {
        "input": {"name": "clip", "shape": ["batch", 3, num_frames, size, size], "dtype": "float32",
                  "layout": "(batch, RGB channel, time, height, width)"},
        "output": {"name": "logits", "shape": ["batch", loaded.num_classes]},
        "preprocessing": [
            "decode RGB frames",
            *prepared,
            f"take {num_frames} frames {loaded.sampling_stride} apart (uniform clips over the video for a video-level score)",
            _resize_step(used.resize, size),
            f"scale pixels to [0, {n.value_scale:g}], subtract mean, divide by std (per RGB channel)",
            "average softmax probabilities over the clips (and crops)",
        ],
        "mean": list(n.mean), "std": list(n.std), "value_scale": n.value_scale,
        "num_frames": num_frames, "sampling_stride": loaded.sampling_stride, "crop_size": size,
        "class_names": loaded.class_names, "source": loaded.source, "format": format,
        # the same facts as the toolkit's one input-spec record (snl_video.inputspec.InputSpec.from_dict reads it)
        "input_spec": used.to_dict(),
    }


def _verify_within_tolerance(model: torch.nn.Module, out: Path, loaded: InferenceModel, *, format: ExportFormat,
                             num_frames: int, size: int, precision: Precision,
                             amp_dtype: torch.dtype | None) -> float:
    """Run the written program against the PyTorch model at ``precision`` and return the relative
    error; above the precision's limit, raise an error that says whether the program or the
    model's own ``precision`` forward is to blame (the latter by comparing in float32 too)."""
    tolerance = VERIFY_TOLERANCES[precision]
    channels_last = channels_last_by_default(loaded.architecture, precision, "cpu")
    rel = verify_export(model, out, format=format, num_frames=num_frames, size=size, amp_dtype=amp_dtype,
                        channels_last=channels_last)
    if not rel <= tolerance:  # nan fails too
        fp32_rel = rel if precision == "fp32" else verify_export(model, out, format=format,
                                                                 num_frames=num_frames, size=size)
        if precision != "fp32" and fp32_rel <= VERIFY_TOLERANCE:
            raise InvalidValueError(
                f"verification in {precision} failed: the exported program computes the float32 model (relative "
                f"error {fp32_rel:.2e}), but this model's {precision} forward itself differs from it by more "
                f"than the {precision} limit {tolerance:g} ({rel:.2e} against the program), so {precision} "
                f"cannot verify it; verify with --precision fp32, and check {precision}'s accuracy on your "
                f"data before serving the model in {precision}")
        raise InvalidValueError(f"verification failed: exported logits differ from PyTorch ({precision}) by "
                                f"{rel:.2e} (relative), more than the {precision} limit {tolerance:g}; the "
                                f"program does not compute the model (was {out} changed after it was "
                                "written?); it is kept for inspection")
    return rel


def verify_export(model: torch.nn.Module, path: Path, *, format: ExportFormat, num_frames: int, size: int,
                  batch: int = 3, seed: int = 0, amp_dtype: torch.dtype | None = None,
                  channels_last: bool = False) -> float:
    """``max |exported - model| / max |model|`` on a random clip of ``batch`` (not the example's 2).

    ``amp_dtype`` / ``channels_last``: the model's forward as the inference verbs run it at
    that precision (:func:`~snl_video.engine.evaluate.collect_logits`); the exported program
    gets the same float32 clip.
    """
    from .evaluate import collect_logits

    gen = torch.Generator().manual_seed(seed)
    clip = torch.randn(batch, 3, num_frames, size, size, generator=gen)
    with torch.no_grad():
        item = {"clip": clip, "label": torch.zeros(batch, dtype=torch.long), "index": torch.arange(batch)}
        expected = torch.from_numpy(collect_logits(model, [item], device=torch.device("cpu"), amp_dtype=amp_dtype,
                                                   channels_last=channels_last)[2])
        if format == "pt2":
            got = torch.export.load(str(path)).module()(clip)
        else:
            import onnxruntime

            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: clip.numpy()})[0])
    return float((got - expected).abs().max() / expected.abs().max().clamp_min(1e-12))
