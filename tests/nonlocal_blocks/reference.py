"""Independent dense reference formulas for every non-local kind (test-side only).

Written from the paper's Table 1 and the published code's semantics with plain einsum and
explicit N×N matrices, sharing nothing with snl_video's implementation except the
parameters read from a block. Inputs ``(B, C, N)``; affinities ``(B, N, N)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def conv_matrix(conv) -> Tensor:
    """A 1×1×1 conv's weight as a (C_out, C_in) matrix."""
    return conv.weight.reshape(conv.weight.shape[0], -1)


def project(conv, x: Tensor) -> Tensor:
    """Apply a (non-grouped) 1×1×1 conv to ``(B, C, N)``."""
    return torch.einsum("oc,bcn->bon", conv_matrix(conv), x)


def project_grouped(conv, x: Tensor, groups: int) -> Tensor:
    w = conv.weight.reshape(conv.weight.shape[0], -1)  # (C_out, C_in / groups)
    out_g, in_g = w.shape[0] // groups, w.shape[1]
    parts = [
        torch.einsum("oc,bcn->bon", w[g * out_g:(g + 1) * out_g], x[:, g * in_g:(g + 1) * in_g]) for g in range(groups)
    ]
    return torch.cat(parts, dim=1)


def snl_affinity(th: Tensor, ph: Tensor) -> Tensor:
    """Official SNL: M = relu(θ)ᵀrelu(φ), (M+Mᵀ)/2, d = row sums, d[d≠0] = 1/sqrt(d)."""
    m = torch.relu(th).transpose(1, 2) @ torch.relu(ph)
    m = (m + m.transpose(1, 2)) / 2
    d = m.sum(dim=2)
    inv = torch.zeros_like(d)
    inv[d != 0] = 1.0 / torch.sqrt(d[d != 0])
    return inv[:, :, None] * m * inv[:, None, :]


def softmax_rows(logits: Tensor) -> Tensor:
    e = torch.exp(logits - logits.max(dim=2, keepdim=True).values)
    return e / e.sum(dim=2, keepdim=True)


def nl_affinity(th: Tensor, ph: Tensor, scale: float = 1.0) -> Tensor:
    return softmax_rows(scale * th.transpose(1, 2) @ ph)


def nl_dot_affinity(th: Tensor, ph: Tensor) -> Tensor:
    return th.transpose(1, 2) @ ph / th.shape[2]


def a2_relu_affinity(th: Tensor, ph: Tensor) -> Tensor:
    return torch.relu(th).transpose(1, 2) @ torch.relu(ph)


def a2_softmax_affinity(th: Tensor, ph: Tensor) -> Tensor:
    # distribute: softmax over channels at each position; gather: softmax over positions.
    v = torch.exp(th) / torch.exp(th).sum(dim=1, keepdim=True)
    b = torch.exp(ph) / torch.exp(ph).sum(dim=2, keepdim=True)
    return v.transpose(1, 2) @ b


def criss_cross_mask(t: int, h: int, w: int) -> Tensor:
    """mask[i, j]: j shares at least two of (t, h, w) with i (its t-, h- or w-line)."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij"), dim=-1
    ).reshape(-1, 3)
    same = (coords[:, None, :] == coords[None, :, :]).sum(dim=-1)
    return same >= 2


def cc_affinity(th: Tensor, ph: Tensor, shape: tuple[int, int, int], scale: float = 1.0) -> Tensor:
    logits = scale * th.transpose(1, 2) @ ph
    logits = logits.masked_fill(~criss_cross_mask(*shape), float("-inf"))
    return softmax_rows(logits)


def dnl_affinity(th: Tensor, ph: Tensor, unary_logits: Tensor, scale: float, temperature: float) -> Tensor:
    thw = th - th.mean(dim=2, keepdim=True)
    phw = ph - ph.mean(dim=2, keepdim=True)
    pairwise = softmax_rows(scale / temperature * thw.transpose(1, 2) @ phw)
    u = torch.exp(unary_logits) / torch.exp(unary_logits).sum(dim=1, keepdim=True)  # (B, N)
    return pairwise + u[:, None, :].expand_as(pairwise)


def cgnl_apply(th: Tensor, ph: Tensor, z: Tensor, groups: int, order: int, gamma: float) -> Tensor:
    """CGNL with the Taylor-expanded Gaussian, as an explicit (N·C_g)² matrix per group.

    Returns ``A z`` in ``(B, C_s, N)`` layout. Node (i, c) ↔ index i·C_g + c in a group.
    """
    b, cs, n = th.shape
    cg = cs // groups
    beta = math.exp(-2 * gamma)
    outs = []
    for g in range(groups):
        sl = slice(g * cg, (g + 1) * cg)
        t = th[:, sl].transpose(1, 2).reshape(b, -1)  # (B, N·C_g), index i·C_g + c
        p = ph[:, sl].transpose(1, 2).reshape(b, -1)
        zz = z[:, sl].transpose(1, 2).reshape(b, -1)
        prod = t[:, :, None] * p[:, None, :]
        a = sum(beta * (2 * gamma * prod) ** k / math.factorial(k) for k in range(order + 1))
        out = (a @ zz[:, :, None]).squeeze(-1)
        outs.append(out.reshape(b, n, cg).transpose(1, 2))
    return torch.cat(outs, dim=1)


def batchnorm_eval(bn, u: Tensor) -> Tensor:
    shape = (1, -1, 1)
    return (u - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps) * bn.weight.view(
        shape
    ) + bn.bias.view(shape)


def groupnorm(gn, u: Tensor) -> Tensor:
    b, c, n = u.shape
    ug = u.reshape(b, gn.num_groups, -1)
    mean = ug.mean(dim=2, keepdim=True)
    var = ug.var(dim=2, unbiased=False, keepdim=True)
    normed = ((ug - mean) / torch.sqrt(var + gn.eps)).reshape(b, c, n)
    return normed * gn.weight.view(1, -1, 1) + gn.bias.view(1, -1, 1)


# --- Rational filters on the SNL affinity (Cayley, ARMA) and the released Cayley unit ---
# Node signals below are (B, N, C) and weights (C_out, C_in) matrices; everything dense.


def cayley_dense(a: Tensor, z: Tensor, zoom: float, w0: Tensor, w_re: list[Tensor], w_im: list[Tensor]) -> Tensor:
    """CayleyNets' filter, complex arithmetic and a dense complex solve:
    Z W0 + 2 Σ_j Re(Y_j) W_j_re − Im(Y_j) W_j_im, Y_j = (hL + iI)^-1 (hL − iI) Y_{j−1}."""
    n = a.shape[-1]
    lap = (torch.eye(n, dtype=a.dtype) - a).to(torch.complex128)
    eye = torch.eye(n, dtype=torch.complex128)
    plus, minus = zoom * lap + 1j * eye, zoom * lap - 1j * eye
    y = z.to(torch.complex128)
    out = z @ w0.T
    for wr, wi in zip(w_re, w_im):
        y = torch.linalg.solve(plus, minus @ y)
        out = out + 2 * (y.real.to(z.dtype) @ wr.T - y.imag.to(z.dtype) @ wi.T)
    return out


def cayley_order1_real(a: Tensor, z: Tensor, zoom: float, w0: Tensor, w_re: Tensor, w_im: Tensor) -> Tensor:
    """The order-1 Cayley filter in closed real form (research notes §5.2):
    G(L) = c0 I + 2 [Re(c1)(h²L² − I) + 2 Im(c1) hL] (h²L² + I)^-1, per channel pair."""
    n = a.shape[-1]
    eye = torch.eye(n, dtype=a.dtype)
    lap = eye - a
    l2 = lap @ lap
    inv = torch.linalg.inv(zoom**2 * l2 + eye)
    real_part = (zoom**2 * l2 - eye) @ inv  # Re of the Cayley transform
    imag_part = -2 * zoom * lap @ inv  # Im of it: 2 Re(c y) = 2(Re c Re y − Im c Im y)
    return z @ w0.T + 2 * ((real_part @ z) @ w_re.T - (imag_part @ z) @ w_im.T)


def cayley_official_dense(a: Tensor, z: Tensor, w1: Tensor, w2: Tensor, wh: Tensor) -> Tensor:
    """The released caylay.py: L = I − att; L_2 = bmm(L, L); out = w_1(g) + w_2(w_h(g) + L_2 g)."""
    lap = torch.eye(a.shape[-1], dtype=a.dtype) - a
    l2 = torch.bmm(lap, lap)
    return z @ w1.T + (z @ wh.T + l2 @ z) @ w2.T


def arma_recursion(a: Tensor, z: Tensor, feedback: list[list[Tensor]], skip: list[list[Tensor]], relu: bool) -> Tensor:
    """Bianchi et al.: X_k^{t+1} = σ(A X_k^t W_k^t + Z V_k^t), X^0 = Z; mean over stacks.
    ``feedback[k][t]`` is a (C, C) matrix or a (C,) diagonal."""
    outs = []
    for fb_k, sk_k in zip(feedback, skip):
        x = z
        for w, v in zip(fb_k, sk_k):
            ax = a @ x
            x = (ax @ w if w.dim() == 2 else ax * w) + z @ v
            if relu:
                x = torch.relu(x)
        outs.append(x)
    return sum(outs) / len(outs)


def arma_fixed_point(a: Tensor, z: Tensor, w: Tensor, v: Tensor) -> Tensor:
    """Linear ARMA fixed point per stack k and channel c: (I − w_kc A)^-1 (Z V_k)_c, mean over k.
    ``w`` (K, C) diagonal feedback, ``v`` (K, C, C)."""
    n = a.shape[-1]
    eye = torch.eye(n, dtype=a.dtype)
    outs = []
    for k in range(w.shape[0]):
        zv = z @ v[k]
        cols = [torch.linalg.solve(eye - w[k, c] * a, zv[..., c:c + 1]) for c in range(w.shape[1])]
        outs.append(torch.cat(cols, dim=-1))
    return sum(outs) / len(outs)


# -- a block's forward pass from these formulas, reading its parameters ---------------------------

def randomise(block: torch.nn.Module) -> torch.nn.Module:
    """Move a block off the identity (its output norm starts at zero): random norm affine
    parameters and BN statistics, eval mode."""
    g = torch.Generator().manual_seed(1)
    norm = block.out_norm
    with torch.no_grad():
        norm.weight.copy_(torch.rand(norm.weight.shape, generator=g, dtype=norm.weight.dtype) + 0.5)
        norm.bias.copy_(torch.randn(norm.bias.shape, generator=g, dtype=norm.bias.dtype) * 0.1)
        if isinstance(norm, torch.nn.BatchNorm3d):
            norm.running_mean.copy_(torch.randn(norm.running_mean.shape, generator=g, dtype=norm.running_mean.dtype))
            norm.running_var.copy_(torch.rand(norm.running_var.shape, generator=g, dtype=norm.running_var.dtype) + 0.5)
    return block.eval()


def mat(conv) -> torch.Tensor:
    return conv_matrix(conv)


def filter_output(block, x: torch.Tensor) -> torch.Tensor:
    """The block's pre-norm filter output ``u`` as ``(B, C, N)``, from the formulas."""
    kind, opts = block.kind, block.options
    b, c = x.shape[:2]
    xf = x.reshape(b, c, -1)
    th, ph, z = project(block.theta, xf), project(block.phi, xf), project(block.g, xf)
    cs = th.shape[1]
    if kind == "snl_a2" or (kind == "gsnl" and opts.get("affinity", "softmax") == "softmax"):
        a = nl_affinity(th, ph, cs**-0.5 if opts.get("scale") else 1.0)
    else:
        a = snl_affinity(th, ph)
    zn = z.transpose(1, 2)  # (B, N, C_s)
    eye = torch.eye(a.shape[-1], dtype=a.dtype)
    if kind == "snl_a1":
        u = (a @ zn) @ mat(block.w2).T
    elif kind == "snl_a2":
        u = zn @ mat(block.w1).T + (a @ zn) @ mat(block.w2).T
    elif kind == "gsnl":
        u = zn @ mat(block.w1).T + (a @ zn) @ mat(block.w2).T + ((2 * a - eye) @ zn) @ mat(block.w3).T
    else:
        flt = opts.get("filter", "chebyshev")
        if flt == "chebyshev":
            u, az = zn @ mat(block.w1).T, zn
            for k in range(1, opts.get("order", 1) + 1):
                az = a @ az
                u = u + az @ mat(getattr(block, f"w{k + 1}")).T
        elif flt == "cayley":
            order = opts.get("order", 1)
            zoom = torch.nn.functional.softplus(block.filter.raw_zoom).item()
            w_re = [mat(getattr(block, f"w{j}_re")) for j in range(1, order + 1)]
            w_im = [mat(getattr(block, f"w{j}_im")) for j in range(1, order + 1)]
            u = cayley_dense(a, zn, zoom, mat(block.w0), w_re, w_im)
        elif flt == "cayley_official":
            u = cayley_official_dense(a, zn, mat(block.w1), mat(block.w2), mat(block.filter.w_h))
        elif flt == "arma":
            fb, sk = block.filter.feedback, block.filter.skip
            if opts.get("feedback") == "diagonal":
                fb = torch.tanh(fb)
            if opts.get("solver") == "exact":
                s = arma_fixed_point(a, zn, fb[:, 0], sk[:, 0])
            else:
                layers = opts.get("layers", 1)
                pick = (lambda t: 0) if fb.shape[1] == 1 else (lambda t: t)
                feedback = [[fb[k, pick(t)] for t in range(layers)] for k in range(fb.shape[0])]
                skip = [[sk[k, pick(t)] for t in range(layers)] for k in range(sk.shape[0])]
                s = arma_recursion(a, zn, feedback, skip, relu=opts.get("activation_inner", "relu") == "relu")
            u = s @ mat(block.w_out).T
        else:  # pragma: no cover
            raise AssertionError(flt)
    return u.transpose(1, 2)


def formula_forward(block, x: torch.Tensor) -> torch.Tensor:
    u = batchnorm_eval(block.bn, filter_output(block, x))
    if block.activation == "relu":
        u = torch.relu(u)
    return x + u.reshape(x.shape)


def input_with_isolated_nodes(dtype: torch.dtype, channels: int = 16) -> Tensor:
    """A ``(2, channels, 3, 5, 4)`` map where two positions have zero features, hence zero
    degree in the graph."""
    x = torch.randn(2, channels, 3, 5, 4, dtype=dtype)
    x[:, :, 0, 0, 0] = 0
    x[1, :, 2, 4, 3] = 0
    return x


def grads(block, x: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """The block's output, the input's gradient and every parameter's gradient under a loss
    that weighs each output element differently."""
    x = x.clone().requires_grad_(True)
    out = block(x)
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)).sum()
    loss.backward()
    return out.detach(), x.grad, {n: p.grad.clone() for n, p in block.named_parameters()}


def assert_relatively_close(a: Tensor, b: Tensor, rel: float, what: str) -> None:
    """``max |a - b| <= rel * max |b|``: agreement relative to the reference's scale (a tiny
    floor keeps an all-zero reference from dividing by zero)."""
    err = (a - b).abs().max().item()
    scale = b.abs().max().item()
    assert err <= rel * max(scale, 1e-30), f"{what}: max |diff| {err:.3e} vs scale {scale:.3e}"
