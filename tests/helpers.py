"""Helpers shared by several test packages (not fixtures: plain functions)."""

from __future__ import annotations

import torch
from torch import nn


def randomize_batchnorm(model: nn.Module, *, seed: int = 0) -> None:
    """Give every BatchNorm random affine parameters and running statistics, so an eval-mode
    parity test also checks that each norm sits where the reference puts it."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)


def bn_on_running_statistics(model: nn.Module) -> None:
    """Keep every BatchNorm in eval mode (running statistics) while the rest trains.

    Batch statistics over the tiny test model's last 1x2x2 maps divide by variances near zero,
    which turns float32 rounding into percent-size gradient differences between any two
    summation orders (another memory layout, checkpointed recomputation, another CPU's
    kernels). With running statistics the network is well conditioned, so two runs that differ
    only in summation order stay within a bound derived from float32 precision on any machine.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            module.train = lambda mode=True, m=module: m  # model.train() leaves it in eval mode


#: Bound on ``max|a − b| / max|a|`` for two float32 trainings that differ only in the order of
#: their sums: ~800 float32 epsilons (1.19e-7), room for a few epochs of a well-conditioned
#: tiny model on any CPU's kernels, while a real bug (mixed-up channels, a lost gradient
#: term) moves a tensor by a sizeable fraction of its own scale.
SUMMATION_ORDER_BOUND = 1e-4


def assert_same_up_to_summation_order(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Every floating tensor of ``a`` equals ``b``'s within :data:`SUMMATION_ORDER_BOUND` of its scale."""
    assert a.keys() == b.keys()
    for key in a:
        if not a[key].is_floating_point():
            assert torch.equal(a[key], b[key]), key
            continue
        scale = a[key].abs().max().item()
        diff = (a[key].double() - b[key].double()).abs().max().item()
        assert diff <= SUMMATION_ORDER_BOUND * scale + 1e-12, (key, diff, scale)
