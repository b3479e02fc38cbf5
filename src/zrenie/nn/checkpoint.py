"""Checkpoint files: the layout, atomic writes, safe loads, `upgrade()` of older layouts, and `load_run`.

A checkpoint holds only tensors and plain data, so it loads with `torch.load(weights_only=True)`: a
file that carries a pickled object is refused instead of executed. Layout, version 2:

    {"format": "zrenie-checkpoint", "version": 2, "task": str, "config": dict, "preprocess": dict,
     "models": {name: {"builder": str, "kwargs": dict, "state": state_dict}},
     "optimizers": {name: state}, "schedulers": {name: state}, "scalers": {name: state},
     "ema": {model name: {"updates": int, "weights": state_dict}},
     "epoch": int, "batch": int, "partial": dict, "best": float | None, "rng": dict}

Every reader goes through `load_checkpoint`, which returns version 2 whatever version the file has.
This module sits below the engine because transfer learning (`nn.transfer`) reads checkpoints too.
"""

from __future__ import annotations

import collections
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zrenie.config import atomic_path
from zrenie.errors import CheckpointError, ConfigError
from zrenie.registry import MODELS

FORMAT = "zrenie-checkpoint"
VERSION = 2


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Writes `state` (version 2 entries) to a temp file in the same folder, fsyncs it, renames it over `path`.

    A crash mid-write leaves the previous checkpoint intact: rename is atomic on POSIX.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **state}, f)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def resolve_checkpoint(run_or_ckpt: str | Path, name: str = "best.pt") -> Path:
    """A checkpoint file, or `name` inside a run directory (falling back to last.pt)."""
    path = Path(run_or_ckpt)
    if path.is_dir():
        names = list(dict.fromkeys((name, "last.pt")))
        for candidate in names:
            if (path / candidate).is_file():
                return path / candidate
        raise CheckpointError(f"no checkpoint in run directory {path} (expected {' or '.join(names)}): "
                              f"it never finished an epoch")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


class CorruptCheckpointError(CheckpointError):
    """A checkpoint whose bytes are damaged: empty, truncated, or failing its stored checksums."""


def _check_archive(path: Path) -> None:
    """A zip checkpoint (torch.save's format) checked against the CRC32 of every record: torch.load does not
    check them, so a flipped bit inside a tensor would load as a silently different weight."""
    if path.stat().st_size == 0:
        raise CorruptCheckpointError(f"{path}: corrupt or truncated (an empty file)")
    if not zipfile.is_zipfile(path):
        return  # the legacy (pre-1.6) format has no checksums; torch.load judges it
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise CorruptCheckpointError(f"{path}: corrupt or truncated ({err})") from None
    if bad is not None:
        raise CorruptCheckpointError(f"{path}: corrupt: the bytes of {bad} do not match their stored checksum")


def read_torch_file(path: Path) -> Any:
    """`torch.load(weights_only=True)` with one-line errors that tell apart a file that is corrupt or truncated,
    one refused because it carries code, and one that is not a checkpoint at all."""
    _check_archive(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if "GLOBAL" in line]
        if lines:  # weights_only refused an object that would run code when unpickled
            raise CheckpointError(f"{path}: refused, it carries code, not only tensors and plain data "
                                  f"({lines[0]})") from None
        raise CorruptCheckpointError(f"{path}: not a PyTorch checkpoint, or corrupt") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CorruptCheckpointError(f"{path}: corrupt or truncated ({str(err).splitlines()[0]})") from None


def load_run_checkpoint(run_or_ckpt: str | Path, prefer: str = "best.pt") -> tuple[Path, dict[str, Any]]:
    """A checkpoint file as given, or a run directory's `prefer` checkpoint; when that one is corrupt and the
    run's other checkpoint is good, the other one, with a warning that says so.

    Returns:
        the path read, and its state (version 2).
    """
    path = resolve_checkpoint(run_or_ckpt, prefer)
    try:
        return path, load_checkpoint(path)
    except CorruptCheckpointError as err:
        other = path.with_name("last.pt" if path.name == "best.pt" else "best.pt")
        if not Path(run_or_ckpt).is_dir() or not other.is_file():
            raise
        try:
            state = load_checkpoint(other)
        except CheckpointError:
            raise err from None
        warnings.warn(f"{err}; using {other.name} (epoch {state['epoch']}) instead", stacklevel=2)
        return other, state


def load_checkpoint(path: str | Path, task: str | None = None) -> dict[str, Any]:
    """Loads a zrenie checkpoint safely and returns it in the version 2 layout, checking its task."""
    path = Path(path)
    state = upgrade(read_torch_file(path), str(path))
    if task is not None and state.get("task") != task:
        raise CheckpointError(f"{path}: checkpoint of task {state.get('task')!r}, expected {task!r}")
    return state


def upgrade(state: Any, where: str) -> dict[str, Any]:
    """Any checkpoint layout zrenie has written, as version 2; a newer version is a one-line error."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not a zrenie checkpoint")
    version = state.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{where}: not a zrenie checkpoint (version {version!r})")
    if version > VERSION:
        raise CheckpointError(f"{where}: checkpoint version {version} is newer than this zrenie reads "
                              f"({VERSION}); upgrade zrenie")
    if version == 1:
        state = _upgrade_v1(state)
    return state


def classifier_kwargs(model_cfg: dict, preprocess: dict) -> dict[str, Any]:
    """Builder kwargs of a classifier from the `model` config section and the data's preprocessing.

    Classification builds its models with these; version 1 checkpoints (written by classification,
    the only task then) did not store them, so the upgrade recomputes them the same way.
    """
    kwargs = {"num_classes": len(preprocess["classes"]), "in_channels": preprocess["in_channels"],
              **model_cfg.get("kwargs", {})}
    for key in ("dropout", "width", "batchnorm"):
        if model_cfg.get(key) is not None:
            kwargs[key] = model_cfg[key]
    if model_cfg.get("small_input"):
        kwargs["small_input"] = True
    return kwargs


def _upgrade_v1(old: dict[str, Any]) -> dict[str, Any]:
    """Version 1: one model and one optimiser under flat keys ("model", "optimizer", "meta", ...)."""
    new = {k: old[k] for k in ("format", "task", "config", "epoch", "batch", "partial", "best", "rng") if k in old}
    new["version"] = 2
    new["preprocess"] = old["meta"]
    new["models"] = {"model": {"builder": old["model_name"],
                               "kwargs": classifier_kwargs(old["config"]["model"], old["meta"]),
                               "state": old["model"]}}
    for v1, v2 in (("optimizer", "optimizers"), ("scheduler", "schedulers"), ("scaler", "scalers"), ("ema", "ema")):
        if v1 in old:
            new[v2] = {"model": old[v1]}
    return new


def eval_weights(state: dict[str, Any], name: str) -> dict[str, torch.Tensor]:
    """The weights a model is evaluated with: its EMA copy when the run kept one, else its own."""
    ema = state.get("ema", {}).get(name)
    return ema["weights"] if ema is not None else state["models"][name]["state"]


def build_from_spec(builder: str, kwargs: dict[str, Any]) -> nn.Module:
    """A registered model; options the builder does not take are a one-line ConfigError (its own
    validation raises ConfigError too); any other exception is a bug and surfaces as it is."""
    import inspect

    fn = MODELS.get(builder)
    try:
        inspect.signature(fn).bind(**kwargs)
    except TypeError as err:
        raise ConfigError(f"model {builder!r} does not take these options: {err}") from None
    try:
        return fn(**kwargs)
    except TypeError as err:
        # A builder with **kwargs forwards them to its module's constructor, which binds them there.
        if "unexpected keyword argument" not in str(err):
            raise
        raise ConfigError(f"model {builder!r} does not take these options: {err}") from None


def load_model_state(model: nn.Module, state_dict: dict[str, torch.Tensor], where: str) -> None:
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


@dataclass(frozen=True)
class RunHandle:
    """A trained run, read-only: its models in eval mode on `device`, with what it needs to prepare inputs.

    Handles are cached and shared; don't train or modify the models (parameters don't require grad).
    """

    path: Path
    task: str
    config: dict[str, Any]
    preprocess: dict[str, Any]
    models: dict[str, nn.Module]
    device: torch.device

    @property
    def classes(self) -> list[str]:
        return list(self.preprocess.get("classes", []))

    @property
    def model(self) -> nn.Module:
        """The single model of a one-model run."""
        if len(self.models) != 1:
            raise CheckpointError(f"{self.path}: holds models {sorted(self.models)}; pick one by name")
        return next(iter(self.models.values()))


def _cache_key(path: Path, device: torch.device) -> tuple:
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size, str(device)


def _read_run(path: Path, device: torch.device) -> RunHandle:
    state = load_checkpoint(path)
    models = {}
    for name, spec in state["models"].items():
        with torch.random.fork_rng(devices=[]):  # the random init is overwritten; the caller's RNG is not
            model = build_from_spec(spec["builder"], spec["kwargs"])
        load_model_state(model, eval_weights(state, name), str(path))
        models[name] = model.to(device).eval().requires_grad_(False)
    return RunHandle(path, state["task"], state["config"], state.get("preprocess", {}), models, device)


_HANDLES: collections.OrderedDict = collections.OrderedDict()
_MAX_HANDLES = 4


def load_run(path: str | Path, device: str | torch.device = "cpu", task: str | None = None,
             cache: bool = True) -> RunHandle:
    """A run directory's best.pt (or a checkpoint file) as a `RunHandle`, cached by path, file version and device.

    `cache=False` reads without storing the handle (a handle already cached for the same file is returned).

    It reads only the checkpoint: the models are rebuilt from the builders and kwargs stored there. It
    sets no seed, flag or default device, so a long-lived process (the web app) can hold several.
    """
    path = resolve_checkpoint(path).resolve()
    device = torch.device(device)
    key = _cache_key(path, device)
    if key in _HANDLES:  # a cache hit costs one stat: no read, no checksum
        _HANDLES.move_to_end(key)
        handle = _HANDLES[key]
    else:
        try:
            handle = _read_run(path, device)
        except CorruptCheckpointError:
            if path.name != "best.pt":
                raise
            path = load_run_checkpoint(path.parent)[0].resolve()  # the run's last.pt, with a warning, if good
            key, handle = _cache_key(path, device), _read_run(path, device)
        if cache:
            _HANDLES[key] = handle
            while len(_HANDLES) > _MAX_HANDLES:
                _HANDLES.popitem(last=False)
    if task is not None and handle.task != task:
        raise CheckpointError(f"{path}: checkpoint of task {handle.task!r}, expected {task!r}")
    return handle
