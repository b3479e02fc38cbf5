"""Faults a run must survive, injected for real through the `zrenie` entry point."""

import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import zrenie

from launch import terminate_mid_run

TINY = ["data=digits", "data.batch_size=16", "model.width=8", "progress=false", "tensorboard=false"]


def test_sigterm_saves_at_a_step_and_exits_143_with_the_resume_command(tmp_path):
    """What a scheduler sends before preemption: the step finishes, last.pt is saved at that batch."""
    out = tmp_path / "term"
    code, stderr = terminate_mid_run([sys.executable, "-m", "zrenie", "classify", "train", *TINY, "epochs=200",
                                      f"out={out}"], out)
    assert code == 143, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("terminated (SIGTERM) at") and f"`zrenie classify train resume={out}`" in lines[-1]
    assert "Traceback" not in stderr
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] >= 1
    done = subprocess.run([sys.executable, "-m", "zrenie", "classify", "train", f"resume={out}",
                           f"epochs={state['epoch'] + 1}", "progress=false"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_predict_into_a_closed_pipe_exits_quietly(tmp_path, copy_run):
    """`zrenie classify predict RUN IMG --json - | head -c 1`: the reader leaves early; no traceback."""
    run = copy_run()
    for i in range(400):  # JSON well over a pipe buffer (64 KiB), so the write meets the closed pipe
        Image.new("L", (8, 8), i % 256).save(tmp_path / f"{i}.png")
    images = [str(tmp_path / f"{i}.png") for i in range(400)]
    pipe = subprocess.run(f"{sys.executable} -m zrenie classify predict {run} {' '.join(images)} --json - | head -c 1",
                          shell=True, capture_output=True, text=True)
    assert "Traceback" not in pipe.stderr and "BrokenPipe" not in pipe.stderr, pipe.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished one-epoch run (trained in this process: a child's start-up costs seconds), copied per test."""
    out = tmp_path_factory.mktemp("trained") / "run"
    zrenie.train("classify", data="digits", epochs=1, report=False, progress=False, tensorboard=False, out=str(out),
                 **{"data.batch_size": 16, "model.width": 8})
    return out


@pytest.fixture
def copy_run(trained, tmp_path):
    """A fresh copy of the trained run under `tmp_path / name` (a resume continues in the copy's folder)."""

    def make(name="run"):
        return Path(shutil.copytree(trained, tmp_path / name))

    return make


def _flip_a_bit_inside_a_tensor(path):
    """One bit of the largest tensor's bytes (found through the zip's local header), the file stays loadable."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.compress_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + info.compress_size // 2] ^= 0x04
    path.write_bytes(bytes(data))


def _one_line(proc, words):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and words in lines[0], proc.stderr


def _zrenie(*args):
    return subprocess.run([sys.executable, "-m", "zrenie", *args], capture_output=True, text=True)


def test_bad_checkpoint_files_are_told_apart_in_one_line(tmp_path, copy_run):
    run = copy_run()
    empty, noise, foreign = tmp_path / "empty.pt", tmp_path / "noise.pt", tmp_path / "foreign.pt"
    empty.write_bytes(b"")
    noise.write_bytes(bytes(range(256)) * 8)
    torch.save({"weights": torch.zeros(3)}, foreign)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((run / "best.pt").read_bytes()[:5000])
    _one_line(_zrenie("classify", "eval", str(empty)), "corrupt or truncated (an empty file)")
    _one_line(_zrenie("classify", "eval", str(noise)), "not a PyTorch checkpoint, or corrupt")
    _one_line(_zrenie("classify", "eval", str(foreign)), "not a zrenie checkpoint")
    _one_line(_zrenie("classify", "eval", str(truncated)), "corrupt or truncated")


def test_a_flipped_bit_in_best_pt_is_corrupt_and_last_pt_stands_in(tmp_path, copy_run):
    """torch.load does not check the archive's checksums; a flipped bit would have evaluated silently."""
    run = copy_run()
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes((run / "best.pt").read_bytes())
    _flip_a_bit_inside_a_tensor(flipped)
    _one_line(_zrenie("classify", "eval", str(flipped)), "do not match their stored checksum")
    _flip_a_bit_inside_a_tensor(run / "best.pt")
    proc = _zrenie("classify", "eval", str(run))
    assert proc.returncode == 0 and "using last.pt (epoch 1) instead" in proc.stderr, proc.stderr


def test_resume_falls_back_to_best_pt_when_last_pt_is_truncated(copy_run):
    run = copy_run()
    (run / "last.pt").write_bytes((run / "last.pt").read_bytes()[:3000])
    proc = _zrenie("classify", "train", f"resume={run}", "epochs=2", "progress=false")
    assert proc.returncode == 0 and "using best.pt (epoch 1) instead" in proc.stderr, proc.stderr
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 2


def test_a_second_run_into_a_running_runs_folder_is_refused_naming_it(tmp_path):
    """Two runs into one out= used to interleave their files; the first holds a lock the kernel drops when it
    dies, so after kill -9 the folder can be resumed."""
    out = tmp_path / "busy"
    first = subprocess.Popen([sys.executable, "-m", "zrenie", "classify", "train", *TINY, "epochs=200", f"out={out}"],
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "last.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        first.send_signal(signal.SIGSTOP)  # holds its lock without taking the CPU from the commands below
        before = (out / "config.yaml").read_bytes()
        for args in ([*TINY, "epochs=2", f"out={out}", "overwrite=true"], [f"resume={out}", "epochs=300"]):
            _one_line(_zrenie("classify", "train", *args), f"is in use by process {first.pid}")
        assert (out / "config.yaml").read_bytes() == before
    finally:
        first.kill()  # SIGKILL: no cleanup runs, the kernel drops the lock
        first.wait()
    epoch = torch.load(out / "last.pt", weights_only=True)["epoch"]
    done = _zrenie("classify", "train", f"resume={out}", f"epochs={epoch + 1}", "progress=false", "report=false")
    assert done.returncode == 0, done.stderr


def test_damaged_run_files_are_one_line_before_any_work(copy_run):
    run = copy_run()
    (run / "metrics.csv").write_bytes(b"\x00\xff garbage, not a table\n1,2,3\n")
    _one_line(_zrenie("classify", "train", f"resume={run}", "epochs=2"), "metrics.csv: not a metrics table")
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1  # nothing was trained
    other = copy_run("other")
    (other / "config.yaml").write_text("model: [unclosed")
    _one_line(_zrenie("compare", str(other)), "config.yaml: not a run's config")
    third = copy_run("third")
    (third / "results.json").write_text("{broken")
    _one_line(_zrenie("compare", str(third)), "results.json: not a results file")


def test_a_decompression_bomb_is_one_line_with_the_limit_and_how_to_raise_it(tmp_path, copy_run):
    import os

    run = copy_run()
    Image.new("L", (64, 64), 100).save(tmp_path / "big.png")  # over a lowered limit of 1,000 pixels
    env = {**os.environ, "ZRENIE_MAX_IMAGE_PIXELS": "1000"}
    proc = subprocess.run([sys.executable, "-m", "zrenie", "classify", "predict", str(run), str(tmp_path / "big.png")],
                          capture_output=True, text=True, env=env)
    _one_line(proc, "refused as a possible decompression bomb; if you trust it, raise the limit with "
                    "ZRENIE_MAX_IMAGE_PIXELS=N")
    env["ZRENIE_MAX_IMAGE_PIXELS"] = "100000"
    ok = subprocess.run([sys.executable, "-m", "zrenie", "classify", "predict", str(run), str(tmp_path / "big.png")],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
