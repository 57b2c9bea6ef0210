"""The spectral view of a trained (or fresh) model: each placed block's affinity spectrum and
learned frequency response, on a real clip.

For every non-local block in ``model.nonlocal_blocks`` this captures the block's input on a
clip and reports

* the **eigenvalues** of its affinity ``A`` (float64, batch item 0, exactly ``N`` values):
  SNL-family affinities are symmetric with spectrum in ``[−1, 1]`` and top eigenvalue 1;
  softmax affinities (NL, NS, DNL, SNL_a2, gSNL) are not symmetric and have complex
  eigenvalues (the paper's Remark 2). On the linear (low-rank) path ``A = U Vᵀ`` is never
  formed: with ``U = Q R`` (thin QR, ``k = min(N, rank) ≤ 2·C_s`` columns) the non-zero
  eigenvalues of ``A`` are those of the ``k×k`` matrix ``QᵀAQ = R (VᵀQ)`` (symmetric when
  ``A`` is), and the remaining ``N − k`` are zeros;
* the **frequency response** of its filter: ``H(λ) ∈ R^{C×C_s}`` such that the filter maps
  ``Z = v cᵀ`` (``v`` an eigenvector with eigenvalue ``λ``) to ``v (H(λ) c)ᵀ``. A
  multi-channel response is summarised per **output channel** ``o`` by its gain
  ``‖H(λ)[o, :]‖₂`` — the largest output ``o`` that a unit-norm mix of the ``C_s`` input
  channels on that eigenvector can produce — over ``λ ∈ [−1, 1]``; the plot shows the median
  and the 10–90 % band over output channels. The output norm's per-channel scale
  (``γ / √(var + ε)``, eval mode) is reported beside it (``bn_scale``), not folded in.

:func:`compute_spectra` is the Python API; :func:`write_spectrum_report` writes
``spectrum.json`` and one PNG per block (``snl-video spectrum``).
"""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..fileio import atomic_write, atomic_write_text
from ..nonlocal_blocks import GraphOperator, LowRankAffinity, NonLocalBlock, TaylorChannelAffinity
from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = [
    "affinity_eigenvalues",
    "compute_spectra",
    "frequency_response_summary",
    "load_clip",
    "model_input",
    "write_spectrum_report",
]

#: Dense eigen-decompositions (non-low-rank affinities) are skipped above this many nodes.
MAX_DENSE_EIGEN_NODES = 6000
#: Points of the λ grid for frequency responses.
RESPONSE_POINTS = 101



def _eig_real_imag(m: Tensor, symmetric: bool) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts of ``m``'s eigenvalues (``eigvalsh`` of its symmetric part
    when ``symmetric``, so they are real by construction)."""
    if symmetric:
        vals = torch.linalg.eigvalsh(0.5 * (m + m.transpose(0, 1)))
        return vals, torch.zeros_like(vals)
    vals = torch.linalg.eigvals(m)
    return vals.real, vals.imag

def _is_symmetric(matrix: Tensor) -> bool:
    scale = matrix.abs().max().clamp_min(1e-300)
    return bool(((matrix - matrix.transpose(-1, -2)).abs().max() / scale) <= 1e-10)


def affinity_eigenvalues(op: GraphOperator, *, item: int = 0) -> dict[str, Any]:
    """Eigenvalues of ``A`` for batch item ``item``, in float64, exactly ``N`` of them.

    Low-rank operators use a ``k×k`` problem (``k ≤ rank ≤ 2·C_s``); others the dense matrix.
    Returns ``{"real", "imag", "symmetric", "method"}`` (NumPy arrays sorted by real part).
    """
    n = op.num_nodes
    with torch.no_grad():
        return _eigenvalues(op, n, item)


def _eigenvalues(op: GraphOperator, n: int, item: int) -> dict[str, Any]:
    if isinstance(op, TaylorChannelAffinity):
        raise InvalidValueError(
            "CGNL's affinity is over (position, channel) pairs (N·C_s nodes), not positions: its "
            "eigenvalues are not computed"
        )
    if isinstance(op, LowRankAffinity):
        u, v = (f[item].double() for f in op.factors())
        # U = Q R: A = Q (R Vᵀ Q) Qᵀ on range(Q), and zero on its complement.
        q, r = torch.linalg.qr(u, mode="reduced")  # q: (N, k), k = min(N, rank)
        small = r @ (v.transpose(0, 1) @ q)  # (k, k) = Qᵀ A Q
        symmetric = op.symmetrize
        real, imag = _eig_real_imag(small, symmetric)
        k = small.shape[0]
        method = (f"low-rank: eigvalsh of a {k}x{k} symmetric matrix (Q^T A Q)" if symmetric
                  else f"low-rank: eigvals of a {k}x{k} matrix (Q^T A Q)")
        pad = n - real.shape[0]
        real = torch.cat([real, real.new_zeros(pad)])
        imag = torch.cat([imag, imag.new_zeros(pad)])
    else:
        if n > MAX_DENSE_EIGEN_NODES:
            raise InvalidValueError(
                f"a dense {n}x{n} eigen-decomposition is too large (limit {MAX_DENSE_EIGEN_NODES} nodes); "
                "use a shorter/smaller clip or a low-rank affinity (impl='linear')"
            )
        a = op.dense()[item].double()
        symmetric = _is_symmetric(a)
        real, imag = _eig_real_imag(a, symmetric)
        method = f"dense: {'eigvalsh' if symmetric else 'eigvals'} of the {n}x{n} affinity"
    order = torch.argsort(real)
    return {
        "real": real[order].detach().cpu().numpy(),
        "imag": imag[order].detach().cpu().numpy(),
        "symmetric": bool(symmetric),
        "method": method,
    }


def frequency_response_summary(block: NonLocalBlock, *, points: int = RESPONSE_POINTS) -> dict[str, Any] | None:
    """The block's ``H(λ)`` over ``λ ∈ [−1, 1]`` summarised per output channel (module doc).

    ``None`` when the filter has no frequency response (ARMA with a ReLU inside; CGNL).
    """
    lam = torch.linspace(-1.0, 1.0, points, dtype=torch.float64)
    response = block.frequency_response(lam)
    if response is None:
        return None
    gains = response.norm(dim=2)  # (G, C): ‖H(λ)[o, :]‖₂
    norm = block.out_norm
    if isinstance(norm, nn.BatchNorm3d) and norm.running_var is not None:
        bn_scale = (norm.weight.detach().double() / torch.sqrt(norm.running_var.double() + norm.eps)).tolist()
    else:
        bn_scale = norm.weight.detach().double().tolist()
    return {
        "lambda": lam.tolist(),
        "summary": "gain_o(lambda) = ||H(lambda)[o, :]||_2 per output channel o (row norm of the C x C_s "
        "response matrix); bn_scale = the output norm's gamma / sqrt(var + eps), not folded in",
        "gain_per_output_channel": gains.transpose(0, 1).numpy(),  # (C, G)
        "gain_median": gains.median(dim=1).values.numpy(),
        "gain_p10": gains.quantile(0.1, dim=1).numpy(),
        "gain_p90": gains.quantile(0.9, dim=1).numpy(),
        "bn_scale": bn_scale,
    }


def compute_spectra(model: nn.Module, clip: Tensor, *, response_points: int = RESPONSE_POINTS) -> list[dict[str, Any]]:
    """Spectra and responses of every block in ``model.nonlocal_blocks`` on ``clip`` ``(1, 3, T, H, W)``.

    The model runs once in eval mode (no grad) to capture each block's input; each block's
    affinity is then rebuilt in float64 from a float64 copy of the block.
    """
    blocks = getattr(model, "nonlocal_blocks", None)
    if not isinstance(blocks, nn.ModuleDict) or len(blocks) == 0:
        raise InvalidValueError("the model has no placed non-local blocks (model.nonlocal_blocks is empty)")
    captured: dict[str, Tensor] = {}
    handles = [
        block.register_forward_pre_hook(lambda m, args, key=key: captured.__setitem__(key, args[0].detach()))
        for key, block in blocks.items()
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(clip)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    results = []
    for key, block in blocks.items():
        if not isinstance(block, NonLocalBlock):
            logger.info("block %s (%s) is not a graph-filter block: skipped", key, type(block).__name__)
            continue
        x = captured[key][:1].double().cpu()
        block64 = copy.deepcopy(block).double().cpu().eval()
        with torch.no_grad():
            op, _ = block64.filter_input(x)
        entry: dict[str, Any] = {
            "name": key,
            "kind": block.kind,
            "options": {k: v for k, v in block.options.items()},
            "num_nodes": int(op.num_nodes),
            "map_shape": list(x.shape[2:]),
            "affinity": type(op).__name__,
        }
        try:
            eig = affinity_eigenvalues(op)
            entry["eigenvalues"] = {"real": eig["real"], "imag": eig["imag"]}
            entry["symmetric"] = eig["symmetric"]
            entry["eigen_method"] = eig["method"]
        except ValueError as exc:
            logger.warning("block %s: eigenvalues skipped: %s", key, exc)
            entry["eigenvalues"] = None
            entry["eigen_note"] = str(exc)
        response = frequency_response_summary(block64, points=response_points)
        entry["response"] = response
        if response is None:
            entry["response_note"] = "no frequency response: the filter is not linear in Z (or uses grouped weights)"
        results.append(entry)
    return results


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return np.round(obj.astype(np.float64), 8).tolist()
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _plot_block(entry: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, (ax_eig, ax_resp) = plt.subplots(1, 2, figsize=(11, 4.2))
    try:
        eig = entry.get("eigenvalues")
        flt = entry.get("options", {}).get("filter")
        label = f"{entry['kind']}, {flt}" if flt else entry["kind"]
        title = f"{entry['name']} ({label}), N = {entry['num_nodes']:,}"
        if eig is None:
            ax_eig.text(0.5, 0.5, "eigenvalues not computed", ha="center", va="center")
        elif entry.get("symmetric"):
            real = np.asarray(eig["real"])
            ax_eig.hist(real, bins=60, range=(-1.05, 1.05), color="C0", log=True)
            ax_eig.set(xlabel="eigenvalue λ of A", ylabel="count (log)", title=f"spectrum (real): {title}")
            ax_eig.axvline(real.max(), color="C3", linestyle=":", label=f"top λ = {real.max():.6f}")
            ax_eig.legend(fontsize=8)
        else:
            real, imag = np.asarray(eig["real"]), np.asarray(eig["imag"])
            ax_eig.scatter(real, imag, s=6, color="C1")
            t = np.linspace(0, 2 * np.pi, 200)
            ax_eig.plot(np.cos(t), np.sin(t), color="grey", linewidth=0.7, label="unit circle")
            ax_eig.set(xlabel="Re λ", ylabel="Im λ", title=f"spectrum (complex plane): {title}", aspect="equal")
            ax_eig.legend(fontsize=8)
        resp = entry.get("response")
        if resp is None:
            ax_resp.text(0.5, 0.5, entry.get("response_note", "no response"), ha="center", va="center", wrap=True)
        else:
            lam = np.asarray(resp["lambda"])
            ax_resp.fill_between(lam, resp["gain_p10"], resp["gain_p90"], color="C2", alpha=0.3,
                                 label="10-90 % of output channels")
            ax_resp.plot(lam, resp["gain_median"], color="C2", label="median over output channels")
            ax_resp.set(xlabel="λ (eigenvalue of A)", ylabel="gain ||H(λ)[o, :]||₂",
                        title="learned frequency response per output channel")
            if eig is not None and entry.get("symmetric"):
                real = np.asarray(eig["real"])
                ax_resp.plot(real, np.zeros_like(real), "|", color="C0", markersize=8, label="eigenvalues of A")
            ax_resp.legend(fontsize=8)
        fig.tight_layout()
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)


def write_spectrum_report(
    results: Sequence[dict[str, Any]], out_dir: str | os.PathLike[str], *, extra: dict[str, Any] | None = None
) -> dict[str, Path]:
    """``spectrum.json`` (``{"blocks": [...]}``) and ``<block>.png`` per block in ``out_dir``, atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for entry in results:
        paths[entry["name"]] = out / f"spectrum_{entry['name']}.png"
        _plot_block(entry, paths[entry["name"]])
    doc = {**(extra or {}), "blocks": _jsonable(list(results))}
    paths["json"] = atomic_write_text(out / "spectrum.json", json.dumps(doc))
    logger.info("spectrum report: %s", out)
    return paths


def load_clip(
    video: str | os.PathLike[str],
    *,
    num_frames: int,
    size: int,
    stride: int = 1,
    normalization: Any = None,
    backend: Any = None,
) -> Tensor:
    """The centre clip of ``video`` as the model sees it at test time: ``(1, 3, T, size, size)``.

    Same frames (:func:`~snl_video.data.video.read_centre_clip`) and eval transform as
    ``snl-video eval``'s clip-level test; ``normalization`` (a spec or a ``mean``/``std``
    mapping) defaults to 3D-ResNets-PyTorch's Kinetics statistics, the toolkit's default.
    """
    from ..data.transforms import HARA_KINETICS_NORMALIZATION, eval_transform
    from ..data.video import read_centre_clip

    clip = read_centre_clip(video, num_frames=num_frames, sampling_stride=stride, backend=backend)
    if normalization is None:
        normalization = HARA_KINETICS_NORMALIZATION
    return eval_transform(normalization, size=size, crops=1)(clip).unsqueeze(0)


def model_input(loaded: Any, video: str | os.PathLike[str], *, backend: Any = None) -> Tensor:
    """The centre clip of ``video`` fed as a loaded model's input spec says
    (:class:`~snl_video.engine.loading.InferenceModel`, its
    :meth:`~snl_video.engine.loading.InferenceModel.transform`): ``(1, 3, T, S, S)``."""
    from ..data.video import read_centre_clip

    spec = loaded.input_spec
    clip = read_centre_clip(video, num_frames=spec.num_frames, sampling_stride=spec.sampling_stride, backend=backend)
    return loaded.transform(crops=1)(clip).unsqueeze(0)
