"""Faults a run must survive, injected for real through the `zrenie` entry point."""

import signal
import subprocess
import sys
import time

import torch
from PIL import Image

TINY = ["data=digits", "data.batch_size=16", "model.width=8", "progress=false", "tensorboard=false"]


def test_sigterm_saves_at_a_step_and_exits_143_with_the_resume_command(tmp_path):
    """What a scheduler sends before preemption: the step finishes, last.pt is saved at that batch."""
    out = tmp_path / "term"
    proc = subprocess.Popen([sys.executable, "-m", "zrenie", "classify", "train", *TINY, "epochs=200", f"out={out}"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "metrics.csv").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("terminated (SIGTERM) at") and f"`zrenie classify train resume={out}`" in lines[-1]
    assert "Traceback" not in stderr
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] >= 1
    done = subprocess.run([sys.executable, "-m", "zrenie", "classify", "train", f"resume={out}",
                           f"epochs={state['epoch'] + 1}", "progress=false"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_predict_into_a_closed_pipe_exits_quietly(tmp_path):
    """`zrenie classify predict RUN IMG --json - | head -c 1`: the reader leaves early; no traceback."""
    run = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "zrenie", "classify", "train", *TINY, "epochs=1", "report=false",
                    f"out={run}"], check=True, capture_output=True)
    for i in range(400):  # JSON well over a pipe buffer (64 KiB), so the write meets the closed pipe
        Image.new("L", (8, 8), i % 256).save(tmp_path / f"{i}.png")
    images = [str(tmp_path / f"{i}.png") for i in range(400)]
    pipe = subprocess.run(f"{sys.executable} -m zrenie classify predict {run} {' '.join(images)} --json - | head -c 1",
                          shell=True, capture_output=True, text=True)
    assert "Traceback" not in pipe.stderr and "BrokenPipe" not in pipe.stderr, pipe.stderr
