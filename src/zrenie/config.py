"""Typed defaults, YAML recipes of overrides, and dotted `key=value` overrides.

A recipe holds only what differs from the defaults. Every key is checked against the dataclass
fields, so a typo is an error that names the key instead of a silently ignored setting.
`data=digits` is shorthand for `data.name=digits` (likewise `model=`, `optim=`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from zrenie.errors import ConfigError


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
    mixup: Union[float, None] = None  # MixUp alpha; None: the augment preset's (0.2 for strong, else off)
    cutmix: Union[float, None] = None  # CutMix alpha; None: the augment preset's (1.0 for strong, else off)
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
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # max global grad norm; 0 disables
    backbone_lr_mult: float = 1.0  # learning rate of pretrained layers relative to the new head


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
    tta: str = "none"  # test-time augmentation: none | flip | five_crop | ten_crop
    class_weights: str = "none"  # none | balanced (loss weight n / (k * n_c), as scikit-learn's)
    monitor: str = "val/acc1"  # metric that picks best.pt
    monitor_mode: str = "max"  # max | min
    resume: Union[str, None] = None  # run directory or checkpoint to continue from
    overwrite: bool = False  # allow writing into a directory that holds another run
    tensorboard: bool = True
    report: bool = True
    progress: bool = True


CHOICES = {
    "data.augment": ("none", "light", "standard", "strong"),
    "data.sampler": ("random", "balanced"),
    "model.finetune": ("scratch", "frozen", "full"),
    "tta": ("none", "flip", "five_crop", "ten_crop"),
    "class_weights": ("none", "balanced"),
    "optim.name": ("sgd", "adamw"),
    "optim.schedule": ("onecycle", "cosine", "step", "constant"),
    "amp": ("auto", "off", "bf16", "fp16"),
    "monitor_mode": ("max", "min"),
}


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


def _set(cfg: Any, key: str, value: Any, prefix: str = "") -> None:
    head, _, rest = key.partition(".")
    full = prefix + head
    hints = typing.get_type_hints(type(cfg))
    if head not in hints:
        known = ", ".join(prefix + k for k in hints)
        raise ConfigError(f"unknown config key {full!r}; known keys: {known}")
    tp = hints[head]
    if _is_config(tp):
        if rest:
            _set(getattr(cfg, head), rest, value, full + ".")
        elif isinstance(value, dict):
            for k, v in value.items():
                _set(getattr(cfg, head), str(k), v, full + ".")
        elif isinstance(value, str):  # `data=digits` selects by name
            _set(getattr(cfg, head), "name", value, full + ".")
        else:
            raise ConfigError(f"config key {full!r}: expected a name or a mapping, got {value!r}")
        return
    if rest and tp is dict:  # free-form options: model.kwargs.width_mult=0.5
        getattr(cfg, head)[rest] = value
        return
    if rest:
        raise ConfigError(f"unknown config key {full + '.' + rest!r}: {full!r} has no sub-keys")
    value = _check_type(full, value, tp)
    if full in CHOICES and value not in CHOICES[full]:
        raise ConfigError(f"config key {full!r}: expected one of {', '.join(CHOICES[full])}, got {value!r}")
    setattr(cfg, head, value)


def parse_value(text: str) -> Any:
    """A CLI value as YAML would read it: `3` -> 3, `true` -> True, `null` -> None, else a string."""
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def load_recipe(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"recipe {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must hold a mapping of keys to values")
    return data


def apply_overrides(cfg: Any, overrides: dict[str, Any]) -> Any:
    """Applies nested or dotted overrides in place and returns `cfg`."""
    for key, value in overrides.items():
        _set(cfg, str(key), value)
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


def build_config(recipe: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the recipe, then the overrides (dotted keys allowed, e.g. `**{"data.size": 32}`)."""
    cfg = TrainConfig()
    if recipe is not None:
        apply_overrides(cfg, load_recipe(recipe))
    return apply_overrides(cfg, overrides)


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(data: dict) -> TrainConfig:
    return apply_overrides(TrainConfig(), data)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
