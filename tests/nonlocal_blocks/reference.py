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
