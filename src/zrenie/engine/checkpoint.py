"""Atomic checkpoint writes and safe loads.

A checkpoint holds only tensors and plain data, so it loads with `torch.load(weights_only=True)`:
a file that carries a pickled object is refused instead of executed.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from zrenie.errors import CheckpointError

FORMAT = "zrenie-checkpoint"
VERSION = 1


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Writes to a temp file in the same folder, flushes it, then renames over `path`.

    A crash mid-write leaves the previous checkpoint intact: rename is atomic on POSIX.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def resolve_checkpoint(run_or_ckpt: str | Path, name: str = "best.pt") -> Path:
    """A checkpoint file, or `name` inside a run directory (falling back to last.pt)."""
    path = Path(run_or_ckpt)
    if path.is_dir():
        for candidate in (path / name, path / "last.pt"):
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"no checkpoint in run directory {path} (expected {name} or last.pt)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def load_checkpoint(path: str | Path, task: str | None = None) -> dict[str, Any]:
    """Loads a zrenie checkpoint with weights_only=True, checking its format and task."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = str(err).splitlines()[0][:160]
        raise CheckpointError(f"{path}: refused, it carries pickled objects that are not plain data ({detail})") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(err).splitlines()[0][:160]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a zrenie checkpoint")
    if task is not None and state.get("task") != task:
        raise CheckpointError(f"{path}: checkpoint of task {state.get('task')!r}, expected {task!r}")
    return state


def load_model_state(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], where: str) -> None:
    """Loads weights strictly; a mismatch is one line naming the first differing keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}")
        if shapes:
            k = shapes[0]
            parts.append(f"shape of {k} is {tuple(state_dict[k].shape)}, model has {tuple(own[k].shape)}")
        raise CheckpointError(f"{where}: weights do not fit this model ({'; '.join(parts)})")
    model.load_state_dict(state_dict)
