"""Exponential moving average of model weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEma:
    """Keeps `shadow = decay * shadow + (1 - decay) * weights` after each optimizer step.

    The effective decay ramps up as min(decay, (1 + n) / (10 + n)) so that early, random weights
    are forgotten quickly (the schedule TensorFlow's ExponentialMovingAverage uses with num_updates).
    Buffers (batchnorm statistics) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = copy.deepcopy(model).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for e, p in zip(self.shadow.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in zip(self.shadow.buffers(), model.buffers()):
            e.copy_(b)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "weights": self.shadow.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.shadow.load_state_dict(state["weights"])
