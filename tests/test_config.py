import dataclasses

import pytest

from zrenie.config import (DataConfig, ModelConfig, OptimConfig, TrainConfig, build_config, describe_keys, from_dict,
                           new_config, parse_overrides, to_dict)
from zrenie.errors import ConfigError
from zrenie.registry import TASKS
from zrenie.tasks import Task, list_tasks, register_task
from zrenie.tasks.classify.task import ClassifyConfig


def test_defaults_and_dotted_overrides():
    cfg = build_config(epochs=3, **{"data.size": 32, "optim.lr": 1})
    assert cfg.epochs == 3 and cfg.data.size == 32
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)


def test_name_shorthand_selects_by_name():
    cfg = build_config(data="shapes", model="resnet_cifar")
    assert cfg.data.name == "shapes" and cfg.model.name == "resnet_cifar"


def test_recipe_then_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 7\ndata:\n  name: digits\n  size: 16\noptim: {lr: 0.3}\n")
    cfg = build_config(recipe, epochs=2)
    assert (cfg.epochs, cfg.data.size, cfg.optim.lr) == (2, 16, 0.3)


@pytest.mark.parametrize("overrides, match", [
    ({"epochz": 3}, "unknown config key 'epochz'"),
    ({"data.sise": 3}, "unknown config key 'data.sise'"),
    ({"epochs.x": 3}, "'epochs' has no sub-keys"),
    ({"epochs": "many"}, "config key 'epochs': expected int, got 'many'"),
    ({"epochs": 2.5}, "config key 'epochs': expected int"),
    ({"deterministic": 1}, "config key 'deterministic': expected bool"),
    ({"optim.name": "lion"}, "expected one of sgd, adamw"),
    ({"data.size": "big"}, "config key 'data.size'"),
])
def test_bad_keys_and_types_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        build_config(**overrides)


def test_bad_recipe_files(tmp_path):
    with pytest.raises(ConfigError, match="recipe not found"):
        build_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        build_config(bad)


def _typed(*args):
    return build_config(**parse_overrides(list(args)))


def test_cli_values_are_read_by_the_type_of_their_key():
    """Not as YAML would guess: a path or a name is verbatim, a float takes 1e-3, a list splits on commas."""
    cfg = _typed("epochs=3", "deterministic=true", "data.size=null", "data.root=x/y", "optim.lr=0.5")
    assert (cfg.epochs, cfg.deterministic, cfg.data.size, cfg.data.root, cfg.optim.lr) == (3, True, None, "x/y", 0.5)
    assert _typed("optim.lr=1e-3").optim.lr == 0.001  # YAML 1.1 would leave "1e-3" a string
    assert _typed("out=runs/exp #2").out == "runs/exp #2"  # YAML would drop " #2" as a comment
    assert _typed("out=0755").out == "0755" and _typed("out=0x1F").out == "0x1F"  # not the ints 493 and 31
    assert _typed("out=&a b").out == "&a b"  # not the anchor "&a" and "b"
    assert _typed("data.subset_classes=[no,yes]").data.subset_classes == ["no", "yes"]  # not [False, True]
    assert _typed("data.subset_classes=3,7").data.subset_classes == [3, 7]
    assert _typed("model.kwargs.width_mult=0.5").model.kwargs == {"width_mult": 0.5}  # free-form: read as YAML
    for bad in ("epochs=3.5", "deterministic=maybe", "optim.lr=fast"):
        with pytest.raises(ConfigError, match=f"config key '{bad.split('=')[0]}': expected"):
            _typed(bad)
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["epochs"])


def test_recipes_read_exponent_floats(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("optim: {lr: 1e-3, weight_decay: 5e-5}\n")
    cfg = build_config(recipe)
    assert (cfg.optim.lr, cfg.optim.weight_decay) == (0.001, 5e-5)


def test_round_trip_through_dict():
    cfg = build_config(epochs=4, **{"data.root": "/x"})
    assert from_dict(to_dict(cfg)) == cfg
    assert from_dict(to_dict(new_config("classify"))) == new_config("classify")


# --- help and the listing of keys ---------------------------------------------------------------------


def _config_classes():
    """The shared config dataclasses and the section of every registered task."""
    sections = [TASKS.get(name).section for name in list_tasks() if TASKS.get(name).section is not None]
    return [TrainConfig, DataConfig, ModelConfig, OptimConfig, *sections]


@pytest.mark.parametrize("cls", _config_classes(), ids=lambda cls: cls.__name__)
def test_every_range_is_in_the_grammar(cls):
    from zrenie.config import Range

    for f in dataclasses.fields(cls):
        if f.metadata.get("range") is not None:
            assert str(Range.parse(f.metadata["range"])), f"{cls.__name__}.{f.name}"


@pytest.mark.parametrize("cls", _config_classes(), ids=lambda cls: cls.__name__)
def test_every_field_has_one_line_help(cls):
    for f in dataclasses.fields(cls):
        text = f.metadata.get("help")
        assert isinstance(text, str) and text.strip() and "\n" not in text, f"{cls.__name__}.{f.name}"


def test_describe_keys_lists_every_field_once():
    keys = [k.key for k in describe_keys(new_config("classify"))]
    assert len(keys) == len(set(keys))
    expected = {f.name for f in dataclasses.fields(TrainConfig)} - {"data", "model", "optim", "sections"}
    expected |= {f"data.{f.name}" for f in dataclasses.fields(DataConfig)}
    expected |= {f"model.{f.name}" for f in dataclasses.fields(ModelConfig)}
    expected |= {f"optim.{f.name}" for f in dataclasses.fields(OptimConfig)} - {"optim.named"}
    expected |= {f"classify.{f.name}" for f in dataclasses.fields(ClassifyConfig)}
    assert set(keys) == expected


def test_every_listed_key_is_accepted_with_its_listed_value():
    defaults = new_config("classify")
    for info in describe_keys(defaults):
        assert build_config(**{info.key: info.value}) == defaults, info.key


def test_describe_keys_types_values_and_help():
    keys = {k.key: k for k in describe_keys(new_config("classify"))}
    assert [(keys[k].type, keys[k].value) for k in ("epochs", "optim.lr", "data.name", "deterministic")] == [
        ("int", 10), ("float", 0.1), ("str", "digits"), ("bool", False)]
    assert keys["data.size"].type == "int or null" and keys["data.size"].value is None
    assert keys["optim.betas"].type == "list or null"
    assert keys["optim.name"].type == "one of sgd|adamw"
    assert keys["classify.tta"].type == "one of none|flip|five_crop|ten_crop"
    assert (keys["monitor"].value, keys["monitor_mode"].value) == ("val/acc1", "max")  # the task's defaults
    assert str(keys["data.batch_size"].range) == ">= 1" and keys["data.name"].range is None
    assert "0 freezes the weights" in keys["optim.lr"].help


class _TwoOptimisers(Task):
    name = "test_describe_two_optimisers"
    optimizers = {"G": ("G",), "D": ("D",)}
    metric_names = model_specs = build_step = test = predict = lambda *args: None


@pytest.fixture
def two_optimiser_task():
    register_task(_TwoOptimisers)
    yield _TwoOptimisers.name
    TASKS._builders.pop(_TwoOptimisers.name, None)
    TASKS._tags.pop(_TwoOptimisers.name, None)


def test_named_optimiser_keys_are_listed_once(two_optimiser_task):
    cfg = build_config(task=two_optimiser_task, **{"optim.D.lr": 2e-4})
    keys = {k.key: k for k in describe_keys(cfg)}
    shared = [f.name for f in dataclasses.fields(OptimConfig) if f.name != "named"]
    assert [k for k in keys if k.startswith("optim.<NAME>.")] == [f"optim.<NAME>.{name}" for name in shared]
    lr = keys["optim.<NAME>.lr"]
    assert (lr.type, lr.value, str(lr.range)) == ("float", 0.1, ">= 0")
    assert "G, D" in lr.help and "optim.lr" in lr.help
    assert not any(k.startswith("optim.D.") for k in keys)
    assert "optim.<NAME>.lr" not in {k.key for k in describe_keys(new_config("classify"))}
