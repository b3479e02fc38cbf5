"""Helpers shared by parity tests in several folders (tests/ is on sys.path through its conftest)."""

import torch
from torch import nn


def randomize_batchnorm(model: nn.Module) -> nn.Module:
    """Random BN scales, shifts and running statistics, so that a swapped BN cannot go unnoticed."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model
