"""Typed defaults, YAML recipes of overrides, and dotted `key=value` overrides.

A recipe holds only what differs from the defaults. Every key is checked against the dataclass
fields, so a typo is an error that names the key instead of a silently ignored setting.
`data=digits` is shorthand for `data.name=digits` (likewise `model=`, `optim=`).

The task of a run adds to the shared keys (see `zrenie.tasks.Task`): its own section
(`classify.tta=flip`), its defaults for shared keys (applied before the recipe), named optimiser
sections (`optim.D.lr=2e-4`) and the keys it renamed (an old key in a recipe or a stored config is
mapped with a notice; typed by a user it is an error that names the new key).

This module also holds `atomic_path`, the one way zrenie writes a file: it sits in the lowest
layer because every layer (imgproc, engine, report, api) writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tempfile
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Union

import yaml

from zrenie.errors import ConfigError
from zrenie.registry import TASKS


@dataclass
class DataConfig:
    name: str = "digits"
    root: Union[str, None] = None  # where an on-disk dataset lives
    size: Union[int, None] = None  # resize images to size x size (None: native size)
    batch_size: int = 128
    workers: int = 2  # DataLoader workers for on-disk datasets
    augment: str = "standard"  # none | light | standard | strong
    val_fraction: float = 0.1  # carved from train when the dataset has no val split
    download: bool = False  # use torchvision's downloader when the files are missing
    strict: bool = False  # a corrupt image is an error instead of a counted warning
    num_classes: Union[int, None] = None  # procedural datasets (shapes)
    num_samples: Union[int, None] = None  # procedural datasets (shapes): images in all splits
    seed: int = 0  # seed of the split and of procedural data
    sampler: str = "random"  # random | balanced (each class drawn equally often: for rare classes)
    subset_classes: Union[list, None] = None  # keep only these classes (names or indices), relabelled 0..k-1


@dataclass
class ModelConfig:
    name: str = "simple_cnn"
    dropout: Union[float, None] = None  # None: the architecture's default
    width: Union[int, None] = None  # base channel count where the architecture has one
    batchnorm: Union[bool, None] = None  # False: the architecture without batchnorm (simple_cnn); None: default
    small_input: bool = False  # stem for 32x32 images on ImageNet architectures
    weights: Union[str, None] = None  # torchvision/timm .pth or .safetensors, or a zrenie checkpoint
    finetune: str = "full"  # scratch (ignore weights) | frozen (train the head only) | full
    unfreeze_every: int = 0  # gradual unfreezing: one more block every N epochs, from the head down
    kwargs: dict = field(default_factory=dict)  # architecture options, e.g. model.kwargs.width_mult=0.5


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4  # never applied to norm and bias parameters
    schedule: str = "onecycle"  # onecycle | cosine | step | constant
    warmup_epochs: float = 0.0  # cosine: linear warmup length
    step_epochs: int = 30  # step: decay every this many epochs
    gamma: float = 0.1  # step: decay factor
    grad_clip: float = 0.0  # max global grad norm of this optimiser's parameters; 0 disables
    backbone_lr_mult: float = 1.0  # learning rate of pretrained layers relative to the new head
    betas: Union[list, None] = None  # adamw: (beta1, beta2); None: PyTorch's (0.9, 0.999)
    accumulate: int = 1  # micro-batches per optimiser step (gradient accumulation)
    named: dict = field(default_factory=dict)  # a task's named optimisers: optim.D.lr=2e-4 -> {"D": {"lr": 2e-4}}

    def for_name(self, name: str) -> "OptimConfig":
        """The settings of optimiser `name`: these, with its own `optim.NAME.*` keys on top."""
        return dataclasses.replace(self, named={}, **self.named.get(name, {}))


@dataclass
class TrainConfig:
    task: str = "classify"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 10
    out: str = "runs/run"
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    amp: str = "auto"  # auto | off | bf16 | fp16 (auto: bf16 or fp16 on CUDA, off on CPU)
    compile: bool = False
    channels_last: bool = False
    ema: float = 0.0  # EMA decay of the weights, e.g. 0.999; 0 disables
    monitor: str = "val/loss"  # metric that picks best.pt (the task sets its own); none: best = last
    monitor_mode: str = "min"  # max | min
    resume: Union[str, None] = None  # run directory or checkpoint to continue from
    overwrite: bool = False  # allow writing into a directory that holds another run
    sync_bn: bool = False  # DDP: batchnorm statistics over the global batch (SyncBatchNorm)
    find_unused_parameters: bool = False  # DDP: allow parameters that get no gradient in a step
    log_every: int = 50  # steps between reads of the loss on the host (progress text, NaN check)
    eval_every: int = 1  # epochs between validations (the last epoch is always validated)
    # Batchnorm statistics recomputed with the final weights before each validation (Wu & Johnson 2021):
    # for short runs, small batches and EMA weights, whose running statistics lag the weights evaluated.
    precise_bn: bool = False
    precise_bn_batches: int = 20  # training batches (of their own order) averaged per recomputation
    tensorboard: bool = True
    report: bool = True
    progress: bool = True
    sections: dict = field(default_factory=dict)  # the task's own section, e.g. {"classify": ClassifyConfig()}

    def __getattr__(self, name: str) -> Any:
        """`cfg.classify` is the classify section of a classify run."""
        sections = self.__dict__.get("sections") or {}
        if name in sections:
            return sections[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


CHOICES = {
    "data.augment": ("none", "light", "standard", "strong"),
    "data.sampler": ("random", "balanced"),
    "model.finetune": ("scratch", "frozen", "full"),
    "optim.name": ("sgd", "adamw"),
    "optim.schedule": ("onecycle", "cosine", "step", "constant"),
    "amp": ("auto", "off", "bf16", "fp16"),
    "monitor_mode": ("max", "min"),
}
_HIDDEN = {"sections", "named"}  # fields that hold sub-sections; users type their keys, not these names


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _check_type(key: str, value: Any, tp: Any) -> Any:
    """Returns `value` converted to `tp`, or raises ConfigError naming `key`."""
    origin = typing.get_origin(tp)
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
    if rest and tp is dict:  # free-form options: model.kwargs.width_mult=0.5
        getattr(cfg, head)[rest] = value
        return
    if rest:
        raise ConfigError(f"unknown config key {full + '.' + rest!r}: {full!r} has no sub-keys")
    value = _check_type(full, value, tp)
    choices = CHOICES.get(full) or {f.name: f.metadata.get("choices") for f in dataclasses.fields(cfg)}[head]
    if choices and value not in choices:
        raise ConfigError(f"config key {full!r}: expected one of {', '.join(choices)}, got {value!r}")
    setattr(cfg, head, value)


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


_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


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


def shipped_recipes() -> Path:
    """The folder of the recipes installed with zrenie (one per course homework and demo)."""
    return Path(__file__).resolve().parent / "recipes"


def list_recipes(pattern: str = "*") -> list[str]:
    """Names of the shipped recipes matching a glob, e.g. `list_recipes("hw*")`."""
    return sorted(p.stem for p in shipped_recipes().glob(f"{pattern}.yaml"))


def resolve_recipe(recipe: str | Path) -> Path:
    """A recipe file: a path that exists, or the name of a shipped recipe (`digits_cnn`, `digits_cnn.yaml`)."""
    path = Path(recipe).expanduser()
    if path.is_file():
        return path
    shipped = shipped_recipes() / f"{path.name.removesuffix('.yaml')}.yaml"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    raise ConfigError(f"recipe not found: {recipe} (neither a file nor a shipped recipe; shipped: "
                      f"{', '.join(list_recipes())})")


def is_recipe(arg: str) -> bool:
    """Whether a command-line argument names a recipe (a .yaml path, an existing file or a shipped name)."""
    if "=" in arg:
        return False
    return arg.endswith((".yaml", ".yml")) or Path(arg).is_file() or arg in list_recipes()


def load_recipe(path: str | Path) -> dict:
    path = resolve_recipe(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"recipe {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must hold a mapping of keys to values")
    return data


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
    """`["epochs=3", "data.root=/x"]` -> `{"epochs": 3, "data.root": "/x"}`."""
    out = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {arg!r}")
        out[key] = parse_value(value)
    return out


def new_config(task: str = "classify") -> TrainConfig:
    """The defaults of a run of `task`: the shared keys, the task's section, then the task's defaults.

    The task is looked up in the task registry; its class may declare `section` (a dataclass),
    `defaults` (dotted shared keys), `monitor` ((key, "max" | "min")), `renamed` (old key -> new key)
    and `optimizers` (names of its optimisers, when it has more than one).
    """
    spec = TASKS.get(task)
    cfg = TrainConfig(task=task)
    section = getattr(spec, "section", None)
    if section is not None:
        cfg.sections[task] = section()
    cfg._renamed = dict(getattr(spec, "renamed", {}))
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


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; when the block ends, renames it over `path`.

    A reader (a resumed run, a browser refreshing the report) sees the old file or the new one, never a
    half-written one; if the block raises, the temporary file is removed and `path` is untouched. The
    file gets the permissions a plain `open()` would give (0666 less the umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
