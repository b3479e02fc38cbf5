"""The name -> builder registries: a name is registered once, task tags select the models of a task,
and the CLI lists tasks and models from them."""

from __future__ import annotations

import pytest
from torch import nn

import zrenie
from zrenie.cli import main
from zrenie.registry import MODELS, Registry


@pytest.fixture
def cleanup():
    """Names registered by a test, removed from the shared registry after it."""
    names = []
    yield names
    for name in names:
        MODELS._builders.pop(name, None)
        MODELS._tags.pop(name, None)


def test_duplicate_registration_is_refused():
    original = MODELS.get("simple_cnn")
    with pytest.raises(ValueError, match="model 'simple_cnn' is already registered"):
        MODELS.register("simple_cnn")(lambda **kw: nn.Identity())
    assert MODELS.get("simple_cnn") is original  # the first registration still stands

    fresh = Registry("widget")
    fresh.register("a")(len)
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        fresh.register("a")(max)
    assert fresh.get("a") is len and fresh.list() == ["a"]


def test_models_of_a_task():
    classify = zrenie.list_models(task="classify")
    assert {"resnet18", "simple_cnn", "vgg16"} <= set(classify)
    assert classify == sorted(classify)
    assert zrenie.list_models("resnet1*", task="classify") == ["resnet101", "resnet152", "resnet18"]
    assert zrenie.list_models(task="no_such_task") == []


def test_tag_adds_a_task(cleanup):
    name = "test_registry_tagged_net"
    MODELS.register(name)(lambda **kw: nn.Identity())
    cleanup.append(name)
    assert name in zrenie.list_models() and name not in zrenie.list_models(task="test_registry_task")
    MODELS.tag(name, "test_registry_task")
    assert zrenie.list_models(task="test_registry_task") == [name]
    MODELS.tag("simple_cnn", "test_registry_task")
    try:
        assert zrenie.list_models(task="test_registry_task") == sorted(["simple_cnn", name])
        assert MODELS.tags("simple_cnn") == {"classify", "test_registry_task"}  # added to, not replaced
    finally:
        MODELS._tags["simple_cnn"].discard("test_registry_task")


def test_cli_lists_tasks_and_models_of_a_task(capsys):
    assert main(["list", "tasks"]) == 0
    assert "classify" in capsys.readouterr().out.split()
    assert main(["list", "models", "--task", "classify"]) == 0
    names = capsys.readouterr().out.split()
    assert {"resnet18", "simple_cnn", "vgg16"} <= set(names)
    assert names == zrenie.list_models(task="classify")
    assert main(["list", "models", "vgg1?", "--task", "classify"]) == 0
    assert capsys.readouterr().out.split() == ["vgg11", "vgg13", "vgg16", "vgg19"]
