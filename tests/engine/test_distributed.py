"""DDP with two CPU processes (gloo), launched by torchrun as a user would."""

import csv
import os
import subprocess

import pytest
import torch

import zrenie
from zrenie.engine import distributed as dist

from launch import terminate_mid_run, torchrun


def test_all_reduce_is_identity_without_a_process_group():
    state = {"a": torch.tensor([1.0, 2.0])}
    assert dist.all_reduce_sum(state)["a"].tolist() == [1.0, 2.0]
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)


@pytest.mark.parametrize("accumulate", [1, 2], ids=["step-every-batch", "accumulate-2-under-no_sync"])
def test_two_process_ddp_training(tmp_path, accumulate):
    out = tmp_path / "ddp"
    cmd = [*torchrun(2), "-m", "zrenie", "classify", "train", "data=digits", "data.batch_size=32", "model.width=8", "epochs=2",
           "optim.lr=0.05", "progress=false", "tensorboard=false", f"optim.accumulate={accumulate}", f"out={out}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Only rank 0 logs: one line per epoch, one test line.
    assert proc.stderr.count("epoch 1/2") == 1 and proc.stderr.count("test: ") == 1
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # The all-reduced validation metrics equal a single-process evaluation of the same weights
    # (the val split is sharded without padding, so every sample counts exactly once).
    single = zrenie.evaluate(out / "last.pt", split="val")
    assert float(rows[-1]["val/acc1"]) == pytest.approx(single["metrics"]["acc1"], abs=1e-6)
    assert float(rows[-1]["val/loss"]) == pytest.approx(single["metrics"]["loss"], rel=1e-4)
    assert (out / "report.html").is_file()


def test_sigterm_under_torchrun_stops_every_process_after_the_same_step(tmp_path):
    """torchrun forwards SIGTERM to each worker at a slightly different moment; they agree on one step to stop at."""
    out = tmp_path / "term"
    cmd = [*torchrun(2), "-m", "zrenie", "classify", "train", "data=digits", "data.batch_size=16", "model.width=8",
           "epochs=200", "log_every=4", "progress=false", "tensorboard=false", "report=false", f"out={out}"]
    _, stderr = terminate_mid_run(cmd, out, env={**os.environ, "OMP_NUM_THREADS": "1"})
    stops = [line for line in stderr.splitlines() if line.startswith("terminated (SIGTERM) at")]
    assert len(stops) == 2 and stops[0] == stops[1], stderr[-3000:]  # both processes, the same epoch and batch
    state = torch.load(out / "last.pt", weights_only=True)
    assert f"at epoch {state['epoch'] + 1}, batch {state['batch']}" in stops[0] or \
        f"the end of epoch {state['epoch']}" in stops[0], (stops[0], state["epoch"], state.get("batch"))
