import pytest

from zrenie.config import build_config, from_dict, new_config, parse_overrides, to_dict
from zrenie.errors import ConfigError


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


def test_cli_values_parse_like_yaml():
    assert parse_overrides(["a=3", "b=true", "c=null", "d=x/y", "e=0.5"]) == {
        "a": 3, "b": True, "c": None, "d": "x/y", "e": 0.5}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["epochs"])


def test_round_trip_through_dict():
    cfg = build_config(epochs=4, **{"data.root": "/x"})
    assert from_dict(to_dict(cfg)) == cfg
    assert from_dict(to_dict(new_config("classify"))) == new_config("classify")
