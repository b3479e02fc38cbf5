"""Ranges of numeric keys, declared in field metadata and checked when the config is built: a value out of range
is one ConfigError naming the key, the value and the rule, whichever task, recipe or stored config it comes from."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from zrenie.config import Range, build_config, describe_keys, from_dict, new_config, to_dict
from zrenie.errors import ConfigError
from zrenie.registry import TASKS
from zrenie.tasks import Task, register_task

KEYS = describe_keys(new_config("classify"))
NUMERIC = [k for k in KEYS if k.type.split(" or ")[0] in ("int", "float")]


def _build(key, value):
    """The config, or the ConfigError's message; any other exception fails the test."""
    try:
        return build_config(**{key: value})
    except ConfigError as err:
        return str(err)


def test_the_walk_sees_the_numeric_keys():
    names = {k.key for k in NUMERIC}
    assert {"data.batch_size", "data.size", "optim.lr", "epochs", "ema", "classify.mixup"} <= names
    assert "data.augment" not in names and "deterministic" not in names


@pytest.mark.parametrize("info", NUMERIC, ids=lambda k: k.key)
def test_every_numeric_key_has_a_range_written_in_its_help(info):
    assert info.range is not None, info.key
    assert str(info.range) in info.help, info.help


@pytest.mark.parametrize("probe", [0, -1, "abc"])
@pytest.mark.parametrize("info", NUMERIC, ids=lambda k: k.key)
def test_numeric_key_accepts_valid_values_and_refuses_others_in_one_line(info, probe):
    valid = not isinstance(probe, str) and probe in info.range
    got = _build(info.key, probe)
    if valid:
        assert not isinstance(got, str), got
        value = got
        for part in info.key.split("."):
            value = getattr(value, part)
        assert value == probe
    else:
        assert isinstance(got, str), f"{info.key}={probe!r} was accepted"
        assert "\n" not in got and got.startswith(f"config key {info.key!r}: expected ")
        assert repr(probe) in got or repr(float(probe)) in got, got


@pytest.mark.parametrize("key, value, message", [
    ("data.batch_size", 0, "config key 'data.batch_size': expected >= 1, got 0"),
    ("data.size", -3, "config key 'data.size': expected >= 1 or null, got -3"),
    ("data.size", 0, "config key 'data.size': expected >= 1 or null, got 0"),
    ("data.workers", -1, "config key 'data.workers': expected >= 0, got -1"),
    ("data.val_fraction", 1, "config key 'data.val_fraction': expected in [0, 1), got 1.0"),
    ("epochs", 0, "config key 'epochs': expected >= 1, got 0"),
    ("optim.lr", -1, "config key 'optim.lr': expected >= 0, got -1.0"),
    ("optim.lr", float("nan"), "config key 'optim.lr': expected >= 0, got nan"),
    ("optim.momentum", 1.5, "config key 'optim.momentum': expected in [0, 1], got 1.5"),
    ("optim.weight_decay", -1e-4, "config key 'optim.weight_decay': expected >= 0, got -0.0001"),
    ("optim.grad_clip", -1, "config key 'optim.grad_clip': expected >= 0, got -1.0"),
    ("optim.accumulate", 0, "config key 'optim.accumulate': expected >= 1, got 0"),
    ("optim.gamma", 0, "config key 'optim.gamma': expected in (0, 1], got 0.0"),
    ("optim.betas", [0.9, 1.0], "config key 'optim.betas': expected each in [0, 1) or null, got [0.9, 1.0]"),
    ("optim.betas", [0.9, "x"], "config key 'optim.betas': expected each in [0, 1) or null, got [0.9, 'x']"),
    ("ema", 1, "config key 'ema': expected in [0, 1), got 1.0"),
    ("log_every", 0, "config key 'log_every': expected >= 1, got 0"),
    ("eval_every", 0, "config key 'eval_every': expected >= 1, got 0"),
    ("precise_bn_batches", 0, "config key 'precise_bn_batches': expected >= 1, got 0"),
    ("classify.label_smoothing", 1, "config key 'classify.label_smoothing': expected in [0, 1), got 1.0"),
    ("classify.mixup", -0.2, "config key 'classify.mixup': expected >= 0 or null, got -0.2"),
    ("classify.cutmix", -1, "config key 'classify.cutmix': expected >= 0 or null, got -1.0"),
])
def test_out_of_range_names_key_value_and_rule(key, value, message):
    with pytest.raises(ConfigError) as err:
        build_config(**{key: value})
    assert str(err.value) == message


@pytest.mark.parametrize("key, value", [
    ("optim.lr", 0.0),  # 0 freezes the weights: a test trains so on purpose to show chance accuracy
    ("data.val_fraction", 0.0), ("data.size", None), ("data.workers", 0), ("optim.momentum", 1.0),
    ("ema", 0.0), ("ema", 0.999), ("classify.mixup", 0.0), ("classify.cutmix", None), ("optim.gamma", 1.0),
    ("optim.betas", [0.5, 0.999]), ("optim.betas", None), ("model.dropout", 0.0),
])
def test_edges_inside_the_range_are_accepted(key, value):
    section, _, name = key.rpartition(".")
    cfg = build_config(**{key: value})
    assert getattr(getattr(cfg, section) if section else cfg, name) == value


def test_a_recipe_or_stored_config_out_of_range_names_the_key(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data:\n  batch_size: 0\n")
    with pytest.raises(ConfigError, match=r"^config key 'data.batch_size': expected >= 1, got 0$"):
        build_config(recipe)
    data = to_dict(new_config("classify"))
    data["optim"]["lr"] = -0.1
    with pytest.raises(ConfigError, match=r"^config key 'optim.lr': expected >= 0, got -0.1$"):
        from_dict(data)


class _TwoOptimisers(Task):
    name = "test_ranges_two_optimisers"
    optimizers = {"G": ("G",), "D": ("D",)}
    metric_names = model_specs = build_step = test = predict = lambda *args: None


def test_named_optimiser_keys_have_the_shared_ranges():
    register_task(_TwoOptimisers)
    try:
        with pytest.raises(ConfigError, match=r"^config key 'optim.D.lr': expected >= 0, got -1.0$"):
            build_config(task=_TwoOptimisers.name, **{"optim.D.lr": -1})
        cfg = build_config(task=_TwoOptimisers.name, **{"optim.D.momentum": 0.5})
        assert cfg.optim.for_name("D").momentum == 0.5
    finally:
        TASKS._builders.pop(_TwoOptimisers.name, None)
        TASKS._tags.pop(_TwoOptimisers.name, None)


@pytest.mark.parametrize("rule, inside, outside", [
    (">= 1", [1, 2, 1e9], [0.999, 0, -1]),
    ("> 0", [1e-12, 3], [0, -1]),
    ("<= 1", [1, -5], [1.001]),
    ("< 1", [0.999], [1]),
    ("in [0, 1]", [0, 0.5, 1], [-1e-9, 1.001]),
    ("in [0, 1)", [0, 0.999], [1, -0.1]),
    ("in (0, 1]", [1, 1e-9], [0, 1.5]),
    ("in (-1, 2.5)", [-0.5, 2.4], [-1, 2.5]),
])
def test_range_rules_read_back_and_bound_their_values(rule, inside, outside):
    allowed = Range.parse(rule)
    assert str(allowed) == rule
    assert all(v in allowed for v in inside)
    assert not any(v in allowed for v in outside + [math.nan, math.inf, -math.inf])


@pytest.mark.parametrize("text", ["1", ">=1", "between 0 and 1", "in [0, 1", ">= x"])
def test_a_malformed_rule_is_refused(text):
    with pytest.raises(ValueError):
        Range.parse(text)


def test_cli_prints_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "r"
    proc = subprocess.run([sys.executable, "-m", "zrenie", "classify", "train", "data=digits", "data.batch_size=0",
                           f"out={out}", "progress=false", "tensorboard=false"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "error: config key 'data.batch_size': expected >= 1, got 0"
    assert not out.exists()
