"""Typed defaults, YAML recipes of overrides, and dotted `key=value` overrides.

A recipe holds only what differs from the defaults. Every key is checked against the dataclass
fields, so a typo is an error that names the key instead of a silently ignored setting.
`data=digits` is shorthand for `data.name=digits` (likewise `model=`, `optim=`).

The task of a run adds to the shared keys (see `zrenie.tasks.Task`): its own section
(`classify.tta=flip`), its defaults for shared keys (applied before the recipe), named optimiser
sections (`optim.D.lr=2e-4`) and the keys it renamed (an old key in a recipe or a stored config is
mapped with a notice; typed by a user it is an error that names the new key).

Each field's metadata holds its one-line `help`, its `choices` or the `range` of numbers it allows
(a `Range`); `_set` checks both, and `describe_keys` lists every key with its type, value and help.

Recipes and `atomic_path` (the one way zrenie writes a file) are in `zrenie.config.files`, re-exported here.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from zrenie.config.files import (  # noqa: F401  (re-exported: zrenie.config is where callers find them)
    _EXPONENT_FLOAT, atomic_path, is_recipe, list_recipes, load_recipe, resolve_recipe, shipped_recipes)
from zrenie.errors import ConfigError
from zrenie.registry import TASKS


_RANGE = re.compile(r"(>=|>|<=|<) (\S+)|in ([\[(])(\S+), (\S+)([\])])")


@dataclass(frozen=True)
class Range:
    """The numbers a key allows: `low <= value <= high`, strict at an end marked open; None is unbounded.

    A field declares it as the rule a user reads, `"range": ">= 1"` or `"range": "in [0, 1)"` (see `parse`),
    and `_set` checks it when the config is built, so every task inherits the checks and a bad value is one
    ConfigError naming the key instead of a ZeroDivisionError an epoch later.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    @classmethod
    def parse(cls, text: str) -> "Range":
        """`">= 1"`, `"> 0"`, `"<= 1"`, `"< 1"` or an interval `"in [0, 1)"`; `str()` writes it back."""
        match = _RANGE.fullmatch(text)
        if match is None:
            raise ValueError(f"not a range: {text!r}")
        op, bound, left, low, high, right = match.groups()
        if op is not None and op[0] == ">":
            return cls(low=float(bound), low_open=op == ">")
        if op is not None:
            return cls(high=float(bound), high_open=op == "<")
        return cls(float(low), float(high), low_open=left == "(", high_open=right == ")")

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = self.low is None or value > self.low or (value == self.low and not self.low_open)
        below = self.high is None or value < self.high or (value == self.high and not self.high_open)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


@dataclass
class DataConfig:
    name: str = field(default="digits", metadata={"help": "dataset, a registered name (zrenie list datasets)"})
    root: Union[str, None] = field(default=None, metadata={
        "help": "where an on-disk dataset lives (null: the dataset's default place)"})
    ann: Union[str, None] = field(default=None, metadata={
        "help": "annotation file of an on-disk dataset (coco: the instances JSON; null: none)"})
    categories: Union[list, str, None] = field(default=None, metadata={
        "help": "coco, voc, yolo: the classes to keep, in this order, a list or a comma string (helmet,head); "
                "segmentation adds the background first (null: all; detect also takes data.classes=)"})
    size: Union[int, None] = field(default=None, metadata={
        "help": "resize images to size x size, >= 1 (null: the dataset's native size)", "range": ">= 1"})
    batch_size: int = field(default=128, metadata={"help": "images per batch on each process, >= 1", "range": ">= 1"})
    workers: int = field(default=2, metadata={
        "help": "DataLoader workers for on-disk datasets, >= 0 (0: load in the main process)", "range": ">= 0"})
    augment: str = field(default="standard", metadata={"help": "training augmentation preset",
                                                       "choices": ("none", "light", "standard", "strong")})
    val_fraction: float = field(default=0.1, metadata={
        "help": "share of train carved as val when the dataset has no val split, in [0, 1)", "range": "in [0, 1)"})
    download: bool = field(default=False, metadata={
        "help": "use torchvision's downloader when the files are missing"})
    strict: bool = field(default=False, metadata={"help": "a corrupt image is an error instead of a counted warning"})
    num_classes: Union[int, None] = field(default=None, metadata={
        "help": "classes of a procedural dataset (shapes), >= 1 (null: its default)", "range": ">= 1"})
    num_samples: Union[int, None] = field(default=None, metadata={
        "help": "images in all splits of a procedural dataset (shapes), >= 1 (null: its default)",
        "range": ">= 1"})
    max_objects: Union[int, None] = field(default=None, metadata={
        "help": "most objects per scene of procedural detection data (shapes: 4, digit_scenes: 1), >= 1 "
                "(null: the dataset's default)", "range": ">= 1"})
    mosaic: float = field(default=0.0, metadata={
        "help": "detection: probability that a training image is a 2x2 mosaic of four of its batch (YOLOv4), "
                "in [0, 1]; files need data.size", "range": "in [0, 1]"})
    seed: int = field(default=0, metadata={"help": "seed of the split and of procedural data, >= 0",
                                           "range": ">= 0"})
    sampler: str = field(default="random", metadata={
        "help": "batch sampling (balanced: each class drawn equally often, for rare classes)",
        "choices": ("random", "balanced")})
    subset_classes: Union[list, None] = field(default=None, metadata={
        "help": "keep only these classes (names or indices), relabelled 0..k-1 (null: all)"})
    background: int = field(default=255, metadata={
        "help": "grey level, in [0, 255], that transparent pixels of image files are composited over "
                "(255: white); kept in checkpoints, so predict reads images the same way", "range": "in [0, 255]"})


@dataclass
class ModelConfig:
    name: str = field(default="simple_cnn", metadata={"help": "architecture, a registered name (zrenie list models)"})
    dropout: Union[float, None] = field(default=None, metadata={
        "help": "dropout probability, in [0, 1) (null: the architecture's default)", "range": "in [0, 1)"})
    width: Union[int, None] = field(default=None, metadata={
        "help": "base channel count where the architecture has one, >= 1 (null: its default)", "range": ">= 1"})
    batchnorm: Union[bool, None] = field(default=None, metadata={
        "help": "false: the architecture without batchnorm (simple_cnn); null: its default"})
    small_input: bool = field(default=False, metadata={"help": "stem for 32x32 images on ImageNet architectures"})
    weights: Union[str, None] = field(default=None, metadata={
        "help": "pretrained weights: torchvision/timm .pth or .safetensors, or a zrenie checkpoint"})
    finetune: str = field(default="full", metadata={
        "help": "with weights: scratch ignores them, frozen trains the head only, full trains everything",
        "choices": ("scratch", "frozen", "full")})
    unfreeze_every: int = field(default=0, metadata={
        "help": "gradual unfreezing: one more block every N epochs from the head down, >= 0 (0: off)",
        "range": ">= 0"})
    kwargs: dict = field(default_factory=dict, metadata={
        "help": "architecture options, e.g. model.kwargs.width_mult=0.5"})


@dataclass
class OptimConfig:
    name: str = field(default="sgd", metadata={"help": "optimiser", "choices": ("sgd", "adamw")})
    lr: float = field(default=0.1, metadata={"help": "peak learning rate, >= 0 (0 freezes the weights)",
                                             "range": ">= 0"})
    momentum: float = field(default=0.9, metadata={"help": "sgd: momentum, in [0, 1]", "range": "in [0, 1]"})
    nesterov: bool = field(default=True, metadata={"help": "sgd: Nesterov momentum (when momentum > 0)"})
    weight_decay: float = field(default=5e-4, metadata={
        "help": "weight decay, >= 0; never applied to norm and bias parameters", "range": ">= 0"})
    schedule: str = field(default="onecycle", metadata={"help": "learning-rate schedule",
                                                        "choices": ("onecycle", "cosine", "step", "constant")})
    warmup_epochs: float = field(default=0.0, metadata={"help": "cosine: linear warmup length in epochs, >= 0",
                                                        "range": ">= 0"})
    step_epochs: int = field(default=30, metadata={"help": "step: decay every this many epochs, >= 1",
                                                   "range": ">= 1"})
    gamma: float = field(default=0.1, metadata={"help": "step: decay factor, in (0, 1]",
                                                "range": "in (0, 1]"})
    grad_clip: float = field(default=0.0, metadata={
        "help": "max global grad norm of this optimiser's parameters, >= 0 (0: off)", "range": ">= 0"})
    backbone_lr_mult: float = field(default=1.0, metadata={
        "help": "learning rate of pretrained layers relative to the new head, >= 0 (0 freezes them)",
        "range": ">= 0"})
    betas: Union[list, None] = field(default=None, metadata={
        "help": "adamw: [beta1, beta2], each in [0, 1) (null: PyTorch's [0.9, 0.999])", "range": "in [0, 1)"})
    accumulate: int = field(default=1, metadata={
        "help": "micro-batches per optimiser step (gradient accumulation), >= 1", "range": ">= 1"})
    named: dict = field(default_factory=dict, metadata={
        "help": "a task's named optimisers: optim.D.lr=2e-4 -> {'D': {'lr': 2e-4}}"})

    def for_name(self, name: str) -> "OptimConfig":
        """The settings of optimiser `name`: these, with its own `optim.NAME.*` keys on top."""
        return dataclasses.replace(self, named={}, **self.named.get(name, {}))


@dataclass
class TrainConfig:
    task: str = field(default="classify", metadata={"help": "task of the run (zrenie list tasks)"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "dataset and loading"})
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "architecture and weights"})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "optimiser and schedule"})
    epochs: int = field(default=10, metadata={"help": "training epochs, >= 1", "range": ">= 1"})
    out: str = field(default="runs/run", metadata={"help": "run directory"})
    seed: int = field(default=0, metadata={"help": "seed of weights, batches and augmentation, >= 0",
                                           "range": ">= 0"})
    deterministic: bool = field(default=False, metadata={"help": "deterministic kernels (slower)"})
    threads: Union[int, None] = field(default=None, metadata={
        "help": "CPU threads (null: torch's default; the run records the count, since results reproduce only "
                "at the same count), >= 1 or null", "range": ">= 1"})
    device: str = field(default="auto", metadata={"help": "where to train: auto | cpu | cuda | cuda:N | mps"})
    amp: str = field(default="auto", metadata={"help": "mixed precision (auto: bf16 or fp16 on CUDA, off on CPU)",
                                               "choices": ("auto", "off", "bf16", "fp16")})
    compile: bool = field(default=False, metadata={"help": "torch.compile the models"})
    channels_last: bool = field(default=False, metadata={"help": "channels-last memory format for images and models"})
    ema: float = field(default=0.0, metadata={"help": "EMA decay of the weights, in [0, 1), e.g. 0.999 (0: off)",
                                              "range": "in [0, 1)"})
    monitor: str = field(default="val/loss", metadata={
        "help": "metric that picks best.pt (the task sets its own); none: best = last"})
    monitor_mode: str = field(default="min", metadata={"help": "whether a larger or a smaller monitor is better",
                                                       "choices": ("max", "min")})
    resume: Union[str, None] = field(default=None, metadata={"help": "run directory or checkpoint to continue from"})
    overwrite: bool = field(default=False, metadata={"help": "allow writing into a directory that holds another run"})
    sync_bn: bool = field(default=False, metadata={
        "help": "DDP: batchnorm statistics over the global batch (SyncBatchNorm)"})
    find_unused_parameters: bool = field(default=False, metadata={
        "help": "DDP: allow parameters that get no gradient in a step"})
    log_every: int = field(default=50, metadata={
        "help": "steps between reads of the loss on the host (progress text, NaN check), >= 1", "range": ">= 1"})
    eval_every: int = field(default=1, metadata={
        "help": "epochs between validations (the last epoch is always validated), >= 1", "range": ">= 1"})
    # Batchnorm statistics recomputed with the final weights before each validation (Wu & Johnson 2021):
    # for short runs, small batches and EMA weights, whose running statistics lag the weights evaluated.
    precise_bn: bool = field(default=False, metadata={
        "help": "recompute batchnorm statistics with the final weights before each validation"})
    precise_bn_batches: int = field(default=20, metadata={
        "help": "training batches averaged per batchnorm recomputation, >= 1", "range": ">= 1"})
    tensorboard: bool = field(default=True, metadata={"help": "write TensorBoard event files"})
    report: bool = field(default=True, metadata={"help": "write report.html after training"})
    progress: bool = field(default=True, metadata={"help": "print progress while training"})
    sections: dict = field(default_factory=dict, metadata={
        "help": "the task's own section, e.g. {'classify': ClassifyConfig()}"})

    def __getattr__(self, name: str) -> Any:
        """`cfg.classify` is the classify section of a classify run."""
        sections = self.__dict__.get("sections") or {}
        if name in sections:
            return sections[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


_HIDDEN = {"sections", "named"}  # fields that hold sub-sections; users type their keys, not these names


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


class Typed(str):
    """Text typed on the command line, read by the declared type of its key when it is set (`out=0755` stays
    the folder name "0755", `optim.lr=1e-3` is a float, `data.subset_classes=[no,yes]` two class names)."""


_INT = re.compile(r"[-+]?\d+")
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _list_item(text: str) -> Any:
    """An item of a typed list: a number when it reads as one, else the text itself."""
    text = text.strip()
    if _INT.fullmatch(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def _from_text(key: str, text: str, tp: Any) -> Any:
    """Command-line text as a value of type `tp` (not of YAML's guess)."""
    expected = getattr(tp, "__name__", str(tp))
    if tp is str:
        return text
    if tp is bool and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    if tp is int and _INT.fullmatch(text.strip()):
        return int(text)
    if tp is float:
        try:
            return float(text)
        except ValueError:
            pass
    if tp is list:
        inner = text.strip().removeprefix("[").removesuffix("]").strip()
        return [_list_item(t) for t in inner.split(",")] if inner else []
    if tp is dict:
        value = parse_value(text)
        if isinstance(value, dict):
            return value
    raise ConfigError(f"config key {key!r}: expected {expected}, got {text!r}")


def _check_type(key: str, value: Any, tp: Any) -> Any:
    """Returns `value` converted to `tp`, or raises ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    if isinstance(value, Typed):
        if origin in (Union, types.UnionType):
            args = typing.get_args(tp)
            if type(None) in args and value.strip().lower() in ("null", "none", "~", ""):
                return None
            return _check_type(key, value, next(a for a in args if a is not type(None)))
        return _from_text(key, str(value), tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(key, value, arg)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"config key {key!r}: expected {tp.__name__}, got {value!r}")


def _set(cfg: Any, key: str, value: Any, prefix: str = "", root: Any = None, where: str | None = None) -> None:
    """Sets dotted `key` of `cfg`; `root` is the whole TrainConfig, `where` names a recipe or stored config
    (None: the user typed the key), for the notice about a renamed key."""
    root = cfg if root is None else root
    head, _, rest = key.partition(".")
    full = prefix + head
    hints = {k: v for k, v in typing.get_type_hints(type(cfg)).items() if k not in _HIDDEN}
    if head not in hints:
        _set_extra(cfg, head, rest, value, full, root, where, hints)
        return
    tp = hints[head]
    if _is_config(tp):
        _set_section(getattr(cfg, head), rest, value, full, root, where)
        return
    if rest and tp is dict:  # free-form options: model.kwargs.width_mult=0.5 (no declared type: read as YAML)
        getattr(cfg, head)[rest] = parse_value(value) if isinstance(value, Typed) else value
        return
    if rest:
        raise ConfigError(f"unknown config key {full + '.' + rest!r}: {full!r} has no sub-keys")
    value = _check_type(full, value, tp)
    meta = _metadata(cfg, head)
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"config key {full!r}: expected one of {', '.join(choices)}, got {value!r}")
    if meta.get("range") is not None and value is not None:
        _check_range(full, value, Range.parse(meta["range"]), tp)
    setattr(cfg, head, value)


def _metadata(cfg: Any, name: str) -> typing.Mapping:
    return next(f.metadata for f in dataclasses.fields(cfg) if f.name == name)


def _check_range(key: str, value: Any, allowed: Range, tp: Any) -> None:
    """Raises ConfigError naming `key` unless `value` (each item of a list) lies in `allowed`."""
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v in allowed for v in items):
        rule = ("each " if isinstance(value, list) else "") + str(allowed) + (" or null" if _optional(tp) else "")
        raise ConfigError(f"config key {key!r}: expected {rule}, got {value!r}")


def _optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _set_section(section: Any, rest: str, value: Any, full: str, root: Any, where: str | None) -> None:
    """`data.size=32`, `data={size: 32}` (a recipe's nesting) or `data=digits` (select by name)."""
    if rest:
        _set(section, rest, value, full + ".", root, where)
    elif isinstance(value, dict):
        for k, v in value.items():
            _set(section, str(k), v, full + ".", root, where)
    elif isinstance(value, str) and hasattr(section, "name"):
        _set(section, "name", value, full + ".", root, where)
    else:
        raise ConfigError(f"config key {full!r}: expected a mapping of its keys, got {value!r}")


def _set_extra(cfg: Any, head: str, rest: str, value: Any, full: str, root: Any, where: str | None,
               hints: dict) -> None:
    """A key that is not a field: the task's section, a named optimiser, a renamed key, or a typo."""
    old = full + ("." + rest if rest else "")
    aliases = getattr(root, "_aliases", {})
    if old in aliases:  # a short name the task offers for one of its keys (`loss=` for `segment.loss=`)
        _set(root, aliases[old], value, "", root, where)
        return
    if rest and full in aliases:  # a short name of a mapping: `grid.C=` for `classic.grid.C=`
        _set(root, f"{aliases[full]}.{rest}", value, "", root, where)
        return
    renamed = getattr(root, "_renamed", {})
    if old in renamed:
        if where is None:
            raise ConfigError(f"config key {old!r} is now {renamed[old]!r}")
        warnings.warn(f"{where}: config key {old!r} is now {renamed[old]!r}", FutureWarning, stacklevel=2)
        _set(root, renamed[old], value, "", root, where)
        return
    if isinstance(cfg, TrainConfig) and head in cfg.sections:
        _set_section(cfg.sections[head], rest, value, full, root, where)
        return
    if isinstance(cfg, OptimConfig) and head in getattr(root, "_optimizers", ()):
        items = {rest: value} if rest else value
        if not isinstance(items, dict):
            raise ConfigError(f"config key {full!r}: expected a mapping of optim keys, got {value!r}")
        for k, v in items.items():
            probe = OptimConfig()  # type-checks the key as a shared optim key
            _set(probe, str(k), v, full + ".", root, where)
            name = str(k).partition(".")[0]
            cfg.named.setdefault(head, {})[name] = getattr(probe, name)
        return
    if not _prefix_of(full) and head in TASKS:
        raise ConfigError(f"config key {old!r} belongs to task {head!r}; this run's task is {root.task!r}")
    known = [_prefix_of(full) + k for k in hints]
    if isinstance(cfg, TrainConfig):
        known += list(cfg.sections)
    if isinstance(cfg, OptimConfig):
        known += list(getattr(root, "_optimizers", ()))
    raise ConfigError(f"unknown config key {old!r}; known keys: {', '.join(known)}")


def _prefix_of(full: str) -> str:
    return full.rpartition(".")[0] + "." if "." in full else ""


def parse_value(text: str) -> Any:
    """A CLI value as YAML would read it: `3` -> 3, `true` -> True, `null` -> None, else a string.

    YAML 1.1 reads `2e-4` (no dot) as a string; it is the way most people type a learning rate, so it is a float.
    """
    if _EXPONENT_FLOAT.fullmatch(text.strip()):
        return float(text)
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def apply_overrides(cfg: Any, overrides: dict[str, Any], where: str | None = None) -> Any:
    """Applies nested or dotted overrides in place and returns `cfg`.

    Args:
        where: the recipe or stored config they come from, for the notice about a renamed key; None when
            the user typed them (then a renamed key is an error naming the new one).
    """
    for key, value in overrides.items():
        _set(cfg, str(key), value, root=cfg, where=where)
    return cfg


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """`["epochs=3", "data.root=/x"]` -> `{"epochs": Typed("3"), "data.root": Typed("/x")}`: each value is kept
    as typed and read by its key's declared type when it is set (so a path or a name is taken verbatim)."""
    out = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {arg!r}")
        out[key] = Typed(value)
    return out


def new_config(task: str = "classify") -> TrainConfig:
    """The defaults of a run of `task`: the shared keys, the task's section, then the task's defaults.

    The task is looked up in the task registry; its class may declare `section` (a dataclass),
    `defaults` (dotted shared keys), `monitor` ((key, "max" | "min")), `renamed` (old key -> new key),
    `aliases` (short key -> its key, accepted as it is) and `optimizers` (names of its optimisers, when it
    has more than one).
    """
    spec = TASKS.get(task)
    cfg = TrainConfig(task=task)
    section = getattr(spec, "section", None)
    if section is not None:
        cfg.sections[task] = section()
    cfg._renamed = dict(getattr(spec, "renamed", {}))
    cfg._aliases = dict(getattr(spec, "aliases", {}))
    optimizers = tuple(getattr(spec, "optimizers", ()))
    cfg._optimizers = optimizers if len(optimizers) > 1 else ()
    monitor = getattr(spec, "monitor", None)
    if monitor is not None:
        cfg.monitor, cfg.monitor_mode = monitor
    return apply_overrides(cfg, dict(getattr(spec, "defaults", {})), where=f"task {task!r} defaults")


def build_config(recipe: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the task's, then the recipe, then the overrides (dotted keys allowed, e.g.
    `**{"data.size": 32}`). The task is `task=` of the overrides, else the recipe's, else classify."""
    data = load_recipe(recipe) if recipe is not None else {}
    task = overrides.get("task", data.get("task", "classify"))
    if not isinstance(task, str):
        raise ConfigError(f"config key 'task': expected a task name, got {task!r}")
    cfg = new_config(task)
    apply_overrides(cfg, {k: v for k, v in data.items() if k != "task"}, where=f"recipe {recipe}")
    return apply_overrides(cfg, {k: v for k, v in overrides.items() if k != "task"})


@dataclass
class KeyInfo:
    """One key a user can set, as a help listing shows it."""

    key: str  # dotted, e.g. "data.batch_size"; a named optimiser's keys read "optim.<NAME>.lr"
    type: str  # as a user reads it: "int", "int or null", "one of sgd|adamw"
    value: Any  # its value in the config described
    help: str
    range: Range | None  # the numbers it allows (each item, for a list); None: any of its type


def describe_keys(cfg: TrainConfig) -> list[KeyInfo]:
    """Every key a user can set on `cfg`: the shared keys, the task's section, and the keys of its named
    optimisers, listed once as `optim.<NAME>.<key>`. `describe_keys(new_config(task))` shows `task`'s defaults."""
    keys = _describe(cfg, "")
    for name, section in cfg.sections.items():
        keys += _describe(section, name + ".")
    names = getattr(cfg, "_optimizers", ())
    if names:
        keys += [dataclasses.replace(k, key="optim.<NAME>." + k.key[len("optim."):],
                                     help=f"{k.help} (NAME one of {', '.join(names)}; unset: {k.key})")
                 for k in keys if k.key.startswith("optim.")]
    return keys


def _describe(cfg: Any, prefix: str) -> list[KeyInfo]:
    hints = typing.get_type_hints(type(cfg))
    keys = []
    for f in dataclasses.fields(cfg):
        if f.name in _HIDDEN:
            continue
        tp, value, rule = hints[f.name], getattr(cfg, f.name), f.metadata.get("range")
        if _is_config(tp):
            keys += _describe(value, prefix + f.name + ".")
        else:
            keys.append(KeyInfo(prefix + f.name, _type_name(tp, f.metadata.get("choices")), copy.deepcopy(value),
                                f.metadata.get("help", ""), rule and Range.parse(rule)))
    return keys


def _type_name(tp: Any, choices: tuple | None) -> str:
    if choices:
        return "one of " + "|".join(choices)
    if _optional(tp):
        return " or ".join(a.__name__ for a in typing.get_args(tp) if a is not type(None)) + " or null"
    return tp.__name__


def to_dict(cfg: Any) -> dict:
    """Plain data; a task's section and named optimisers sit where their keys say (`classify:`, `optim: {D:}`)."""
    data = dataclasses.asdict(cfg)
    if isinstance(cfg, TrainConfig):
        data.update(data.pop("sections"))
        data["optim"].update(data["optim"].pop("named"))
    return data


def from_dict(data: dict, where: str = "stored config") -> TrainConfig:
    """A config from `to_dict`'s plain data (a run's config.yaml or a checkpoint's copy)."""
    task = data.get("task", "classify")
    return apply_overrides(new_config(task), {k: v for k, v in data.items() if k != "task"}, where=where)


def save_config(cfg: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
