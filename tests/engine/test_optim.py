import math

import pytest
import torch
from torch import nn

from zrenie.config import OptimConfig
from zrenie.engine.optim import build_optimizer, build_scheduler, param_groups


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LayerNorm(4 * 4 * 4),
                         nn.Linear(64, 2))


def test_no_weight_decay_on_norm_and_bias():
    net = _net()
    decay, no_decay = param_groups(net, 0.1)
    assert {id(p) for p in decay["params"]} == {id(net[0].weight), id(net[4].weight)}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert len(no_decay["params"]) == 6  # conv bias, bn w/b, ln w/b, linear bias


def test_optimizer_kinds():
    sgd = build_optimizer(_net(), OptimConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"]
    assert isinstance(build_optimizer(_net(), OptimConfig(name="adamw", lr=1e-3)), torch.optim.AdamW)


def _lrs(cfg, epochs, steps):
    opt = build_optimizer(_net(), cfg)
    sched = build_scheduler(opt, cfg, epochs, steps)
    out = []
    for _ in range(epochs * steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_cosine_without_warmup_matches_torch_cosine_annealing():
    cfg = OptimConfig(lr=0.1, schedule="cosine")
    ours = _lrs(cfg, 3, 10)
    opt = torch.optim.SGD(_net().parameters(), lr=0.1)
    ref_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30)
    ref = []
    for _ in range(30):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        ref_sched.step()
    assert ours == pytest.approx(ref, abs=1e-12)


def test_step_schedule_matches_torch_step_lr():
    cfg = OptimConfig(lr=0.1, schedule="step", step_epochs=2, gamma=0.5)
    ours = _lrs(cfg, 6, 4)
    assert ours[::4] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_onecycle_warms_up_peaks_and_anneals_to_zero():
    lrs = _lrs(OptimConfig(lr=0.2, schedule="onecycle"), 4, 25)
    peak = lrs.index(max(lrs))
    assert peak == 25 and max(lrs) == pytest.approx(0.2)
    assert lrs[0] < 0.01 and lrs[-1] < 1e-3
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))
    assert not any(math.isnan(v) for v in lrs)
