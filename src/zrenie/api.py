"""The Python entry points: train, evaluate, predict, export, report. The CLI only parses arguments and calls these.

Nothing here knows a task: each is looked up in the task registry (`zrenie.tasks`) and serves
through the Task protocol.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from zrenie.config import TrainConfig, apply_overrides, atomic_path, build_config, from_dict, load_recipe
from zrenie.engine import distributed as dist
from zrenie.engine.rng import cpu_threads, deterministic_mode, seed_everything
from zrenie.engine.run_dir import check_run_dir, create_run_dir, remove_failed_start, unlock_run_dir
from zrenie.engine.trainer import Trainer, TrainingInterrupted
from zrenie.errors import CheckpointError, ConfigError, WriteError
from zrenie.nn.checkpoint import (RunHandle, build_from_spec, eval_weights, load_model_state, load_run,
                                  load_run_checkpoint, resolve_checkpoint)
from zrenie.tasks import Task, get_task

def resolve_device(name: str) -> torch.device:
    """The device of `device=`: auto, cpu, cuda (this process's GPU: the local rank under torchrun) or cuda:N."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"config key 'device': unknown device {name!r} (auto, cpu, cuda or cuda:N)") from None
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ConfigError(f"config key 'device': {name!r} requested but CUDA is not available")
    if device.index is None:  # a bare "cuda" names a GPU, so that set_device and checkpoints see one index
        device = torch.device("cuda", dist.local_rank())
    if device.index >= torch.cuda.device_count():
        raise ConfigError(f"config key 'device': {name!r} requested but this machine has "
                          f"{torch.cuda.device_count()} GPU(s)")
    return device


def _resume_config(resume: str, recipe: str | Path | None, overrides: dict[str, Any]) -> tuple[TrainConfig, dict]:
    """The resumed run's saved config (then the recipe and overrides of this call), and its checkpoint."""
    path, state = load_run_checkpoint(resume, "last.pt")
    cfg = from_dict(state["config"], where=f"stored config of {path}")
    if recipe is not None:
        apply_overrides(cfg, load_recipe(recipe), where=f"recipe {recipe}")
    apply_overrides(cfg, overrides)
    cfg.resume, cfg.out = str(path), str(path.parent)
    return cfg, state


def resume_command(cfg: TrainConfig) -> str:
    """The command that continues a run of this config."""
    return f"zrenie {cfg.task} train resume={cfg.out}"


def _check_monitor(cfg: TrainConfig, names: list[str]) -> None:
    allowed = [f"val/{n}" for n in names]
    if cfg.monitor != "none" and cfg.monitor not in allowed:
        raise ConfigError(f"config key 'monitor': {cfg.monitor!r} is not a metric of task {cfg.task!r}; "
                          f"expected none or one of {', '.join(allowed)}")


def train(task: str = "classify", recipe: str | Path | None = None,
          callbacks: list[Callable[[dict], None]] | None = None, **overrides: Any) -> dict[str, Any]:
    """Trains a model for `task`; returns `{"run_dir", "val", "test", "report"}`.

    Args:
        recipe: optional YAML file of config overrides.
        callbacks: called after every step with `{"epoch", "batch", "loss"}` (the loss a tensor on the device).
        **overrides: config keys, dotted for nested ones: `train("classify", data="digits", epochs=3,
            **{"optim.lr": 0.05})`.
    """
    resume = overrides.get("resume")
    if resume is None and recipe is not None:
        resume = load_recipe(recipe).get("resume")
    state = None
    if resume:
        cfg, state = _resume_config(str(resume), recipe, overrides)
    else:
        cfg = build_config(recipe, task=task, **overrides)
    task_impl = get_task(cfg.task)
    if cfg.model.unfreeze_every > 0 and dist.launched_by_torchrun():
        raise ConfigError("config key 'model.unfreeze_every': gradual unfreezing is not supported under DDP "
                          "(DDP fixes the trained parameters when it wraps the model)")
    device = resolve_device(cfg.device)
    if cfg.sync_bn and dist.launched_by_torchrun() and device.type != "cuda":
        raise ConfigError("config key 'sync_bn': SyncBatchNorm needs CUDA devices; leave it off on CPU")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init(device)
    seed_everything(cfg.seed + dist.rank())
    with deterministic_mode(cfg.deterministic), cpu_threads(cfg.threads) as threads:
        cfg.threads = threads  # recorded in config.yaml: a resumed run uses the same count
        return _train(task_impl, cfg, state, device, callbacks)


def _train(task_impl: Task, cfg: TrainConfig, state: dict | None, device: torch.device,
           callbacks: list[Callable[[dict], None]] | None) -> dict[str, Any]:
    holds_run = check_run_dir(cfg, resume_command(cfg))
    if task_impl.run is not None:  # a task with its own loop: the folder is still made and closed here
        run_dir, created, lock = create_run_dir(cfg, holds_run)
        try:
            result = task_impl.run(cfg, run_dir)
        except BaseException:
            remove_failed_start(run_dir, created, lock)
            raise
        _write_results(run_dir, result.get("test") or {})
        unlock_run_dir(run_dir, lock)
        return result
    splits = task_impl.build_data(cfg)
    preprocess = splits.meta()
    _check_monitor(cfg, task_impl.metric_names(cfg, preprocess))
    specs = task_impl.model_specs(cfg, preprocess)
    models = {name: build_from_spec(builder, kwargs) for name, (builder, kwargs) in specs.items()}
    task_impl.prepare_models(models, cfg)
    if state is not None:
        if state.get("task") != cfg.task:
            raise CheckpointError(f"{cfg.resume}: checkpoint of task {state.get('task')!r}, expected {cfg.task!r}")
        for name, model in models.items():
            load_model_state(model, state["models"][name]["state"], cfg.resume)
    models = {name: model.to(device) for name, model in models.items()}
    step = task_impl.build_step(cfg, preprocess, splits)
    train_loader = task_impl.build_loader(splits, "train", cfg, device, train=True)
    val_loader = task_impl.build_loader(splits, "val", cfg, device)  # also sets the val split's eval transform
    if hasattr(task_impl, "check_forward"):
        task_impl.check_forward(models, splits, device)
    run_dir, created, lock = create_run_dir(cfg, holds_run)
    _print_header(cfg, splits, models, device, state)
    lr_mults = {name: task_impl.lr_mult_of(cfg, name, model) for name, model in models.items()}
    bn_loader = _bn_loader(task_impl, splits, cfg, device) if cfg.precise_bn else None
    try:
        trainer = Trainer(models, step, task_impl.optimizers, train_loader, val_loader, cfg, run_dir, device,
                          {"task": cfg.task, "preprocess": preprocess}, specs, callbacks, lr_mults,
                          task_impl.ema_models, bn_loader)
        if state is not None:
            trainer.load_state_dict(state)
        try:
            val = trainer.fit()
        finally:
            trainer.close()
    except BaseException:
        remove_failed_start(run_dir, created, lock)  # nothing was trained: no stub to refuse the next attempt
        raise
    dist.barrier()  # best.pt is written before any process reads it
    try:
        tested = _finish(task_impl, run_dir, cfg, splits, device)
    except KeyboardInterrupt:
        raise TrainingInterrupted(f"interrupted during the test pass; training is complete and saved in {run_dir}; "
                                  f"test and report with `{resume_command(cfg)}`") from None
    except WriteError as err:
        raise WriteError(f"{err}; training is complete and saved in {run_dir}: free space or make the folder "
                         f"writable, then test and report with `{resume_command(cfg)}`") from None
    finally:
        unlock_run_dir(run_dir, lock)
    dist.barrier()
    return {"run_dir": run_dir, "val": val, **tested}


def _print_header(cfg: TrainConfig, splits, models: dict[str, torch.nn.Module], device: torch.device,
                  state: dict | None) -> None:
    """What is about to run: task, model size, data counts and image size, device, AMP, output, weights."""
    from zrenie.engine.evaluate import resolve_amp
    from zrenie.engine.logging import print_run_header

    params = sum(p.numel() for m in models.values() for p in m.parameters())
    size = splits.extras.get("size_note") or (f"image size {splits.image_size}" if splits.image_size
                                              else "images at their own size")
    amp = resolve_amp(cfg.amp, device)
    names = cfg.model.name if len(models) == 1 else ", ".join(models)
    rows = [("model", f"{names}  ({params:,} parameters)"),
            ("data", f"{cfg.data.name}: train {len(splits.train):,}, val {len(splits.val):,}, "
                     f"test {len(splits.test):,}; {size}"),
            ("device", f"{device}, AMP {str(amp).removeprefix('torch.') if amp else 'off'}, "
                       f"{cfg.threads} CPU threads"),
            ("output", str(cfg.out))]
    if state is not None:
        rows.append(("resumed", f"{cfg.resume} (epoch {state['epoch']}, batch {state['batch']})"))
    elif cfg.model.weights and cfg.model.finetune != "scratch":
        rows.append(("weights", f"{cfg.model.weights} (model.finetune={cfg.model.finetune})"))
    if dist.is_main():
        print_run_header(f"zrenie {cfg.task} train", rows)


def _bn_loader(task_impl: Task, splits, cfg: TrainConfig, device: torch.device):
    """Training batches for precise BN, in an order of their own (seed + 1)."""
    from zrenie.data.loading import EpochBatches, process_rank

    rank, world = process_rank()
    sampler = EpochBatches(len(splits.train), cfg.data.batch_size, shuffle=True, drop_last=True, seed=cfg.seed + 1,
                           rank=rank, world=world)
    return task_impl.build_loader(splits, "train", cfg, device, train=True, sampler=sampler)


def _finish(task_impl: Task, run_dir: Path, cfg: TrainConfig, splits, device: torch.device) -> dict[str, Any]:
    """Tests best.pt on the test split, every process its shard, and the main one writes results and report."""
    handle = load_run(run_dir / "best.pt", device, cache=False)
    tested = task_impl.test(handle.models, splits, cfg, device)
    if not dist.is_main():
        return {"test": tested["metrics"], "report": None}
    _write_results(run_dir, tested["metrics"])
    report = None
    if cfg.report:
        report = write_run_report(task_impl, run_dir, cfg, tested, handle, splits)
    return {"test": tested["metrics"], "report": report}


def _write_results(run_dir: Path, metrics: dict[str, float]) -> None:
    """results.json: the test metrics, and the mark of a finished run."""
    from zrenie.report.compare import RESULTS_FILE

    if dist.is_main():
        with atomic_path(run_dir / RESULTS_FILE) as tmp:
            tmp.write_text(json.dumps(metrics, indent=2))


def write_run_report(task_impl: Task, run_dir: Path, cfg: TrainConfig, tested: dict, handle: RunHandle,
                     splits) -> Path:
    """report.html: what ran (config, data counts, device, weights), how it went (curves, best epoch), and the
    task's pictures."""
    import csv

    from zrenie.config import to_dict
    from zrenie.engine.evaluate import resolve_amp
    from zrenie.report.run_report import write_run_report as write_page

    wall = None
    if (run_dir / "metrics.csv").is_file():
        with open(run_dir / "metrics.csv", newline="") as f:
            wall = sum(float(r.get("time") or 0) for r in csv.DictReader(f))
    amp = resolve_amp(cfg.amp, handle.device)
    info = {"device": str(handle.device), "amp": str(amp).removeprefix("torch.") if amp else None,
            "wall_time_s": wall, "parameters": sum(p.numel() for m in handle.models.values() for p in m.parameters()),
            "counts": {split: len(getattr(splits, split)) for split in ("train", "val", "test")},
            "image_size": handle.preprocess.get("image_size"), "weights": cfg.model.weights, "resumed_from": cfg.resume,
            "num_classes": len(handle.classes) or None}
    sections = task_impl.report_sections(run_dir, tested, handle.preprocess)
    return write_page(run_dir, f"{cfg.task}: {cfg.model.name} on {cfg.data.name}", to_dict(cfg), tested["metrics"],
                      sections, info)


def _open_run(run_or_ckpt: str | Path, task: str | None,
              overrides: dict[str, Any]) -> tuple[Task, TrainConfig, RunHandle]:
    """The run's task, its stored config with `overrides` on top, and its models on the configured device."""
    path = resolve_checkpoint(run_or_ckpt)
    handle = load_run(path, "cpu", task=task)
    cfg = apply_overrides(from_dict(handle.config, where=f"stored config of {path}"), overrides)
    device = resolve_device(cfg.device)
    if device.type != "cpu":
        handle = load_run(path, device)
    return get_task(handle.task), cfg, handle


def evaluate(run_or_ckpt: str | Path, split: str = "test", task: str | None = None,
             **overrides: Any) -> dict[str, Any]:
    """Re-evaluates a run's best.pt (or a checkpoint file) on a split.

    Returns:
        `{"metrics": {name: float}, "checkpoint": Path, ...}` with the task's extras (a confusion matrix ...).
    """
    if split not in ("train", "val", "test"):
        raise ConfigError(f"unknown split {split!r}; expected train, val or test")
    task_impl, cfg, handle = _open_run(run_or_ckpt, task, overrides)
    splits = task_impl.build_data(cfg)
    result = task_impl.test(handle.models, splits, cfg, handle.device, split=split)
    result["checkpoint"] = handle.path
    return result


def predict(run_or_ckpt: str | Path, images: Sequence[str | Path | torch.Tensor], task: str | None = None,
            device: str = "auto", recursive: bool = False, **options: Any) -> list:
    """Predicts image files, folders of them, or float tensors `(C, H, W)` in [0, 1] with a trained run.

    Args:
        images: files, folders (every image in it; in its subfolders too with `recursive`) or tensors.
        options: the task's own options, e.g. `topk=3` or `tta="flip"` for classification.

    Returns:
        one `zrenie.report.result.Result` per image (`.to_dict()`, `.save(path)`, `.plot()`).
    """
    from zrenie.imgproc.io import DEFAULT_BACKGROUND, find_images, read_image

    images = [im for item in images for im in ([item] if isinstance(item, torch.Tensor) else
                                                  find_images(item, recursive))]
    task_impl, _, handle = _open_run(run_or_ckpt, task, {"device": device})
    try:
        inspect.signature(task_impl.predict).bind(handle, [], [], **options)
    except TypeError as err:
        raise ConfigError(f"predict of task {handle.task!r} does not take these options: {err}") from None
    tensors, names = [], []
    for i, image in enumerate(images):
        if isinstance(image, torch.Tensor):
            tensors.append(image.float())
            names.append(f"tensor[{i}]")
        else:
            background = handle.preprocess.get("background", DEFAULT_BACKGROUND)  # as the run's files were read
            tensors.append(read_image(image, channels=None, background=background).float().div_(255))
            names.append(str(image))
    return task_impl.predict(handle, tensors, names, **options)


def export(run_or_ckpt: str | Path, out: str | Path | None = None, task: str | None = None) -> Path:
    """Writes the weights of a run's best.pt as `.safetensors` (EMA weights when the run kept them).

    A one-model run's keys are the model's own (so torchvision-layout models load them as they are);
    several models are prefixed with their names (`G.`, `D.`). The metadata holds the task, the
    builders and their kwargs, the config and the preprocessing as JSON strings, so the weights can
    be rebuilt without the checkpoint. Default path: `<run>/model.safetensors`.
    """
    from safetensors.torch import save_file

    path, state = load_run_checkpoint(run_or_ckpt)
    if task is not None and state.get("task") != task:
        raise CheckpointError(f"{path}: checkpoint of task {state.get('task')!r}, expected {task!r}")
    names = list(state["models"])
    weights = {}
    for name in names:
        prefix = "" if len(names) == 1 else f"{name}."
        weights.update({prefix + k: v.contiguous() for k, v in eval_weights(state, name).items()})
    out = Path(out) if out is not None else path.parent / "model.safetensors"
    if out.suffix != ".safetensors":
        raise ConfigError(f"export path must end in .safetensors, got {out}")
    specs = {n: {"builder": m["builder"], "kwargs": m["kwargs"]} for n, m in state["models"].items()}
    metadata = {"task": state["task"], "models": json.dumps(specs), "config": json.dumps(state["config"]),
                "preprocess": json.dumps(state.get("preprocess", {}))}
    if len(names) == 1:
        metadata["model_name"] = specs[names[0]]["builder"]
    with atomic_path(out) as tmp:
        save_file(weights, str(tmp), metadata=metadata)
    return out


def report(run_dir: str | Path, task: str | None = None) -> Path:
    """Re-evaluates a run's best.pt on the test split and rewrites its report.html."""
    run_dir = Path(run_dir)
    task_impl, cfg, handle = _open_run(run_dir, task, {})
    splits = task_impl.build_data(cfg)
    tested = task_impl.test(handle.models, splits, cfg, handle.device)
    return write_run_report(task_impl, run_dir, cfg, tested, handle, splits)
