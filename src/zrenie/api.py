"""The Python entry points: train, evaluate, predict. The CLI only parses arguments and calls these."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from zrenie.config import TrainConfig, apply_overrides, build_config, from_dict, load_recipe, save_config
from zrenie.engine import distributed as dist
from zrenie.engine.checkpoint import load_checkpoint, load_model_state, resolve_checkpoint
from zrenie.engine.rng import seed_everything
from zrenie.engine.trainer import Trainer
from zrenie.errors import CheckpointError, ConfigError, RunDirError
from zrenie.registry import TASKS

_TASK_MODULES = {"classify": "zrenie.tasks.classify.task"}
_RUN_FILES = ("config.yaml", "last.pt", "best.pt", "metrics.csv")


def get_task(name: str):
    if name in _TASK_MODULES:
        importlib.import_module(_TASK_MODULES[name])
    return TASKS.get(name)()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank())
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"config key 'device': {name!r} requested but CUDA is not available")
    return device


def _resume_config(resume: str, recipe: str | Path | None, overrides: dict[str, Any]) -> tuple[TrainConfig, dict]:
    """The resumed run's saved config (then the recipe and overrides of this call), and its checkpoint."""
    path = resolve_checkpoint(resume, "last.pt")
    state = load_checkpoint(path)
    cfg = from_dict(state["config"])
    if recipe is not None:
        apply_overrides(cfg, load_recipe(recipe))
    apply_overrides(cfg, overrides)
    cfg.resume, cfg.out = str(path), str(path.parent)
    return cfg, state


def _check_run_dir(cfg: TrainConfig) -> bool:
    """Refuses a directory that holds another run unless resuming or overwriting; returns whether it holds one."""
    run_dir = Path(cfg.out)
    holds_run = run_dir.is_dir() and any((run_dir / f).exists() for f in _RUN_FILES)
    if holds_run and cfg.resume is None and not cfg.overwrite:
        raise RunDirError(f"{run_dir} already holds a run; pass resume={run_dir} to continue it "
                          f"or overwrite=true to replace it")
    return holds_run


def _create_run_dir(cfg: TrainConfig, holds_run: bool) -> Path:
    """Written only once data and model are built, so a bad input leaves nothing behind."""
    run_dir = Path(cfg.out)
    dist.barrier()  # every rank has checked before the main one writes
    if dist.is_main():
        if holds_run and cfg.resume is None:
            for name in ("tb", "report.html"):
                p = run_dir / name
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
            for name in ("best.pt", "last.pt"):
                (run_dir / name).unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    dist.barrier()
    return run_dir


def train(task: str = "classify", recipe: str | Path | None = None,
          callbacks: list[Callable[[dict], None]] | None = None, **overrides: Any) -> dict[str, Any]:
    """Trains a model for `task`; returns `{"run_dir", "val", "test", "report"}`.

    Args:
        recipe: optional YAML file of config overrides.
        callbacks: called after every optimizer step with `{"epoch", "batch", "loss"}`.
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
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init(device)
    seed_everything(cfg.seed + dist.rank(), cfg.deterministic)
    holds_run = _check_run_dir(cfg)
    splits = task_impl.build_data(cfg)
    meta = splits.meta()
    model = task_impl.build_model(cfg, meta, training=True).to(device)
    if state is not None:
        if state.get("task") != cfg.task:
            raise CheckpointError(f"{cfg.resume}: checkpoint of task {state.get('task')!r}, expected {cfg.task!r}")
        load_model_state(model, state["model"], cfg.resume)
    step = task_impl.build_step(cfg, meta, splits.train.targets)
    train_loader = _loader(splits, cfg, device, "train")
    val_loader = _loader(splits, cfg, device, "val")  # also sets the val split's eval transform
    _check_forward(model, splits, device)
    run_dir = _create_run_dir(cfg, holds_run)
    extra = {"task": cfg.task, "model_name": cfg.model.name, "meta": meta}
    lr_mult_of = task_impl.lr_mult_of(cfg, model) if hasattr(task_impl, "lr_mult_of") else None
    trainer = Trainer(model, step, train_loader, val_loader, cfg, run_dir, device, extra, callbacks, lr_mult_of)
    if state is not None:
        trainer.load_state_dict(state)
    try:
        val = trainer.fit()
    finally:
        trainer.close()
    dist.barrier()
    result: dict[str, Any] = {"run_dir": run_dir, "val": val}
    if dist.is_main():
        result.update(_finish(task_impl, run_dir, cfg, splits, device))
    dist.barrier()
    return result


def _check_forward(model: torch.nn.Module, splits, device: torch.device) -> None:
    """One eval-mode forward of a validation image, so that an input the architecture cannot take
    (too small, wrong channels) is a one-line error before the run directory is written."""
    image = splits.val[0][0]
    if image.dtype == torch.uint8:
        image = image.float() / 255
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model(image[None].to(device))
    finally:
        model.train(was_training)


def _loader(splits, cfg: TrainConfig, device: torch.device, split: str):
    from zrenie.data.loading import build_loader

    return build_loader(getattr(splits, split), splits, cfg, device, train=split == "train")


def _finish(task_impl, run_dir: Path, cfg: TrainConfig, splits, device: torch.device) -> dict[str, Any]:
    """Tests best.pt on the test split and writes report.html."""
    model, state = _load_run_model(task_impl, run_dir / "best.pt", cfg, device)
    tested = task_impl.test(model, splits, cfg, device)
    from zrenie.report.compare import RESULTS_FILE

    _write_json(run_dir / RESULTS_FILE, tested["metrics"])
    report = None
    if cfg.report:
        report = write_run_report(task_impl, run_dir, cfg, tested, splits.classes)
    return {"test": tested["metrics"], "report": report}


def _write_json(path: Path, data: Any) -> None:
    import json

    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def write_run_report(task_impl, run_dir: Path, cfg: TrainConfig, tested: dict, classes: list[str]) -> Path:
    from zrenie.report.html import Section, write_report
    from zrenie.report.plots import plot_learning_curves

    sections = []
    if (run_dir / "metrics.csv").exists():
        plot_learning_curves(run_dir / "metrics.csv", run_dir / "learning_curves.png")
        sections.append(Section(title="Learning curves", images=["learning_curves.png"]))
    sections += task_impl.report_sections(run_dir, tested, classes)
    summary = {"task": cfg.task, "model": cfg.model.name, "data": cfg.data.name, "epochs": cfg.epochs,
               **{f"test/{k}": v for k, v in tested["metrics"].items()}}
    return write_report(run_dir, f"{cfg.task}: {cfg.model.name} on {cfg.data.name}", sections, summary=summary)


def _load_run_model(task_impl, path: Path, cfg: TrainConfig, device: torch.device):
    state = load_checkpoint(path, task=task_impl.name)
    model = task_impl.build_model(cfg, state["meta"]).to(device)
    load_model_state(model, state["ema"]["weights"] if "ema" in state else state["model"], str(path))
    return model, state


def _open_run(run_or_ckpt: str | Path, task: str | None, overrides: dict[str, Any]):
    path = resolve_checkpoint(run_or_ckpt)
    state = load_checkpoint(path, task=task)
    task_impl = get_task(state["task"])
    cfg = apply_overrides(from_dict(state["config"]), overrides)
    device = resolve_device(cfg.device)
    model, _ = _load_run_model(task_impl, path, cfg, device)
    return task_impl, cfg, state, model, device, path


def evaluate(run_or_ckpt: str | Path, split: str = "test", task: str | None = None,
             **overrides: Any) -> dict[str, Any]:
    """Re-evaluates a run's best.pt (or a checkpoint file) on a split.

    Returns:
        `{"metrics": {name: float}, "confusion": ..., "checkpoint": Path}` (task-specific extras besides).
    """
    if split not in ("train", "val", "test"):
        raise ConfigError(f"unknown split {split!r}; expected train, val or test")
    task_impl, cfg, _, model, device, path = _open_run(run_or_ckpt, task, overrides)
    splits = task_impl.build_data(cfg)
    result = task_impl.test(model, splits, cfg, device, split=split)
    if cfg.tta != "none":  # what test-time augmentation buys, measured on the same weights and split
        result["metrics_without_tta"] = task_impl.test(model, splits, cfg, device, split=split, tta="none")["metrics"]
    result["checkpoint"] = path
    return result


def predict(run_or_ckpt: str | Path, images: Sequence[str | Path | torch.Tensor], topk: int = 5,
            task: str | None = None, **overrides: Any) -> list[dict[str, Any]]:
    """Predicts image files (or float tensors `(C, H, W)` in [0, 1]) with a trained run.

    Returns:
        one dict per image: `{"image": name, "top": [{"class": str, "prob": float}, ...]}`.
    """
    from zrenie.data.io import read_image

    task_impl, cfg, state, model, device, _ = _open_run(run_or_ckpt, task, overrides)
    tensors, names = [], []
    for i, image in enumerate(images):
        if isinstance(image, torch.Tensor):
            tensors.append(image.float())
            names.append(f"tensor[{i}]")
        else:
            tensors.append(read_image(image, channels=None).float().div_(255))
            names.append(str(image))
    preds = task_impl.predict(model, state["meta"], tensors, device, topk=topk, tta=cfg.tta)
    return [{"image": n, "top": [{"class": c, "prob": p} for c, p in top]} for n, top in zip(names, preds)]


def export(run_or_ckpt: str | Path, out: str | Path | None = None, task: str | None = None) -> Path:
    """Writes the weights of a run's best.pt as `.safetensors` (EMA weights when the run kept them).

    The file's metadata holds the task, model name, config and data meta as JSON strings, so the
    weights can be rebuilt without the checkpoint. Default path: `<run>/model.safetensors`.
    """
    import json

    from safetensors.torch import save_file

    path = resolve_checkpoint(run_or_ckpt)
    state = load_checkpoint(path, task=task)
    weights = state["ema"]["weights"] if "ema" in state else state["model"]
    out = Path(out) if out is not None else path.parent / "model.safetensors"
    if out.suffix != ".safetensors":
        raise ConfigError(f"export path must end in .safetensors, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    metadata = {"task": state["task"], "model_name": state["model_name"],
                "config": json.dumps(state["config"]), "meta": json.dumps(state["meta"])}
    save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp), metadata=metadata)
    tmp.replace(out)
    return out


def report(run_dir: str | Path, task: str | None = None) -> Path:
    """Re-evaluates a run's best.pt on the test split and rewrites its report.html."""
    run_dir = Path(run_dir)
    task_impl, cfg, state, model, device, _ = _open_run(run_dir, task, {})
    splits = task_impl.build_data(cfg)
    tested = task_impl.test(model, splits, cfg, device)
    return write_run_report(task_impl, run_dir, cfg, tested, state["meta"]["classes"])
