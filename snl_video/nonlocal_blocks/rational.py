"""Rational graph filters on the SNL affinity: Cayley (CayleyNets) and ARMA (Bianchi et al.).

The SNL paper announces Cayley and ARMA blocks that were never released; this module
provides them on top of the same affinity operators as the polynomial filters. Both need
solves with matrices of the form ``c0·I + c1·A + c2·A²``:

* on a **low-rank** affinity ``A = U Vᵀ`` (rank ``r ≤ 2·C_s``: the linear path of SNL) the
  solve is exact through the Woodbury identity,
  ``(c0 I + U K Vᵀ)^-1 z = (z − U (c0 I + K G)^-1 K Vᵀ z) / c0`` with ``G = VᵀU`` and
  ``K = c1 I + c2 G`` — an ``r×r`` system, ``O(N·r² + r³)`` time, ``O(N·r)`` memory;
* on a **dense** affinity (the dense path) it is a dense ``N×N`` solve.

Both give the same function (tested to 1e-10 in float64, isolated nodes included).
Complex numbers (Cayley) are carried as two real tensors in the graph's precision.

Batched solves are issued in chunks of at most :data:`SOLVE_CHUNK` matrices: one call
over a large batch of small matrices (e.g. ``(1, 128, 256, 256)``) is reported to fail
inside MKL on some CPU builds, and chunks of this size are known to work.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import InvalidValueError
from .affinity import GraphOperator, LowRankAffinity
from .checks import check_choice, check_positive_int
from .filters import GraphFilter

__all__ = [
    "ARMA_OPTIONS",
    "ArmaFilter",
    "CAYLEY_OPTIONS",
    "CayleyFilter",
    "CayleyOfficialFilter",
    "SOLVE_CHUNK",
    "arma_filter_factory",
    "batched_solve",
    "cayley_filter_factory",
    "solve_quadratic",
]

#: The ``snl`` options each rational filter reads (the preset rejects them for other filters).
CAYLEY_OPTIONS = ("order", "zoom_init", "solver", "jacobi_iters")
ARMA_OPTIONS = ("solver", "stacks", "layers", "shared_weights", "activation_inner", "feedback")

# Largest batch of small matrices handed to one torch.linalg.solve call.
SOLVE_CHUNK = 16


def batched_solve(matrices: Tensor, rhs: Tensor, *, chunk: int = SOLVE_CHUNK) -> Tensor:
    """``torch.linalg.solve(matrices, rhs)`` over ``(..., n, n)`` / ``(..., n, k)``, in chunks.

    The leading dimensions are flattened and solved at most ``chunk`` matrices per call
    (see the module doc); the result has ``rhs``'s shape. While ``torch.export`` (and so the
    ONNX exporter) traces, it is one call: the number of chunks would depend on the dynamic
    batch size, which an exported program cannot branch on.
    """
    lead = matrices.shape[:-2]
    n = matrices.shape[-1]
    flat_m = matrices.reshape(-1, n, n)
    flat_b = rhs.reshape(-1, n, rhs.shape[-1])
    if torch.compiler.is_exporting():
        # `solve_ex` without its error check: `solve`'s check is a side-effecting op that the
        # ONNX exporter cannot translate; the systems solved here are non-singular by construction.
        return torch.linalg.solve_ex(flat_m, flat_b)[0].reshape(*lead, n, rhs.shape[-1])
    if flat_m.shape[0] <= chunk:
        return torch.linalg.solve(flat_m, flat_b).reshape(*lead, n, rhs.shape[-1])
    parts = [
        torch.linalg.solve(flat_m[i:i + chunk], flat_b[i:i + chunk]) for i in range(0, flat_m.shape[0], chunk)
    ]
    return torch.cat(parts).reshape(*lead, n, rhs.shape[-1])


def _as_coefficient(value: Tensor | float, like: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _has_term(coefficients: Sequence[Tensor | float], index: int) -> bool:
    """Whether ``coefficients[index]`` is given and not a literal zero (tensors count as given)."""
    if index >= len(coefficients):
        return False
    value = coefficients[index]
    return isinstance(value, Tensor) or value != 0


def solve_quadratic(
    op: GraphOperator,
    coefficients: Sequence[Tensor | float],
    rhs: Tensor,
) -> Tensor:
    """Solve ``(c0 I + c1 A + c2 A²) X = rhs`` exactly for ``rhs`` of shape ``(B, N, C)``.

    Each ``c_k`` is a scalar (one system for all channels) or a ``(C,)`` tensor (one system
    per channel, e.g. ARMA's diagonal feedback). ``c0`` must be non-zero. Low-rank
    operators are solved by Woodbury in ``O(N·r² + r³)`` (``r×r`` systems, never ``N×N``),
    any other operator by a dense solve.

    Whether the dense path forms ``A²`` is decided from the *structure* of the call (a
    ``c2`` given as a tensor, or as a non-zero number), never from a tensor's value: a
    value test is a data-dependent branch that ``torch.export``/ONNX cannot trace. A
    tensor ``c2`` that happens to be zero adds ``0·A²``, which is exactly zero.
    """
    coefficients = list(coefficients)
    quadratic = _has_term(coefficients, 2)
    c0, c1, c2 = (_as_coefficient(c, rhs) for c in (coefficients + [0.0, 0.0])[:3])
    per_channel = any(c.dim() > 0 for c in (c0, c1, c2))
    if per_channel:
        channels = rhs.shape[-1]
        c0, c1, c2 = (c.expand(channels) if c.dim() == 0 else c for c in (c0, c1, c2))
    if isinstance(op, LowRankAffinity):
        u, v = op.factors()
        u, v = u.to(rhs.dtype), v.to(rhs.dtype)
        rank = u.shape[-1]
        eye = torch.eye(rank, dtype=rhs.dtype, device=rhs.device)
        gram = torch.bmm(v.transpose(1, 2), u)  # G = VᵀU, (B, r, r)
        vz = torch.bmm(v.transpose(1, 2), rhs)  # (B, r, C)
        if not per_channel:
            k = c1 * eye + c2 * gram
            small = c0 * eye + torch.matmul(k, gram)
            y = batched_solve(small, torch.matmul(k, vz))  # (B, r, C)
            return (rhs - torch.bmm(u, y)) / c0
        # One r×r system per channel: K_c = c1_c I + c2_c G, M_c = c0_c I + K_c G.
        k = c1[None, :, None, None] * eye + c2[None, :, None, None] * gram[:, None]
        small = c0[None, :, None, None] * eye + torch.matmul(k, gram[:, None])  # (B, C, r, r)
        kvz = torch.matmul(k, vz.transpose(1, 2).unsqueeze(-1))  # (B, C, r, 1)
        y = batched_solve(small, kvz).squeeze(-1)  # (B, C, r)
        return (rhs - torch.bmm(u, y.transpose(1, 2))) / c0
    a = op.dense().to(rhs.dtype)
    eye = torch.eye(a.shape[-1], dtype=rhs.dtype, device=rhs.device)
    if not per_channel:
        matrix = c0 * eye + c1 * a
        if quadratic:
            matrix = matrix + c2 * torch.bmm(a, a)
        return batched_solve(matrix, rhs)
    a2 = torch.bmm(a, a) if quadratic else None
    # One N×N system per channel (dense path only: O(C·N³)); a few channels at a time so
    # that at most `chunk` N×N matrices exist at once.
    chunk, parts = 4, []
    for start in range(0, rhs.shape[-1], chunk):
        sl = slice(start, start + chunk)
        matrix = c0[sl, None, None] * eye + c1[sl, None, None] * a[:, None]  # (B, c, N, N)
        if a2 is not None:
            matrix = matrix + c2[sl, None, None] * a2[:, None]
        parts.append(batched_solve(matrix, rhs[..., sl].transpose(1, 2).unsqueeze(-1)).squeeze(-1))
    return torch.cat(parts, dim=1).transpose(1, 2)


def _softplus_inverse(value: float) -> float:
    return value + math.log(-math.expm1(-value))


class CayleyFilter(GraphFilter):
    """Cayley filter of order ``r`` on ``L = I − A`` (Levie et al., CayleyNets, TSP 2018).

    ``G(L) = c0 I + 2 Re Σ_{j=1..r} c_j C^j`` with the Cayley transform
    ``C = (hL − iI)(hL + iI)^-1 = I − 2i (hL + iI)^-1`` and a learned zoom ``h > 0``
    (``h = softplus(raw_zoom)``, ``h = zoom_init`` at init). Multi-channel form:
    ``F = Z W0 + 2 Σ_j (Re(Y_j) W_j_re − Im(Y_j) W_j_im)``, ``Y_0 = Z``, ``Y_j = C Y_{j−1}``;
    the block's convs are ``w0``, ``w1_re``, ``w1_im``, … Its spectral response at an
    eigenvalue ``λ`` of ``A`` is ``W0 + 2 Σ_j Re(c_j ρ^j)`` with ``ρ = (hμ − i)/(hμ + i)``,
    ``μ = 1 − λ`` (``|ρ| = 1``: the Cayley transform maps the spectrum onto the circle).

    ``solver="exact"`` writes ``(hL + iI)^-1 = (hL − iI)(h²L² + I)^-1`` (``h²L² + I`` is real,
    symmetric, positive definite) and solves it exactly (Woodbury on the low-rank path);
    ``solver="jacobi"`` runs ``jacobi_iters`` Jacobi iterations on ``(hL + iI) y = (hL − iI) y_{j−1}``
    as CayleyNets does (needs only ``A·Z`` and ``diag(A)``; converges for moderate zoom).
    """

    def __init__(
        self,
        *,
        order: int = 1,
        zoom_init: float = 1.0,
        solver: Literal["exact", "jacobi"] = "exact",
        jacobi_iters: int = 10,
    ) -> None:
        super().__init__()
        if order < 1:
            raise InvalidValueError(f"cayley: order must be >= 1, got {order}")
        if not zoom_init > 0:
            raise InvalidValueError(f"cayley: zoom_init must be > 0, got {zoom_init}")
        if solver not in ("exact", "jacobi"):
            raise InvalidValueError(f"cayley: solver must be 'exact' or 'jacobi', got {solver!r}")
        if jacobi_iters < 1:
            raise InvalidValueError(f"cayley: jacobi_iters must be >= 1, got {jacobi_iters}")
        self.order = order
        self.solver = solver
        self.jacobi_iters = jacobi_iters
        self.zoom_init = zoom_init
        self.raw_zoom = nn.Parameter(torch.tensor(_softplus_inverse(zoom_init)))
        names = ["w0"]
        for j in range(1, order + 1):
            names += [f"w{j}_re", f"w{j}_im"]
        self.weight_names = tuple(names)

    @property
    def zoom(self) -> Tensor:
        """The spectral zoom ``h = softplus(raw_zoom) > 0``."""
        return F.softplus(self.raw_zoom)

    def _step_exact(self, op: GraphOperator, h: Tensor, yr: Tensor, yi: Tensor) -> tuple[Tensor, Tensor]:
        channels = yr.shape[-1]
        h2 = h * h
        # (h²L² + I) = (1 + h²) I − 2h² A + h² A², one real solve for both parts.
        p = solve_quadratic(op, [1.0 + h2, -2.0 * h2, h2], torch.cat([yr, yi], dim=-1))
        lp = p - op.matmul(p)
        pr, pi = p[..., :channels], p[..., channels:]
        lpr, lpi = lp[..., :channels], lp[..., channels:]
        # Q = (hL + iI)^-1 Y = (hL − iI) P;  C Y = Y − 2i Q.
        qr, qi = h * lpr + pi, h * lpi - pr
        return yr + 2.0 * qi, yi - 2.0 * qr

    def _step_jacobi(
        self, op: GraphOperator, h: Tensor, diag: Tensor, yr: Tensor, yi: Tensor
    ) -> tuple[Tensor, Tensor]:
        # b = (hL − iI) y
        ayr, ayi = op.matmul(yr), op.matmul(yi)
        br, bi = h * (yr - ayr) + yi, h * (yi - ayi) - yr
        # D = diag(hL + iI) = d + i, d = h (1 − a_ii); 1/D = (d − i) / (d² + 1).
        d = (h * (1.0 - diag)).unsqueeze(-1)
        inv = 1.0 / (d * d + 1.0)

        def divide(tr: Tensor, ti: Tensor) -> tuple[Tensor, Tensor]:
            return (tr * d + ti) * inv, (ti * d - tr) * inv

        xr, xi = divide(br, bi)
        for _ in range(self.jacobi_iters):
            # x ← D^-1 (b − Off(hL + iI) x); the off-diagonal part is real: h·(L − diag L).
            lxr = xr - op.matmul(xr)
            lxi = xi - op.matmul(xi)
            xr, xi = divide(br - h * lxr + d * xr, bi - h * lxi + d * xi)
        return xr, xi

    def forward(self, op: GraphOperator, z: Tensor) -> dict[str, Tensor]:
        h = self.zoom.to(z.dtype)
        signals = {"w0": z}
        yr, yi = z, torch.zeros_like(z)
        diag = op.diagonal().to(z.dtype) if self.solver == "jacobi" else None
        for j in range(1, self.order + 1):
            if self.solver == "exact":
                yr, yi = self._step_exact(op, h, yr, yi)
            else:
                assert diag is not None
                yr, yi = self._step_jacobi(op, h, diag, yr, yi)
            signals[f"w{j}_re"] = 2.0 * yr
            signals[f"w{j}_im"] = -2.0 * yi
        return signals

    def response(self, lam: Tensor, weights: Mapping[str, Tensor]) -> Tensor | None:
        h = self.zoom.detach().to(lam.dtype)
        mu = (1.0 - lam).to(torch.complex128)
        rho = (h * mu - 1j) / (h * mu + 1j)
        out = weights["w0"].unsqueeze(0).expand(lam.shape[0], -1, -1)
        for j in range(1, self.order + 1):
            power = rho**j
            out = out + 2.0 * (
                power.real.to(lam.dtype)[:, None, None] * weights[f"w{j}_re"]
                - power.imag.to(lam.dtype)[:, None, None] * weights[f"w{j}_im"]
            )
        return out

    def solves_per_forward(self) -> int:
        return self.order if self.solver == "exact" else 0

    def extra_repr(self) -> str:
        return f"order={self.order}, solver={self.solver!r}, jacobi_iters={self.jacobi_iters}, zoom_init={self.zoom_init}"


class CayleyOfficialFilter(GraphFilter):
    """What the released ``caylay.py`` of the SNL code computes: ``Z W1 + (Z W_h + L² Z) W2``.

    ``L = I − A``; ``W_h`` is a ``C_s → C_s`` 1×1×1 conv (``w_h``, owned by this filter).
    The official code forms ``L²`` densely (``O(N³)``); here ``L² Z = L(L Z)``. Effectively a
    two-term filter in ``{I, L²}`` (``W_h`` is redundant with ``W1``), kept for comparison.
    """

    weight_names = ("w1", "w2")

    def __init__(self, inter_channels: int) -> None:
        super().__init__()
        self.w_h = nn.Conv3d(inter_channels, inter_channels, kernel_size=1, bias=False)

    def forward(self, op: GraphOperator, z: Tensor) -> dict[str, Tensor]:
        lz = z - op.matmul(z)
        l2z = lz - op.matmul(lz)
        wh = F.linear(z, self.w_h.weight.flatten(1).to(z.dtype))
        return {"w1": z, "w2": wh + l2z}

    def response(self, lam: Tensor, weights: Mapping[str, Tensor]) -> Tensor | None:
        mu2 = (1.0 - lam) ** 2
        wh = self.w_h.weight.detach().flatten(1).to(lam.dtype)
        eye = torch.eye(wh.shape[0], dtype=lam.dtype, device=lam.device)
        inner = wh.unsqueeze(0) + mu2[:, None, None] * eye  # (G, C_s, C_s)
        return weights["w1"].unsqueeze(0) + torch.matmul(weights["w2"].unsqueeze(0), inner)


class ArmaFilter(GraphFilter):
    """ARMA filter (Bianchi et al., "Graph Neural Networks with Convolutional ARMA Filters").

    ``K = stacks`` stacks of ``T = layers`` recursive layers on the SNL affinity (which *is*
    their ``D^-1/2 A D^-1/2``): ``X̄_k^{t+1} = σ(A X̄_k^t W_k^t + Z V_k^t)``, ``X̄_k^0 = Z``, and the
    filter output ``(1/K) Σ_k X̄_k^T`` is projected by the block's ``w_out``. Parameters
    (no biases, as the rest of the block): ``feedback`` (``W``, ``(K, T', C_s, C_s)``, or the
    pre-``tanh`` diagonal ``(K, T', C_s)`` with ``feedback="diagonal"``) and ``skip``
    (``V``, ``(K, T', C_s, C_s)``); ``T' = 1`` with ``shared_weights`` (all layers of a stack
    share W and V), else ``T``.

    Contraction: with ``σ`` the identity and diagonal feedback ``w``, the recursion
    converges to ``(I − wA)^-1 Z V`` iff ``|w|·ρ(A) < 1``; ``ρ(A) = 1`` for SNL's affinity, so
    the diagonal feedback is parametrised as ``w = tanh(raw)``, ``|w| < 1``.
    ``solver="exact"`` (requires ``activation_inner="none"`` and ``feedback="diagonal"``)
    computes that fixed point directly — channel ``c`` of stack ``k`` is
    ``(I − w_kc A)^-1 (Z V_k)_c`` — by Woodbury on the low-rank path (one ``r×r`` system per
    channel); ``layers`` is then unused (``T = ∞``). Its response is
    ``v / (1 − wλ)`` per channel: a first-order rational filter per stack.
    """

    weight_names = ("w_out",)

    def __init__(
        self,
        inter_channels: int,
        *,
        stacks: int = 1,
        layers: int = 1,
        shared_weights: bool = False,
        activation_inner: Literal["relu", "none"] = "relu",
        feedback: Literal["full", "diagonal"] = "full",
        solver: Literal["recursion", "exact"] = "recursion",
    ) -> None:
        super().__init__()
        for name, value in (("stacks", stacks), ("layers", layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidValueError(f"arma: {name} must be a positive int, got {value!r}")
        if activation_inner not in ("relu", "none"):
            raise InvalidValueError(f"arma: activation_inner must be 'relu' or 'none', got {activation_inner!r}")
        if feedback not in ("full", "diagonal"):
            raise InvalidValueError(f"arma: feedback must be 'full' or 'diagonal', got {feedback!r}")
        if solver not in ("recursion", "exact"):
            raise InvalidValueError(f"arma: solver must be 'recursion' or 'exact', got {solver!r}")
        if solver == "exact" and (activation_inner != "none" or feedback != "diagonal"):
            raise InvalidValueError(
                "arma: solver='exact' computes the linear fixed point (I − wA)^-1; it needs "
                f"activation_inner='none' and feedback='diagonal' (got activation_inner={activation_inner!r}, "
                f"feedback={feedback!r}): set both, or use solver='recursion'"
            )
        self.inter_channels = inter_channels
        self.stacks = stacks
        self.layers = layers
        self.shared_weights = shared_weights
        self.activation_inner = activation_inner
        self.feedback_kind = feedback
        self.solver = solver
        per_stack = 1 if (shared_weights or solver == "exact") else layers
        cs = inter_channels
        if feedback == "full":
            self.feedback = nn.Parameter(torch.empty(stacks, per_stack, cs, cs))
        else:
            self.feedback = nn.Parameter(torch.empty(stacks, per_stack, cs))
        self.skip = nn.Parameter(torch.empty(stacks, per_stack, cs, cs))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform ``W`` and ``V`` (as PyG's ARMAConv); diagonal ``w = tanh(raw)``, raw ~ U(−1, 1)."""
        bound = math.sqrt(6.0 / (2 * self.inter_channels))
        with torch.no_grad():
            self.skip.uniform_(-bound, bound)
            if self.feedback_kind == "full":
                self.feedback.uniform_(-bound, bound)
            else:
                self.feedback.uniform_(-1.0, 1.0)

    def feedback_weights(self) -> Tensor:
        """``W`` (full) or the diagonal ``w = tanh(raw)`` with ``|w| < 1``."""
        return self.feedback if self.feedback_kind == "full" else torch.tanh(self.feedback)

    def _layer(self, index: int) -> int:
        return 0 if self.feedback.shape[1] == 1 else index

    @staticmethod
    def _skip_term(z: Tensor, v: Tensor, layer: int) -> Tensor:
        """``[Z V_1, …, Z V_K]`` as ``(B, N, K·C_s)``, one matrix product."""
        k, _, cs, _ = v.shape
        return F.linear(z, v[:, layer].transpose(1, 2).reshape(k * cs, cs))

    def forward(self, op: GraphOperator, z: Tensor) -> dict[str, Tensor]:
        batch, nodes, cs = z.shape
        k = self.stacks
        w = self.feedback_weights().to(z.dtype)
        v = self.skip.to(z.dtype)
        if self.solver == "exact":
            x = solve_quadratic(op, [1.0, -w[:, 0].reshape(k * cs)], self._skip_term(z, v, 0))
            return {"w_out": x.reshape(batch, nodes, k, cs).mean(dim=2)}
        x = z.repeat(1, 1, k)  # (B, N, K·C_s): stacks side by side, one A·X for all
        for t in range(self.layers):
            layer = self._layer(t)
            ax = op.matmul(x)
            if self.feedback_kind == "full":
                # Products with W and V as plain matrix products (`mm`), like the block's 1×1×1 convs.
                parts = ax.split(cs, dim=-1)
                fb = torch.cat([F.linear(parts[s], w[s, layer].transpose(0, 1)) for s in range(k)], dim=-1)
            else:
                fb = ax * w[:, layer].reshape(k * cs)
            x = fb + self._skip_term(z, v, layer)
            if self.activation_inner == "relu":
                x = torch.relu(x)
        x = x.reshape(batch, nodes, k, cs)
        return {"w_out": x.mean(dim=2)}

    def response(self, lam: Tensor, weights: Mapping[str, Tensor]) -> Tensor | None:
        if self.activation_inner != "none":
            return None  # a ReLU inside the recursion: no frequency response
        w = self.feedback_weights().detach().to(lam.dtype)
        v = self.skip.detach().to(lam.dtype)
        cs = self.inter_channels
        g = lam.shape[0]
        total = torch.zeros(g, cs, cs, dtype=lam.dtype, device=lam.device)
        for s in range(self.stacks):
            if self.solver == "exact":
                # X_∞ = V diag(1 / (1 − wλ)): c ↦ c X_∞ for row vectors c.
                x = v[s, 0].unsqueeze(0) / (1.0 - lam[:, None, None] * w[s, 0][None, None, :])
            else:
                eye = torch.eye(cs, dtype=lam.dtype, device=lam.device)
                x = eye.expand(g, cs, cs)
                for t in range(self.layers):
                    layer = self._layer(t)
                    fb = x @ w[s, layer] if self.feedback_kind == "full" else x * w[s, layer]
                    x = lam[:, None, None] * fb + v[s, layer]
            total = total + x
        mean = total / self.stacks  # (G, C_s, C_s), row-vector map
        return torch.matmul(weights["w_out"].unsqueeze(0), mean.transpose(1, 2))

    def solves_per_forward(self) -> int:
        return self.stacks * self.inter_channels if self.solver == "exact" else 0

    def extra_repr(self) -> str:
        return (
            f"stacks={self.stacks}, layers={self.layers}, shared_weights={self.shared_weights}, "
            f"activation_inner={self.activation_inner!r}, feedback={self.feedback_kind!r}, solver={self.solver!r}"
        )


def cayley_filter_factory(
    *, order: int, zoom_init: Any, solver: str, jacobi_iters: int
) -> Callable[[int], CayleyFilter]:
    """Check the ``snl`` options of ``filter='cayley'`` and return ``C_s → CayleyFilter``.

    ``solver='auto'`` is ``'exact'``. The checks run when the block is built, so a bad
    option fails before any tensor is made, with the option's name in the message.
    """
    solver = "exact" if solver == "auto" else solver
    check_choice("solver", solver, ("exact", "jacobi"))
    check_positive_int("jacobi_iters", jacobi_iters)
    if isinstance(zoom_init, bool) or not isinstance(zoom_init, (int, float)) or not zoom_init > 0:
        raise InvalidValueError(f"zoom_init must be a number > 0, got {zoom_init!r}")
    return lambda _cs: CayleyFilter(
        order=order, zoom_init=float(zoom_init), solver=solver, jacobi_iters=jacobi_iters  # type: ignore[arg-type]
    )


def arma_filter_factory(
    *,
    solver: str,
    stacks: int,
    layers: int,
    shared_weights: bool,
    activation_inner: str,
    feedback: str,
) -> Callable[[int], ArmaFilter]:
    """Check the ``snl`` options of ``filter='arma'`` and return ``C_s → ArmaFilter``.

    ``solver='auto'`` is ``'recursion'``; ``solver='exact'`` is the ``T = ∞`` fixed point,
    so a ``layers`` other than 1 is rejected rather than silently unused.
    """
    solver = "recursion" if solver == "auto" else solver
    check_choice("solver", solver, ("recursion", "exact"))
    check_positive_int("stacks", stacks)
    check_positive_int("layers", layers)
    check_choice("shared_weights", shared_weights, (True, False))
    check_choice("activation_inner", activation_inner, ("relu", "none"))
    check_choice("feedback", feedback, ("full", "diagonal"))
    if solver == "exact" and layers != 1:
        raise InvalidValueError("arma: solver='exact' is the T = ∞ fixed point; `layers` is unused, leave it at 1")
    return lambda cs: ArmaFilter(
        cs,
        stacks=stacks,
        layers=layers,
        shared_weights=shared_weights,
        activation_inner=activation_inner,  # type: ignore[arg-type]
        feedback=feedback,  # type: ignore[arg-type]
        solver=solver,  # type: ignore[arg-type]
    )
