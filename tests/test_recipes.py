"""Every recipe resolves against the typed config: no unknown key, no wrong type."""

from pathlib import Path

import pytest

from zrenie.config import build_config, load_recipe

RECIPES = sorted(Path("recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_resolves(path):
    data = load_recipe(path)
    if "pretrain" in data:  # a transfer study: two configs in one file
        for part in ("pretrain", "target"):
            build_config(**data[part])
    else:
        build_config(path)


def test_recipes_exist_for_the_homeworks():
    names = {p.stem for p in RECIPES}
    assert {"digits_cnn", "hw2_cifar10_cnn", "hw3_food101", "simpsons_imbalanced", "transfer_demo"} <= names
