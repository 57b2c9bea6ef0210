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
