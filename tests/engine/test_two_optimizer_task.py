"""A throwaway GAN-shaped task with two optimisers, defined here and nowhere else.

It trains through the API and the CLI (whose parser comes from the task registry), with AMP and
`optim.accumulate=2`, resumes after SIGKILL to bit-identical weights, and trains under a 2-process
DDP run whose ranks end with identical weights. Run as a script, this file is the `zrenie` CLI with
the task registered, which is how the subprocess tests reach it.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zrenie.config import DataConfig
from zrenie.data.catalog import open_splits
from zrenie.engine.step_context import OptimizerSlot, StepContext
from zrenie.registry import MODELS
from zrenie.report.result import Result
from zrenie.tasks import Task, register_task

NOISE = 8


@MODELS.register("toygan_generator", tags=("toygan",))
def toygan_generator(pixels: int = 64) -> nn.Module:
    return nn.Sequential(nn.Linear(NOISE, 32), nn.ReLU(), nn.Linear(32, pixels))


@MODELS.register("toygan_discriminator", tags=("toygan",))
def toygan_discriminator(pixels: int = 64) -> nn.Module:
    return nn.Sequential(nn.Linear(pixels, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))


class RealnessResult(Result):
    def __init__(self, source: str, score: float):
        self.source, self.score = source, score

    def to_dict(self):
        return {"image": self.source, "realness": self.score}


class SpreadMetric:
    """D's accuracy on real vs generated images, and how far the ranks' weights are apart (0 under DDP)."""

    names = ["d_acc", "rank_weight_spread"]

    def __init__(self):
        import torch.distributed as tdist

        self.rank = tdist.get_rank() if tdist.is_initialized() else 0
        world = tdist.get_world_size() if tdist.is_initialized() else 1
        self.state = {"correct": torch.zeros((), dtype=torch.float64), "count": torch.zeros((), dtype=torch.float64),
                      "checksum": torch.zeros(world, dtype=torch.float64)}

    def update(self, out: dict, batch) -> None:
        self.state["correct"] += out["correct"]
        self.state["count"] += out["count"]
        self.state["checksum"][self.rank] = out["checksum"]  # this rank's weights, in its own slot

    def compute(self) -> dict[str, float]:
        c = self.state["checksum"]
        return {"d_acc": (self.state["correct"] / self.state["count"].clamp_min(1)).item(),
                "rank_weight_spread": (c.max() - c.min()).item()}


class ToyGanStep:
    def __init__(self, kill_at: tuple[int, ...] | None, nan_at: tuple[int, ...] | None):
        self.kill_at, self.nan_at = kill_at, nan_at

    def train_step(self, models: dict[str, nn.Module], batch, ctx: StepContext) -> dict:
        if self.kill_at == (ctx.epoch, ctx.batch):
            os.kill(os.getpid(), signal.SIGKILL)  # preemption without warning, mid-epoch
        real = batch["image"].flatten(1)  # (B, 64)
        G, D = models["G"], models["D"]
        fake = G(torch.randn(len(real), NOISE, device=real.device))
        ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
        d_loss = (F.binary_cross_entropy_with_logits(D(real).float(), ones)
                  + F.binary_cross_entropy_with_logits(D(fake.detach()).float(), zeros))
        if self.nan_at == (int(os.environ.get("RANK", "0")), ctx.epoch, ctx.batch):
            d_loss = d_loss * float("nan")  # one process only
        ctx.backward(d_loss, "D")
        ctx.step("D")
        g_loss = F.binary_cross_entropy_with_logits(D(fake).float(), ones)
        ctx.backward(g_loss, "G")  # inputs= G's parameters: D's gradients stay as ctx.step("D") left them
        ctx.step("G")
        return {"logs": {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}}

    def eval_step(self, models: dict[str, nn.Module], batch) -> dict:
        real = batch["image"].flatten(1)
        fake = models["G"](torch.randn(len(real), NOISE, device=real.device, generator=torch.Generator().manual_seed(0)))
        correct = (models["D"](real) > 0).sum() + (models["D"](fake) <= 0).sum()
        checksum = sum(p.double().sum() for m in models.values() for p in m.parameters())
        return {"correct": correct.double(), "count": torch.tensor(2.0 * len(real), dtype=torch.float64),
                "checksum": checksum}

    def new_metric(self) -> SpreadMetric:
        return SpreadMetric()


@register_task
class ToyGanTask(Task):
    name = "toygan"
    monitor = ("none", "max")
    optimizers = {"G": ("G",), "D": ("D",)}
    defaults = {"optim.name": "adamw", "optim.lr": 2e-3, "optim.schedule": "constant", "optim.weight_decay": 0.0,
                "data.augment": "none", "data.batch_size": 64}

    def build_data(self, cfg):
        return open_splits(cfg.data)

    def metric_names(self, cfg, preprocess):
        return SpreadMetric.names

    def model_specs(self, cfg, preprocess):
        pixels = preprocess["image_size"] ** 2 * preprocess["in_channels"]
        return {"G": ("toygan_generator", {"pixels": pixels}), "D": ("toygan_discriminator", {"pixels": pixels})}

    def build_step(self, cfg, preprocess, splits=None):
        kill, nan = os.environ.get("TOYGAN_SIGKILL_AT"), os.environ.get("TOYGAN_NAN_AT")
        return ToyGanStep(tuple(int(v) for v in kill.split(",")) if kill else None,
                          tuple(int(v) for v in nan.split(",")) if nan else None)

    def test(self, models, splits, cfg, device, split="test"):
        return {"metrics": {"params": float(sum(p.numel() for m in models.values() for p in m.parameters()))}}

    def predict(self, handle, images, names):
        scores = [float(handle.models["D"](im.flatten()[None])) for im in images]
        return [RealnessResult(n, s) for n, s in zip(names, scores)]


# ---- tests ------------------------------------------------------------------------------------------

BASE = {"data": "digits", "epochs": 3, "optim.accumulate": 2, "amp": "bf16", "optim.D.lr": 4e-3,
        "optim.D.betas": [0.5, 0.999], "progress": False, "tensorboard": False, "report": False, "seed": 0,
        "deterministic": True}


def steps_per_epoch(batch_size: int = 64, accumulate: int = 2) -> int:
    """Optimiser steps in one epoch: whole batches of the training split (drop_last), `accumulate` per step,
    and a last, shorter window at the end of the epoch."""
    batches = len(open_splits(DataConfig(name="digits")).train) // batch_size
    return -(-batches // accumulate)


def _weights(run_dir: Path, name: str) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "last.pt", weights_only=True)["models"][name]["state"]


def _script(*args: str, extra_env: dict | None = None, torchrun: int = 0) -> subprocess.CompletedProcess:
    from launch import run_script  # tests/ is on the path under pytest; this file also runs as a script

    return run_script(__file__, "toygan", "train", *args, extra_env=extra_env, processes=torchrun, timeout=180)


def _cli_args(overrides: dict, out: Path) -> list[str]:
    """key=value arguments as a user would type them (lists in YAML flow style)."""
    text = {k: "[" + ",".join(map(str, v)) + "]" if isinstance(v, list) else str(v) for k, v in overrides.items()}
    return [f"{k}={v}" for k, v in text.items()] + [f"out={out}"]


def test_api_trains_both_optimisers_with_their_own_settings(tmp_path):
    import zrenie

    result = zrenie.train("toygan", **BASE, out=str(tmp_path / "api"))
    state = torch.load(tmp_path / "api" / "last.pt", weights_only=True)
    assert set(state["models"]) == set(state["optimizers"]) == set(state["scalers"]) == {"G", "D"}
    # Accumulation: one optimiser step per two micro-batches, counted per optimiser.
    for name in ("G", "D"):
        steps = {int(s["step"]) for s in state["optimizers"][name]["state"].values()}
        assert steps == {3 * steps_per_epoch()}
    groups = {n: state["optimizers"][n]["param_groups"][0] for n in ("G", "D")}
    assert groups["D"]["lr"] == 4e-3 and groups["D"]["betas"] == (0.5, 0.999)
    assert groups["G"]["lr"] == 2e-3 and groups["G"]["betas"] == (0.9, 0.999)
    with open(tmp_path / "api" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert {"train/d_loss", "train/g_loss", "val/d_acc"} <= set(rows[0])
    assert (tmp_path / "api" / "best.pt").is_file()  # monitor none: best is the last epoch
    assert result["test"]["params"] > 0


def test_cli_reaches_a_task_defined_in_a_test(tmp_path, capsys):
    from zrenie.cli import main

    out = tmp_path / "cli"
    assert main(["toygan", "train", *_cli_args({**BASE, "epochs": 1}, out)]) == 0
    assert main(["toygan", "export", str(out)]) == 0
    from safetensors.torch import load_file

    keys = load_file(out / "model.safetensors").keys()
    assert {k.split(".")[0] for k in keys} == {"G", "D"}
    from PIL import Image

    Image.new("L", (8, 8), 200).save(tmp_path / "digit.png")
    capsys.readouterr()
    assert main(["toygan", "predict", str(out), str(tmp_path / "digit.png")]) == 0
    assert "realness" in capsys.readouterr().out


def test_sigkill_mid_epoch_resumes_to_identical_weights(tmp_path):
    args = {**BASE, "epochs": 4}
    reference = _script(*_cli_args(args, tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr[-2000:]
    killed = _script(*_cli_args(args, tmp_path / "cut"), extra_env={"TOYGAN_SIGKILL_AT": "2,5"})
    assert killed.returncode == -signal.SIGKILL
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["epoch"] == 2
    resumed = _script(f"resume={tmp_path / 'cut'}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for name in ("G", "D"):
        ref, cut = _weights(tmp_path / "ref", name), _weights(tmp_path / "cut", name)
        assert all(torch.equal(ref[k], cut[k]) for k in ref), name


def test_two_process_ddp_keeps_ranks_identical(tmp_path):
    out = tmp_path / "ddp"
    proc = _script(*_cli_args({**BASE, "epochs": 2, "data.batch_size": 32}, out), torchrun=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # Each rank draws its own noise and data shard; equal weights mean the gradients were all-reduced.
    assert float(rows[-1]["val/rank_weight_spread"]) == 0.0


def test_a_nan_on_one_process_stops_every_process(tmp_path):
    """The non-finite flag is all-reduced where it is read, so rank 0 stops too instead of waiting for rank 1
    in the next collective; the last good checkpoint (epoch 1) is kept."""
    out = tmp_path / "nan"
    proc = _script(*_cli_args({**BASE, "epochs": 3, "data.batch_size": 32}, out), torchrun=2,
                   extra_env={"TOYGAN_NAN_AT": "1,1,3"})
    assert proc.returncode != 0
    assert proc.stderr.count("error: loss became nan") == 2, proc.stderr[-3000:]
    assert "epoch 2, batch 4" in proc.stderr
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 1


def _slots(fp16: bool) -> dict[str, OptimizerSlot]:
    from zrenie.config import OptimConfig

    torch.manual_seed(0)
    models = {"G": nn.Linear(3, 3), "D": nn.Linear(3, 1)}
    cfg = OptimConfig(name="sgd", lr=0.1, momentum=0.0, weight_decay=0.0, schedule="constant")
    return {n: OptimizerSlot(n, {n: models[n]}, cfg, 1, 4, torch.device("cpu"), fp16) for n in models}


@pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)` before:UserWarning")
def test_an_overflow_in_one_optimiser_leaves_the_other_loss_scale_alone():
    slots = _slots(fp16=True)
    ctx = StepContext(slots, "cpu", 1, 4, 1, torch.device("cpu"))
    ctx.begin(0, 0)
    g, d = slots["G"].models["G"], slots["D"].models["D"]
    g_before, d_before = g.weight.detach().clone(), d.weight.detach().clone()
    x = torch.randn(4, 3)
    ctx.backward(d(x).sum() * 1e38, "D")  # scaled by 65536 this overflows: D's step is skipped
    ctx.step("D")
    ctx.backward(g(x).pow(2).mean(), "G")
    ctx.step("G")
    assert slots["D"].scaler.get_scale() == 2.0 ** 15 and slots["G"].scaler.get_scale() == 2.0 ** 16
    assert torch.equal(d.weight, d_before) and not torch.equal(g.weight, g_before)


def test_backward_reaches_only_the_named_optimisers_parameters():
    slots = _slots(fp16=False)
    ctx = StepContext(slots, "cpu", 2, 4, 1, torch.device("cpu"))
    g, d = slots["G"].models["G"], slots["D"].models["D"]
    ctx.begin(0, 0)  # first micro-batch of two: no step yet
    ctx.backward(d(g(torch.randn(4, 3))).mean(), "G")
    assert d.weight.grad is None and g.weight.grad is not None
    assert ctx.step("G") is False and g.weight.grad is not None  # accumulating
    ctx.begin(0, 1)
    ctx.backward(d(g(torch.randn(4, 3))).mean(), "G")
    assert ctx.step("G") is True and g.weight.grad is None  # stepped and cleared


def test_two_accumulated_halves_step_like_one_whole_batch():
    """accumulate=2 over two halves of a batch gives the weights of one step on the whole batch."""
    x, y = torch.randn(8, 3), torch.randn(8, 3)
    weights = []
    for accumulate, chunks in ((1, 1), (2, 2)):
        slots = _slots(fp16=False)
        ctx = StepContext(slots, "cpu", accumulate, 4, 1, torch.device("cpu"))
        g = slots["G"].models["G"]
        for i, (xs, ys) in enumerate(zip(x.chunk(chunks), y.chunk(chunks))):
            ctx.begin(0, i)
            ctx.backward(F.mse_loss(g(xs), ys), "G")
            ctx.step("G")
        weights.append(g.weight.detach().clone())
    assert torch.allclose(weights[0], weights[1], atol=1e-7)


def test_a_step_that_forgets_ctx_with_two_optimisers_is_an_error(tmp_path):
    import zrenie
    from zrenie.errors import ConfigError

    original = ToyGanStep.train_step
    ToyGanStep.train_step = lambda self, models, batch, ctx: {"loss": models["D"](batch["image"].flatten(1)).mean()}
    try:
        with pytest.raises(ConfigError, match="must call ctx.backward"):
            zrenie.train("toygan", **{**BASE, "epochs": 1}, out=str(tmp_path / "bad"))
    finally:
        ToyGanStep.train_step = original


if __name__ == "__main__":
    from zrenie.cli import main

    torch.set_num_threads(1)
    sys.exit(main())
