"""What a task adds to the config: its own section (`classify.tta`), the keys it renamed (mapped with a
notice from a recipe, an error naming the new key when typed), named optimiser sections, its defaults,
and the metrics `monitor` may name. Tasks defined here are registered only for the test that uses them."""

from __future__ import annotations

import subprocess
import sys
import warnings
from dataclasses import dataclass, field

import pytest

from zrenie.config import build_config, from_dict, new_config, parse_overrides, to_dict
from zrenie.errors import ConfigError
from zrenie.registry import TASKS
from zrenie.tasks import Task, register_task

TINY = ["data=digits", "data.batch_size=64", "model.width=8", "epochs=1", "progress=false", "tensorboard=false"]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "zrenie", *args], capture_output=True, text=True, timeout=300)


def _assert_one_line_error(proc, pattern):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert pattern in lines[0], lines[0]


# --- the classify section -----------------------------------------------------------------------------


def test_classify_section_key():
    cfg = build_config(**{"classify.tta": "flip"})
    assert cfg.classify.tta == "flip"
    assert new_config("classify").classify.tta == "none"  # the default is untouched by another config


def test_classify_section_bad_choice_names_key_and_choices():
    with pytest.raises(ConfigError) as err:
        build_config(**{"classify.tta": "flop"})
    msg = str(err.value)
    assert "'classify.tta'" in msg and "'flop'" in msg
    for choice in ("none", "flip", "five_crop", "ten_crop"):
        assert choice in msg


def test_to_dict_puts_the_section_under_its_task_and_round_trips():
    cfg = build_config(**{"classify.tta": "ten_crop", "classify.label_smoothing": 0.1, "epochs": 3})
    data = to_dict(cfg)
    assert data["classify"]["tta"] == "ten_crop" and data["classify"]["label_smoothing"] == 0.1
    assert "sections" not in data and "tta" not in data
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a config written now holds no renamed key
        back = from_dict(data)
    assert back == cfg and back.classify.tta == "ten_crop"


def test_recipe_with_old_keys_is_mapped_with_a_notice_per_key(tmp_path):
    recipe = tmp_path / "old.yaml"
    recipe.write_text("tta: flip\noptim:\n  lr: 0.05\n  label_smoothing: 0.1\ndata:\n  name: digits\n  mixup: 0.2\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = build_config(recipe)
    notices = sorted(str(w.message) for w in caught if issubclass(w.category, FutureWarning))
    assert len(notices) == 3, notices
    for old, new in (("tta", "classify.tta"), ("optim.label_smoothing", "classify.label_smoothing"),
                     ("data.mixup", "classify.mixup")):
        assert sum(f"config key {old!r} is now {new!r}" in m for m in notices) == 1, (old, notices)
    assert all(str(recipe) in m for m in notices)
    assert (cfg.classify.tta, cfg.classify.label_smoothing, cfg.classify.mixup) == ("flip", 0.1, 0.2)
    assert (cfg.optim.lr, cfg.data.name) == (0.05, "digits")  # the keys beside them still apply


@pytest.mark.parametrize("overrides, old, new", [
    ({"tta": "flip"}, "tta", "classify.tta"),
    ({"optim.label_smoothing": 0.1}, "optim.label_smoothing", "classify.label_smoothing"),
    ({"data.mixup": 0.2}, "data.mixup", "classify.mixup"),
])
def test_old_keys_typed_by_the_user_are_errors(overrides, old, new):
    with pytest.raises(ConfigError) as err:
        build_config(**overrides)
    assert str(err.value) == f"config key {old!r} is now {new!r}"


def test_old_key_on_the_cli_is_one_line_and_writes_nothing(tmp_path):
    proc = run_cli("classify", "train", *TINY, f"out={tmp_path / 'r'}", "tta=flip")
    _assert_one_line_error(proc, "config key 'tta' is now 'classify.tta'")
    assert not (tmp_path / "r").exists()


def test_monitor_must_name_a_metric_of_the_task(tmp_path):
    proc = run_cli("classify", "train", *TINY, f"out={tmp_path / 'r'}", "monitor=val/acc7")
    _assert_one_line_error(proc, "'val/acc7'")
    line = proc.stderr.strip()
    for name in ("val/loss", "val/acc1", "val/acc5", "val/mean_class_acc"):
        assert name in line
    assert not (tmp_path / "r").exists()


# --- tasks registered by the tests --------------------------------------------------------------------


class _StubTask(Task):
    """The members `register_task` checks; none is called by these config tests."""

    def metric_names(self, cfg, preprocess):
        return ["loss"]

    def build_data(self, cfg):
        raise NotImplementedError

    def model_specs(self, cfg, preprocess):
        return {}

    def build_step(self, cfg, preprocess, splits=None):
        raise NotImplementedError

    def test(self, models, splits, cfg, device, split="test"):
        raise NotImplementedError

    def predict(self, handle, images, names):
        raise NotImplementedError


@dataclass
class SectionConfig:
    alpha: float = 0.5
    mode: str = field(default="a", metadata={"choices": ("a", "b")})


class SectionTask(_StubTask):
    name = "testsection"
    section = SectionConfig


class NamedOptimTask(_StubTask):
    name = "test_named_optim"
    optimizers = {"G": ("G",), "D": ("D",)}


class DefaultsTask(_StubTask):
    name = "test_task_defaults"
    defaults = {"optim.name": "adamw", "optim.lr": 1e-3}


@pytest.fixture
def registered():
    """Registers task classes for one test and removes them after, so no other test sees them."""
    names = []

    def register(cls):
        register_task(cls)
        names.append(cls.name)
        return cls

    yield register
    for name in names:
        TASKS._builders.pop(name, None)
        TASKS._tags.pop(name, None)


def test_section_of_a_test_task(registered):
    registered(SectionTask)
    cfg = build_config(task="testsection", **{"testsection.alpha": 2, "testsection.mode": "b"})
    assert cfg.testsection == SectionConfig(alpha=2.0, mode="b") and isinstance(cfg.testsection.alpha, float)
    assert to_dict(cfg)["testsection"] == {"alpha": 2.0, "mode": "b"}
    assert from_dict(to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="'testsection.mode'"):
        build_config(task="testsection", **{"testsection.mode": "c"})
    with pytest.raises(AttributeError):
        build_config(task="testsection").classify  # a testsection run has no classify section


def test_section_of_another_task_is_refused_naming_that_task(registered):
    registered(SectionTask)
    with pytest.raises(ConfigError) as err:
        build_config(**{"testsection.alpha": 2})
    msg = str(err.value)
    assert "'testsection.alpha'" in msg and "task 'testsection'" in msg and "'classify'" in msg


def test_named_optimisers(registered):
    registered(NamedOptimTask)
    cfg = build_config(task="test_named_optim", **{"optim.D.lr": 2e-4},
                       **parse_overrides(["optim.D.betas=[0.5, 0.999]"]))
    d, g = cfg.optim.for_name("D"), cfg.optim.for_name("G")
    assert d.lr == 2e-4 and d.betas == [0.5, 0.999]
    assert g.lr == cfg.optim.lr == 0.1 and g.betas is None  # G keeps the shared keys
    assert d.momentum == cfg.optim.momentum  # D's keys that were not set are the shared ones
    assert to_dict(cfg)["optim"]["D"] == {"lr": 2e-4, "betas": [0.5, 0.999]}
    assert from_dict(to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="unknown config key 'optim.E.lr'"):
        build_config(task="test_named_optim", **{"optim.E.lr": 1})
    with pytest.raises(ConfigError, match="'optim.D.lr': expected float"):
        build_config(task="test_named_optim", **{"optim.D.lr": "fast"})
    with pytest.raises(ConfigError, match="unknown config key 'optim.D.lr'"):
        build_config(**{"optim.D.lr": 2e-4})  # classify has one optimiser: no named sections


def test_task_defaults_apply_and_recipe_or_override_wins(registered, tmp_path):
    registered(DefaultsTask)
    cfg = build_config(task="test_task_defaults")
    assert (cfg.optim.name, cfg.optim.lr) == ("adamw", 1e-3)
    assert (new_config("classify").optim.name, new_config("classify").optim.lr) == ("sgd", 0.1)  # only that task
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: test_task_defaults\noptim:\n  lr: 0.01\n")
    cfg = build_config(recipe)
    assert (cfg.optim.name, cfg.optim.lr) == ("adamw", 0.01)
    cfg = build_config(recipe, **{"optim.name": "sgd", "optim.lr": 0.2})
    assert (cfg.optim.name, cfg.optim.lr) == ("sgd", 0.2)


@pytest.mark.parametrize("arg", ["optim.lr=2e-4", "optim.D.lr=2e-4"])
def test_exponent_floats_typed_on_the_command_line(registered, arg):
    registered(NamedOptimTask)
    cfg = build_config(task="test_named_optim", **parse_overrides([arg]))
    name = arg.split(".")[1] if arg.count(".") == 2 else "G"
    assert cfg.optim.for_name(name).lr == 2e-4
