"""The Task protocol: what one folder under `tasks/` declares so that the API, the CLI and the engine serve it.

A task is a class registered once with `@register_task`; nothing else lists it. The class attributes
are read by the config (before any object exists) and the methods by the API:

    name        the CLI word and config value (`zrenie segment train`, `task: segment`)
    section     a dataclass of the task's own keys, typed as `segment.ignore_index=255`
    defaults    dotted shared keys the task prefers (AdamW for segmentation), applied before the recipe
    renamed     old key -> new key; an old key in a recipe or stored config is mapped with a notice
    aliases     short key -> its key, accepted as it is (`loss=` for `segment.loss=`)
    monitor     (metric, "max" | "min"): what picks best.pt unless `monitor=` says otherwise
    optimizers  optimiser name -> the models it trains; `optim.NAME.lr=` when there are several
    ema_models  models that keep an EMA copy when `ema>0` (default: every trained model)
    verbs       extra CLI verbs: name -> `Verb` (transfer, study, sample, search ...)
    engine_verbs  the shared verbs it offers (a task without checkpoints has no eval, predict, export, report)
    target      the target kind it asks datasets for: "class", "mask" or "boxes"
    normalize_inputs  whether loaders normalise images (False: the model does, as torchvision's detectors)
    collate_fn  how file samples become a batch (None: `zrenie.data.loading.collate`)

    metric_names(cfg, preprocess)       validation metric names, known before training
    build_data(cfg)                     DatasetSplits (default: `data.name` with the task's target kind)
    model_specs(cfg, preprocess)        {name: (registered builder, kwargs)}: checkpoints rebuild from these
    prepare_models(models, cfg)         a new training run only: pretrained weights, freezing
    build_step(cfg, preprocess, splits) an object with train_step(models, batch, ctx), eval_step(models, batch),
                                        new_metric(), and optionally on_epoch_start(models, epoch)
    lr_mult_of(cfg, name, model)        parameter name -> learning-rate multiplier, or None
    test(handle, splits, cfg, device, split)   metrics and what the report shows, of one split
    report_sections(run_dir, tested, preprocess)
    predict(handle, images, **options)  a list of `zrenie.report.Result`
    scores(models, batch)               Tensor[B, K] for explanations, where a task has class scores
    run(cfg, run_dir)                   only for a task with its own loop (style transfer optimises pixels)

`Task` holds the defaults of the optional members; a task overrides what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import Tensor, nn

from zrenie.registry import TASKS


@dataclass
class Verb:
    """An extra CLI verb of a task.

    Args:
        help: one line for `zrenie TASK --help`.
        arguments: `(flags, argparse keyword arguments)` pairs, e.g. `(("study",), {"help": "study YAML"})`.
        run: `run(namespace, api) -> exit code`; `api` is `zrenie.api`, passed in because a task sits below it.
        examples: command lines that `zrenie TASK VERB --help` shows.
    """

    help: str
    arguments: list[tuple[tuple[str, ...], dict]] = field(default_factory=list)
    run: Callable[[Any, Any], int] | None = None
    examples: list[str] = field(default_factory=list)  # command lines shown by --help


class Task:
    """Defaults of the optional members of the protocol (see the module docstring)."""

    name: str = ""
    section: type | None = None
    defaults: dict[str, Any] = {}
    renamed: dict[str, str] = {}
    aliases: dict[str, str] = {}
    monitor: tuple[str, str] = ("val/loss", "min")
    optimizers: dict[str, tuple[str, ...]] = {"model": ("model",)}
    ema_models: tuple[str, ...] | None = None
    verbs: dict[str, Verb] = {}
    engine_verbs: tuple[str, ...] = ("train", "keys", "eval", "predict", "export", "report")
    target: str = "class"
    normalize_inputs: bool = True
    collate_fn: Callable | None = None
    run = None  # `run(cfg, run_dir) -> dict` for a task that owns its loop

    def build_data(self, cfg: Any) -> Any:
        """The dataset named by `data.name`, with this task's kind of targets."""
        from zrenie.data.catalog import open_splits

        return open_splits(cfg.data, target=self.target)

    def build_loader(self, splits: Any, split: str, cfg: Any, device: Any, train: bool = False,
                     sampler: Any = None) -> Any:
        """The loader of one split with this task's normalisation and collate function."""
        from zrenie.data.loading import build_loader, collate

        return build_loader(getattr(splits, split), splits, cfg, device, train, normalize=self.normalize_inputs,
                            collate_fn=self.collate_fn or collate, sampler=sampler)

    def prepare_models(self, models: dict[str, nn.Module], cfg: Any) -> None:
        """Called for a new training run (not on resume) before the optimisers are built."""

    def lr_mult_of(self, cfg: Any, name: str, model: nn.Module) -> Callable[[str], float] | None:
        return None

    def report_sections(self, run_dir: Any, tested: dict, preprocess: dict) -> list:
        return []

    def scores(self, models: dict[str, nn.Module], batch: Any) -> Tensor:
        raise NotImplementedError(f"task {self.name!r} has no class scores to explain")


REQUIRED = ("metric_names", "model_specs", "build_step", "test", "predict")


def register_task(cls: type) -> type:
    """Class decorator: checks the protocol's required members and registers the task under `cls.name`."""
    missing = [m for m in REQUIRED if not callable(getattr(cls, m, None))]
    if not cls.name or (missing and cls.run is None):
        raise TypeError(f"task class {cls.__name__} needs a name and {', '.join(missing)}")
    return TASKS.register(cls.name)(cls)


def get_task(name: str) -> Task:
    """A fresh instance of the registered task `name`."""
    return TASKS.get(name)()


def list_tasks() -> list[str]:
    return TASKS.list()
