"""Tiny fixtures shared by the tests: small runs on the built-in digits that take about a second."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture
def tiny(tmp_path):
    """Overrides for a seconds-long classification run on 8x8 digits."""

    def make(name: str = "run", **extra):
        cfg = {"data": "digits", "data.batch_size": 64, "model.width": 8, "epochs": 2, "optim.lr": 0.05,
               "out": str(tmp_path / name), "progress": False, "tensorboard": False, "report": False,
               "seed": 0, "deterministic": True}
        cfg.update(extra)
        return cfg

    return make
