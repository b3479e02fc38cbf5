"""Runs zrenie in a child process as a user would: plainly, or under torchrun with a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    """A port nothing listens on now, so that parallel or repeated runs do not collide on a fixed one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(processes: int) -> list[str]:
    """The command prefix of a `processes`-process torchrun on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
            "--master-addr=127.0.0.1", f"--master-port={free_port()}"]


def run_script(script: str, *args: str, extra_env: dict | None = None, processes: int = 0,
               timeout: int = 240) -> subprocess.CompletedProcess:
    """`python script args...` (under torchrun when `processes`), one thread per process, output captured."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(extra_env or {})}
    launcher = torchrun(processes) if processes else [sys.executable]
    return subprocess.run([*launcher, script, *args], capture_output=True, text=True, timeout=timeout, env=env)


def terminate_mid_run(command: list[str], out: Path, env: dict | None = None, timeout: int = 240) -> tuple[int, str]:
    """Starts a training `command` writing to `out`, sends SIGTERM early in its second epoch (once
    `out/metrics.csv` holds the first), and returns its exit code and stderr."""
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + timeout
    while not (out / "metrics.csv").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stderr
