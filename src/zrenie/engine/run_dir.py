"""The life of a run directory: whether `out=` may be used, when it is created, and what a failed start removes.

A run directory holds `config.yaml`, `metrics.csv`, `tb/`, `last.pt`, `best.pt`, `results.json`,
`report.html` and its PNGs. It is created only when training starts (after data, models and one
forward pass are checked), and a run that stops before its first checkpoint leaves nothing behind,
so re-running the same command is never refused because of a stub.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from zrenie.config import TrainConfig, save_config
from zrenie.engine import distributed as dist
from zrenie.errors import RunDirError

CHECKPOINTS = ("last.pt", "best.pt")
# Everything a run writes; a folder holding only these (and no checkpoint) is an unfinished start.
RUN_FILES = ("config.yaml", "metrics.csv", "tb", "results.json", "report.html", *CHECKPOINTS)


def holds_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds a run: one that saved a checkpoint, or finished (results.json, written also by
    tasks with their own loop)."""
    return any((run_dir / name).is_file() for name in (*CHECKPOINTS, "results.json"))


def _foreign_files(run_dir: Path) -> list[str]:
    """Names in `run_dir` that no run writes: the user's own files."""
    return sorted(p.name for p in run_dir.iterdir()
                  if p.name not in RUN_FILES and p.suffix != ".png" and not p.name.startswith("."))


def check_run_dir(cfg: TrainConfig, resume_hint: str) -> bool:
    """Refuses `out=` when training into it would lose something; returns whether it holds a run.

    Args:
        resume_hint: the command that continues a run in this folder, for the message.
    """
    run_dir = Path(cfg.out)
    _check_not_in_use(run_dir)  # before any data is loaded: the refusal is immediate
    if cfg.resume is not None and run_dir.is_dir():
        _check_metrics_table(run_dir / "metrics.csv")
    if not run_dir.exists() or cfg.resume is not None:
        return run_dir.exists() and holds_run(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"out={run_dir} is a file, not a folder")
    if holds_run(run_dir):
        if not cfg.overwrite:
            raise RunDirError(f"{run_dir} already holds a run; continue it with `{resume_hint}` "
                              f"or pass overwrite=true to replace it")
        return True
    foreign = _foreign_files(run_dir)
    if foreign and not cfg.overwrite:
        raise RunDirError(f"{run_dir} holds files that are not a zrenie run ({', '.join(foreign[:3])}"
                          f"{', ...' if len(foreign) > 3 else ''}); choose an empty or new out= folder, "
                          f"or pass overwrite=true to write into it anyway")
    return False


LOCK_NAME = ".lock"


def lock_run_dir(run_dir: Path) -> int | None:
    """Holds the run directory for this process until `unlock_run_dir` or the process ends (kill -9 included:
    the kernel drops the lock with the process). Another holder is a one-line RunDirError naming it.

    Returns:
        the lock's file descriptor (None on processes other than the main one, which do not write).
    """
    if not dist.is_main():
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            raise _in_use(run_dir, fd) from None
        finally:
            os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"process {os.getpid()}".encode())
    return fd


def _check_not_in_use(run_dir: Path) -> None:
    """A one-line RunDirError when a live process holds `run_dir`'s lock (`lock_run_dir` takes it for good
    later; this only looks, so that a second run is refused before it loads anything)."""
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDONLY)
    except OSError:  # no lock file (or no folder): nobody holds it
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(run_dir, fd) from None
    finally:
        os.close(fd)  # closing releases the shared lock taken to look


def _in_use(run_dir: Path, fd: int) -> RunDirError:
    """The refusal naming the process that holds `run_dir` (its lock file holds "process PID")."""
    holder = os.read(fd, 100).decode(errors="replace").strip() or "another process"
    return RunDirError(f"{run_dir} is in use by {holder}; wait for it to finish or stop it")


def unlock_run_dir(run_dir: Path, fd: int | None) -> None:
    if fd is None:
        return
    (run_dir / LOCK_NAME).unlink(missing_ok=True)
    os.close(fd)


def _check_metrics_table(path: Path) -> None:
    """A resumed run appends to metrics.csv: a damaged one is refused before an epoch is trained for nothing."""
    import csv

    if not path.is_file():
        return
    try:
        with path.open(newline="") as f:
            epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    except (KeyError, TypeError, ValueError, UnicodeDecodeError, csv.Error) as err:
        raise RunDirError(f"{path}: not a metrics table ({type(err).__name__}); move it away to resume "
                          f"(the rows of the epochs before it are then missing from the new one)") from None
    if epochs != sorted(epochs):
        raise RunDirError(f"{path}: epochs out of order ({epochs[:8]}); move it away to resume")


def create_run_dir(cfg: TrainConfig, replaces_run: bool) -> tuple[Path, bool, int | None]:
    """Locks, then creates (or clears, for overwrite=true) the run directory and writes config.yaml.

    Returns:
        the directory, whether this call created it (so that a failed start can remove it), and the lock.
    """
    run_dir = Path(cfg.out)
    created = not run_dir.exists()
    dist.barrier()  # every rank has checked before the main one writes
    lock = lock_run_dir(run_dir)  # before anything is deleted or written: a running run keeps its files
    if dist.is_main() and cfg.resume is None and not cfg.overwrite and holds_run(run_dir):
        unlock_run_dir(run_dir, lock)  # a run that finished since the check: its files stay
        raise RunDirError(f"{run_dir} already holds a run; pass overwrite=true to replace it")
    if dist.is_main():
        if cfg.resume is None:  # a new run: what an earlier run (or an unfinished start) wrote goes
            for name in RUN_FILES:
                path = run_dir / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        for leftover in run_dir.glob(".*.tmp"):  # a write killed before its rename
            leftover.unlink(missing_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    dist.barrier()
    return run_dir, created, lock


def remove_failed_start(run_dir: Path, created: bool, lock: int | None) -> None:
    """After a failure before the first checkpoint: the folder goes if this run created it, else its files do."""
    if not dist.is_main() or holds_run(run_dir):
        unlock_run_dir(run_dir, lock)
        return
    unlock_run_dir(run_dir, lock)
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for name in RUN_FILES:
        path = run_dir / name
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
