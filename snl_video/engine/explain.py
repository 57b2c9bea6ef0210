"""What each non-local block attends to, and Grad-CAM of the last stage, on one video.

The model sees the *centre clip* of the video after resize and centre crop (the
clip-level protocol): ``T x S x S`` with ``T = num_frames`` and ``S = crop_size``. A query
``(t, y, x)`` is a position of that clip. A block placed after stage ``k`` sees a coarser
map ``t_b x h_b x w_b``; the query's node there is the cell that covers it,
``(floor(t t_b / T), floor(y h_b / S), floor(x w_b / S))`` flattened in ``x.flatten(2)``
order (:func:`query_node`) — exactly the cell whose nearest-neighbour upsampling covers the
query (tested at several strides).

For each placed block and query, the affinity row ``A[i, :]`` (how node ``i`` weighs every
node, from the block's own :meth:`~snl_video.nonlocal_blocks.GraphOperator.row`: on the
linear SNL path that costs ``O(N·C_s)`` and no ``N×N`` matrix is formed) is upsampled to the
clip (nearest, or trilinear — a convex combination, so non-negative rows stay
non-negative) and written as

* ``<block>_rows.npy`` ``(Q, t_b, h_b, w_b)`` (the raw rows) and ``<block>_maps.npy``
  ``(Q, T, S, S)`` (upsampled);
* ``<block>_grid.png``: rows = queries, columns = frames, the heat map over the frame and the
  query marked in its frame, each row's value range and a colour bar; every frame enlarged
  to at least 112 px (:func:`panel_scale`);
* ``<block>.gif`` (or ``.mp4``): the overlay over time, one panel per query (at least 112 px).

``gradcam=True`` adds Grad-CAM (Selvaraju et al.) of the backbone's last stage for the
predicted class (or ``class_name``): ``gradcam.npy``, ``gradcam_grid.png``, ``gradcam.gif``.
Blocks without an explicit position affinity (CGNL's nodes are position x channel pairs;
transform-domain blocks have none) are listed in ``explain.json`` with the reason.

**Precision.** With a model set to ``bf16`` (``--precision bf16``,
:meth:`~snl_video.engine.loading.InferenceModel.set_precision`) the network runs under bf16
autocast on the CPU, as ``predict --precision bf16`` runs it: the backbone's activations and
each block's projections ``θ``, ``φ`` are bf16, and the block builds its affinity from them in
float32, as its own forward does (:meth:`~snl_video.nonlocal_blocks.NonLocalBlock.graph_operator`).
The rows and maps written are **float32** in either precision (``.npy`` files of dtype
``float32``; Grad-CAM is combined in float32 from the bf16 activations and gradients). In
bf16 they differ from the fp32 ones by bf16's rounding (8 significant bits) carried through
the backbone into ``θ``, ``φ``: on the tiny test model 7.7e-3 of the largest value for SNL
rows, up to 3.8e-2 for the softmax rows of NL / DNL / CC (a softmax turns a small change of
``θᵀφ`` into a relative change of the row), and under 1.7e-2 for Grad-CAM.
``explain.json`` records the precision.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, cast, get_args

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..data.transforms import ToVideo
from ..data.video import read_centre_clip
from ..fileio import atomic_write, atomic_write_text
from ..nonlocal_blocks import NonLocalBlock
from .loading import InferenceModel
from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = ["Query", "ExplainResult", "query_node", "node_cell", "parse_query", "affinity_rows", "explain_video",
           "gradcam", "upsample_map", "render_grid", "render_animation", "colour_bar", "panel_scale", "overlay_heatmap", "normalise_maps"]

Upsample = Literal["nearest", "trilinear"]
Query = tuple[int, int, int]


def parse_query(text: str) -> Query:
    """``"t,y,x"`` -> ``(t, y, x)`` (integers)."""
    parts = text.replace(" ", "").split(",")
    if len(parts) != 3 or not all(p.lstrip("-").isdigit() for p in parts):
        raise InvalidValueError(f"--query {text!r}: expected three integers t,y,x (e.g. 7,56,56)")
    return int(parts[0]), int(parts[1]), int(parts[2])


def check_query(query: Query, clip_shape: tuple[int, int, int]) -> None:
    t, y, x = query
    T, H, W = clip_shape
    if not (0 <= t < T and 0 <= y < H and 0 <= x < W):
        raise InvalidValueError(f"--query {t},{y},{x} is outside the model's input clip {T}x{H}x{W}: "
                         f"use t in 0..{T - 1}, y in 0..{H - 1}, x in 0..{W - 1}")


def query_node(query: Query, clip_shape: tuple[int, int, int], map_shape: tuple[int, int, int]) -> int:
    """Node index (``x.flatten(2)`` order) of the map cell covering input position ``query``."""
    check_query(query, clip_shape)
    (t, y, x), (T, H, W), (tb, hb, wb) = query, clip_shape, map_shape
    ti, yi, xi = t * tb // T, y * hb // H, x * wb // W
    return (ti * hb + yi) * wb + xi


def node_cell(node: int, clip_shape: tuple[int, int, int], map_shape: tuple[int, int, int]) -> Query:
    """The input position at the centre of a node's cell (the inverse direction, for default queries)."""
    (T, H, W), (tb, hb, wb) = clip_shape, map_shape
    ti, rest = divmod(node, hb * wb)
    yi, xi = divmod(rest, wb)
    return (min(T - 1, (2 * ti + 1) * T // (2 * tb)), min(H - 1, (2 * yi + 1) * H // (2 * hb)),
            min(W - 1, (2 * xi + 1) * W // (2 * wb)))


def upsample_map(values: Tensor, size: tuple[int, int, int], mode: Upsample = "nearest") -> Tensor:
    """``(Q, t, h, w)`` -> ``(Q, T, H, W)``; nearest or trilinear (never negative from non-negative input)."""
    if mode not in get_args(Upsample):
        raise InvalidValueError(f"upsample must be 'nearest' or 'trilinear', got {mode!r}")
    kw = {"align_corners": False} if mode == "trilinear" else {}
    return F.interpolate(values[:, None].float(), size=size, mode=mode, **kw)[:, 0]


def affinity_rows(block: NonLocalBlock, features: Tensor, nodes: Sequence[int], *,
                  amp_dtype: torch.dtype | None = None) -> Tensor:
    """Rows ``A[i, :]`` of ``block``'s affinity on ``features`` ``(1, C, t, h, w)``: ``(Q, N)`` float32.

    ``amp_dtype``: the block's projections run under that autocast (as in the model's forward
    at that precision); the affinity itself is built in float32 either way.
    """
    with torch.no_grad():
        with torch.autocast(features.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            op = block.graph_operator(features)
        return torch.stack([op.row(int(i))[0] for i in nodes]).float()


def no_affinity_reason(block: nn.Module) -> str | None:
    """Why ``block`` has no per-position affinity row to show, or None when it has one."""
    kind = getattr(block, "kind", type(block).__name__)
    if not hasattr(block, "graph_operator"):
        return f"{kind}: no explicit affinity (a transform-domain block); use --gradcam to see what drives the output"
    if kind == "cgnl":
        return ("cgnl: its affinity links (position, channel) pairs, not positions, so it has no per-position row; "
                "use --gradcam")
    return None


@dataclass
class ExplainResult:
    """What was written, per block, and the class the clip was explained for."""

    out_dir: Path
    queries: list[Query]
    predicted: str
    files: dict[str, list[Path]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, list[int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def centre_clip_input(loaded: InferenceModel, video: str | os.PathLike[str],
                      backend: Any = None) -> tuple[Tensor, np.ndarray]:
    """The model input ``(1, 3, T, S, S)`` of ``video``'s centre clip (as ``eval``'s clip-level
    test takes it) and the same frames for display, ``uint8 (T, S, S, 3)`` resized and cropped."""
    from torchvision.transforms import v2

    spec = loaded.input_spec
    frames = read_centre_clip(video, num_frames=spec.num_frames, sampling_stride=spec.sampling_stride, backend=backend)
    x = loaded.transform(crops=1)(frames)[None]
    shown = v2.Compose([ToVideo(), v2.Resize(spec.crop_size, antialias=True), v2.CenterCrop(spec.crop_size)])(frames)
    return x, shown.as_subclass(Tensor).permute(0, 2, 3, 1).contiguous().numpy()


def _capture_blocks(model: nn.Module, x: Tensor, *,
                    amp_dtype: torch.dtype | None = None) -> tuple[Tensor, dict[str, tuple[Tensor, Tensor]]]:
    """Logits and, per placed block, its input and output (the forward under ``amp_dtype`` autocast)."""
    seen: dict[str, tuple[Tensor, Tensor]] = {}
    handles = []
    for key, block in getattr(model, "nonlocal_blocks", {}).items():
        handles.append(block.register_forward_hook(
            lambda mod, inp, out, key=key: seen.__setitem__(key, (inp[0].detach(), out.detach()))))
    try:
        with torch.no_grad(), torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return logits, seen


def _default_queries(inp: Tensor, out: Tensor, clip_shape: tuple[int, int, int], count: int = 3) -> list[Query]:
    """Positions where the block changes its input most (``|y - x|`` per node), else where ``|y|`` is largest."""
    inp, out = inp.float(), out.float()  # bf16 activations under --precision bf16
    change = (out - inp).flatten(2).norm(dim=1)[0]
    if not change.any():
        change = out.flatten(2).norm(dim=1)[0]
    order = torch.argsort(change, descending=True).tolist()
    queries: list[Query] = []
    t, h, w = inp.shape[2:]
    for node in order:
        q = node_cell(node, clip_shape, (t, h, w))
        if q not in queries:
            queries.append(q)
        if len(queries) == count:
            break
    return queries


def overlay_heatmap(frame: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``frame`` (uint8 ``(H, W, 3)``) blended with ``heat`` (``(H, W)`` in [0, 1]) in the
    :data:`COLORMAP` colours: ``(1 - alpha) * frame + alpha * colour(heat)``, as uint8."""
    from matplotlib import colormaps

    colored = colormaps[COLORMAP](heat)[..., :3] * 255
    return ((1 - alpha) * frame.astype(np.float64) + alpha * colored).clip(0, 255).astype(np.uint8)


def normalise_maps(maps: np.ndarray) -> np.ndarray:
    """Each map to [0, 1] over all its frames (min-max), for display."""
    flat = maps.reshape(len(maps), -1)
    lo, hi = flat.min(1)[:, None], flat.max(1)[:, None]
    return ((flat - lo) / np.where(hi > lo, hi - lo, 1.0)).reshape(maps.shape)


def _mark(image: "Any", centre: tuple[int, int], radius: int) -> None:
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    cx, cy = centre
    draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=(255, 255, 255), width=2)
    draw.line([cx - radius - 2, cy, cx + radius + 2, cy], fill=(0, 0, 0), width=1)
    draw.line([cx, cy - radius - 2, cx, cy + radius + 2], fill=(0, 0, 0), width=1)


def _save_png(path: Path, image: "Any") -> Path:
    return atomic_write(path, lambda f: image.save(f, format="PNG"))


#: Margins of the grid PNG that hold its labels (title, frame indices, one label and the value
#: range per row) and, on the right, the colour bar with its ends labelled.
GRID_LEFT, GRID_TOP, GRID_TITLE, GRID_RIGHT = 120, 14, 14, 64
#: The colour bar: its left edge ``GRID_BAR_GAP`` px right of the last panel, ``GRID_BAR_WIDTH`` px wide.
GRID_BAR_GAP, GRID_BAR_WIDTH = 8, 16
#: A panel (grid tile or animation frame) is drawn at least this many pixels wide: a 48 or
#: 56 px clip is enlarged by a whole factor (each pixel repeated), so nothing is interpolated.
MIN_PANEL = 112
#: The colormap of the overlays and of the colour bar.
COLORMAP = "jet"


def panel_scale(size: int) -> int:
    """The whole factor a ``size`` px frame is enlarged by so its panel is at least :data:`MIN_PANEL` px."""
    return max(1, -(-MIN_PANEL // max(1, size)))


def _enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    return image if factor == 1 else np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def colour_bar(height: int, width: int = GRID_BAR_WIDTH) -> np.ndarray:
    """``uint8 (height, width, 3)``: the colormap from the top (value 1, a row's maximum) to the
    bottom (0, its minimum), as the overlays colour a map scaled to [0, 1]."""
    from matplotlib import colormaps

    column = (colormaps[COLORMAP](np.linspace(1.0, 0.0, height))[:, :3] * 255).astype(np.uint8)
    return np.repeat(column[:, None, :], width, axis=1)


def render_grid(frames: np.ndarray, maps: np.ndarray, queries: Sequence[Query | None], path: Path,
                *, title: str = "", row_labels: Sequence[str] | None = None) -> Path:
    """Rows = maps (one per query), columns = frames; the query circled in its own frame.

    The image labels itself, so it can be shared without ``explain.json``: ``title`` on top
    (block, prediction), ``t=0 … T-1`` over the columns (frames of the model's input clip),
    each row's label on the left (default: the query as ``q t,y,x``) with the range of its
    values (each row is scaled to its own minimum..maximum), and a colour bar on the right
    from ``max`` to ``min``. Each frame is enlarged by :func:`panel_scale` (``P = S·k``
    pixels, at least :data:`MIN_PANEL`); the panels sit at
    ``(GRID_LEFT + t·P, GRID_TOP + GRID_TITLE + r·P)``.
    """
    from PIL import Image, ImageDraw

    T, S = frames.shape[0], frames.shape[1]
    k = panel_scale(S)
    P = S * k
    heat = normalise_maps(maps)
    left, top = GRID_LEFT, GRID_TOP + GRID_TITLE
    height = len(maps) * P
    grid = Image.new("RGB", (left + T * P + GRID_RIGHT, top + height), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((2, 1), title, fill=(0, 0, 0))
    for t in range(T):
        draw.text((left + t * P + 2, GRID_TITLE + 1), f"t={t}", fill=(0, 0, 0))
    for r, q in enumerate(queries):
        label = row_labels[r] if row_labels is not None else ("" if q is None else f"q {q[0]},{q[1]},{q[2]}")
        draw.text((2, top + r * P + P // 2 - 12), label, fill=(0, 0, 0))
        draw.text((2, top + r * P + P // 2 + 2), f"{maps[r].min():.3g} to {maps[r].max():.3g}", fill=(0, 0, 0))
        for t in range(T):
            grid.paste(Image.fromarray(_enlarge(overlay_heatmap(frames[t], heat[r, t]), k)), (left + t * P, top + r * P))
        if q is not None:
            _mark(grid, (left + q[0] * P + q[2] * k + k // 2, top + r * P + q[1] * k + k // 2), max(3, P // 16))
    bar_x = left + T * P + GRID_BAR_GAP
    grid.paste(Image.fromarray(colour_bar(height)), (bar_x, top))
    text_x = bar_x + GRID_BAR_WIDTH + 3
    draw.text((text_x, top), "max", fill=(0, 0, 0))
    draw.text((text_x, top + height - 11), "min", fill=(0, 0, 0))
    draw.text((bar_x - 2, GRID_TITLE + 1), "per row", fill=(0, 0, 0))
    return _save_png(path, grid)


def render_animation(frames: np.ndarray, maps: np.ndarray, queries: Sequence[Query | None], path: Path,
                     *, fps: float = 4.0) -> Path:
    """The overlay over time: one panel per query side by side, one image per frame (GIF or
    MP4), each panel enlarged by :func:`panel_scale` (at least :data:`MIN_PANEL` px)."""
    from PIL import Image

    T, S = frames.shape[0], frames.shape[1]
    k = panel_scale(S)
    P = S * k
    heat = normalise_maps(maps)
    images = []
    for t in range(T):
        panel = Image.new("RGB", (len(maps) * P, P))
        for r, q in enumerate(queries):
            panel.paste(Image.fromarray(_enlarge(overlay_heatmap(frames[t], heat[r, t]), k)), (r * P, 0))
            if q is not None and q[0] == t:
                _mark(panel, (r * P + q[2] * k + k // 2, q[1] * k + k // 2), max(3, P // 16))
        images.append(panel)
    if path.suffix == ".gif":
        return atomic_write(path, lambda f: images[0].save(f, format="GIF", save_all=True, append_images=images[1:],
                                                           duration=int(1000 / fps), loop=0))
    if path.suffix == ".mp4":
        import av

        def write(f: Any) -> None:
            with av.open(f, mode="w", format="mp4") as container:
                stream = container.add_stream("mpeg4", rate=int(round(fps)))
                stream.width, stream.height = images[0].size[0] // 2 * 2, images[0].size[1] // 2 * 2
                stream.pix_fmt = "yuv420p"
                for im in images:
                    arr = np.asarray(im)[: stream.height, : stream.width]
                    for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)

        return atomic_write(path, write)
    raise InvalidValueError(f"animation {path.name}: use .gif or .mp4")


def _save_npy(path: Path, array: np.ndarray) -> Path:
    return atomic_write(path, lambda f: np.save(f, array))


def _last_stage_module(model: nn.Module) -> nn.Module:
    """The module whose output is the backbone's last feature map (after any block placed there).

    In a two-pathway model (SlowFast) that is the slow pathway's last stage: the map the
    lateral connections have fused the fast pathway into, with most of the head's channels.
    """
    pathway = "slow." if isinstance(getattr(model, "slow", None), nn.Module) and hasattr(model, "fast") else ""
    stages = [n for n in ("layer4", "layer3", "layer2", "layer1") if _has_submodule(model, f"{pathway}{n}")]
    if not stages:
        name = getattr(getattr(model, "spec", None), "arch", None) or type(model).__name__
        raise InvalidValueError(f"--gradcam needs a convolutional backbone with stages layer1..layer4 (3D ResNets, "
                                f"SlowFast, X3D); {name} has none")
    stage = cast(nn.Sequential, model.get_submodule(f"{pathway}{stages[0]}"))  # a stage: its residual blocks
    blocks = getattr(model, "nonlocal_blocks", {})
    last = len(stage) - 1
    make_key = getattr(model, "nonlocal_key", None)
    key = make_key(f"{pathway}{stages[0]}", last) if callable(make_key) else f"{stages[0]}_after_{last}"
    return blocks[key] if key in blocks else stage[last]


def _has_submodule(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True


def gradcam(model: nn.Module, x: Tensor, class_index: int, *, amp_dtype: torch.dtype | None = None) -> Tensor:
    """Grad-CAM of the last stage for ``class_index``: ``relu(Σ_c mean(∂y/∂A_c) A_c)``, ``(t, h, w)``
    float32 (the forward and backward under ``amp_dtype`` autocast; the sum in float32)."""
    target = _last_stage_module(model)
    store: dict[str, Tensor] = {}

    def hook(mod: nn.Module, inp: Any, out: Tensor) -> None:
        if isinstance(out, tuple):  # an FFC block: res5 gives (local, 0), the local part is the whole map
            out = out[0]
        out.retain_grad()
        store["act"] = out

    handle = target.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            with torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(x.requires_grad_(False))
            model.zero_grad(set_to_none=True)
            logits[0, class_index].float().backward()
    finally:
        handle.remove()
    act_grad = store["act"].grad
    assert act_grad is not None  # the hook called retain_grad() on it, and backward ran
    act, grad = store["act"][0].detach().float(), act_grad[0].float()
    weights = grad.mean(dim=(1, 2, 3))
    return F.relu((weights[:, None, None, None] * act).sum(0))


def explain_video(
    loaded: InferenceModel,
    video: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    queries: Sequence[Query] | None = None,
    upsample: Upsample = "nearest",
    gradcam_class: str | None = None,
    with_gradcam: bool = False,
    animation: Literal["gif", "mp4"] = "gif",
    backend: Any = None,
) -> ExplainResult:
    """Write affinity rows (and Grad-CAM) of ``video``'s centre clip to ``out_dir``; see the module doc."""
    if animation not in ("gif", "mp4"):
        raise InvalidValueError(f"animation must be 'gif' or 'mp4', got {animation!r}")
    model = loaded.model.eval()
    amp_dtype = loaded.amp_dtype  # None: fp32; bf16 autocast after set_precision("bf16")
    x, frames = _clip_on_device(loaded, video, backend)
    clip_shape = (x.shape[2], x.shape[3], x.shape[4])
    for q in queries or ():
        check_query(q, clip_shape)
    class_index = _gradcam_class_index(loaded, gradcam_class)
    logits, captured = _capture_blocks(model, x, amp_dtype=amp_dtype)
    predicted = int(logits[0].argmax())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = ExplainResult(out, [], loaded.class_names[predicted])
    short = _short_clip_note(loaded, video)
    if short is not None:  # as predict says it: the maps rest on frames repeated in a loop
        result.notes.append(short)
    blocks = dict(getattr(model, "nonlocal_blocks", {}).items())
    if not blocks and not with_gradcam:
        raise InvalidValueError(f"{loaded.source} has no non-local blocks to explain; add --gradcam for the last stage")
    if queries is None and captured:
        queries = _queries_from_first_block(blocks, captured, clip_shape)
    result.queries = list(queries or [])
    for key, block in blocks.items():
        reason = no_affinity_reason(block)
        if reason is not None:
            result.skipped[key] = reason
            logger.warning("%s: %s", key, reason)
            continue
        assert isinstance(block, NonLocalBlock)  # the one block class with an affinity (no_affinity_reason)
        _write_block_rows(result, key, block, captured[key][0], frames, clip_shape, upsample=upsample,
                          animation=animation, amp_dtype=amp_dtype)
    gradcam_name = None
    if with_gradcam:
        idx = class_index if class_index is not None else predicted
        gradcam_name = loaded.class_names[idx]
        result.files["gradcam"] = _write_gradcam(model, x, idx, gradcam_name, frames, out, clip_shape,
                                                 animation=animation, amp_dtype=amp_dtype)
    record = _explain_record(video, loaded, result, clip_shape, upsample=upsample, gradcam_class=gradcam_name,
                             amp_dtype=amp_dtype)
    atomic_write_text(out / "explain.json", json.dumps(record, indent=1) + "\n")
    return result


def _short_clip_note(loaded: InferenceModel, video: str | os.PathLike[str]) -> str | None:
    """:func:`~snl_video.engine.predict.short_video_note` of ``video`` (None when it fills a clip)."""
    from ..data.video import count_frames
    from .predict import short_video_note

    return short_video_note(str(video), count_frames(video), num_frames=loaded.num_frames,
                            stride=loaded.sampling_stride)


def _clip_on_device(loaded: InferenceModel, video: str | os.PathLike[str], backend: Any) -> tuple[Tensor, np.ndarray]:
    """The centre clip's model input on the model's device, in the memory layout the model was set
    to for its precision, and its frames for display (:func:`centre_clip_input`)."""
    x, frames = centre_clip_input(loaded, video, backend)
    x = x.to(loaded.device)
    if loaded.channels_last:  # the layout the model was set to for its precision
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return x, frames


def _gradcam_class_index(loaded: InferenceModel, gradcam_class: str | None) -> int | None:
    """The head index of ``--class`` (None: Grad-CAM explains the predicted class); a name the
    model does not have is refused with the closest names."""
    if gradcam_class is None:
        return None
    if gradcam_class not in loaded.class_names:
        close = __import__("difflib").get_close_matches(gradcam_class, loaded.class_names, n=3)
        raise InvalidValueError(f"--class {gradcam_class!r} is not one of the model's classes"
                         + (f"; did you mean {', '.join(map(repr, close))}?" if close else ""))
    return loaded.class_names.index(gradcam_class)


def _queries_from_first_block(blocks: Mapping[str, nn.Module], captured: Mapping[str, tuple[Tensor, Tensor]],
                              clip_shape: tuple[int, int, int]) -> list[Query]:
    """Default query positions, where the first block that has an affinity changes its input most
    (the first captured block when none has one)."""
    key = next(k for k in blocks if k in captured and no_affinity_reason(blocks[k]) is None) \
        if any(no_affinity_reason(b) is None for b in blocks.values()) else next(iter(captured))
    return _default_queries(*captured[key], clip_shape)


def _write_block_rows(result: ExplainResult, key: str, block: NonLocalBlock, features: Tensor, frames: np.ndarray,
                      clip_shape: tuple[int, int, int], *, upsample: Upsample, animation: Literal["gif", "mp4"],
                      amp_dtype: torch.dtype | None) -> None:
    """Write one block's affinity rows of the queries (raw and upsampled ``.npy``, grid, animation)
    and record its files, query nodes and notes in ``result``."""
    out = result.out_dir
    t, h, w = features.shape[2:]
    map_shape = (t, h, w)
    nodes = [query_node(q, clip_shape, map_shape) for q in result.queries]
    rows = affinity_rows(block, features[:1], nodes, amp_dtype=amp_dtype).reshape(len(nodes), *map_shape).cpu()
    maps = upsample_map(rows, clip_shape, upsample).numpy()
    files = [_save_npy(out / f"{key}_rows.npy", rows.numpy()), _save_npy(out / f"{key}_maps.npy", maps),
             render_grid(frames, maps, result.queries, out / f"{key}_grid.png",
                         title=f"{key} ({block.kind}) affinity rows; predicted: {result.predicted}"),
             render_animation(frames, maps, result.queries, out / f"{key}.{animation}")]
    if getattr(block, "recurrence", 1) > 1:
        result.notes.append(f"{key}: {block.kind} applies its affinity {block.recurrence} times; the rows are "
                            "those of the first pass")
    result.files[key] = files
    result.nodes[key] = nodes


def _write_gradcam(model: nn.Module, x: Tensor, class_index: int, class_name: str, frames: np.ndarray, out: Path,
                   clip_shape: tuple[int, int, int], *, animation: Literal["gif", "mp4"],
                   amp_dtype: torch.dtype | None) -> list[Path]:
    """Write the last stage's Grad-CAM for ``class_index`` (upsampled ``.npy``, grid, animation);
    returns the files."""
    cam = gradcam(model, x, class_index, amp_dtype=amp_dtype).cpu()
    maps = upsample_map(cam[None], clip_shape, "trilinear").numpy()
    return [
        _save_npy(out / "gradcam.npy", maps[0]),
        render_grid(frames, maps, [None], out / "gradcam_grid.png",
                    title=f"Grad-CAM, last stage; class: {class_name}", row_labels=["Grad-CAM"]),
        render_animation(frames, maps, [None], out / f"gradcam.{animation}"),
    ]


def _explain_record(video: str | os.PathLike[str], loaded: InferenceModel, result: ExplainResult,
                    clip_shape: tuple[int, int, int], *, upsample: Upsample, gradcam_class: str | None,
                    amp_dtype: torch.dtype | None) -> dict[str, Any]:
    """The ``explain.json`` record: what was explained (video, model, class, clip, queries,
    precision) and which files each block's maps went to, or why a block was skipped."""
    return {
        "video": str(video), "source": loaded.source, "predicted": result.predicted,
        "gradcam_class": gradcam_class,
        "clip_shape": list(clip_shape), "input_spec": loaded.input_spec.to_dict(), "queries": [list(q) for q in result.queries], "upsample": upsample,
        "precision": "bf16" if amp_dtype == torch.bfloat16 else "fp32", "maps_dtype": "float32",
        "blocks": {k: {"nodes": v, "files": [p.name for p in result.files[k]]} for k, v in result.nodes.items()},
        "skipped": result.skipped, "notes": result.notes,
    }
