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


@pytest.mark.slow
def test_transfer_demo_falls_in_the_spread_the_readme_reports(tmp_path):
    """One seed of the shipped study lands inside the min-max of the README's table, row by row."""
    import re

    import zrenie
    from zrenie.tasks.classify.transfer_demo import run_transfer_study

    table = {}
    for line in Path("README.md").read_text().splitlines():
        m = re.match(r"\| (.+?) \| [\d.]+ \| ([\d.]+)-([\d.]+) \| 3 \|", line)
        if m:
            table[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    assert len(table) == 4
    recipe = tmp_path / "study.yaml"
    recipe.write_text(Path("recipes/transfer_demo.yaml").read_text().replace("out: runs/transfer_demo",
                                                                             f"out: {tmp_path / 'out'}"))
    study = run_transfer_study(recipe, zrenie.train, seeds=[0], say=lambda _: None, progress=False,
                               tensorboard=False, report=False)
    for row in study["rows"]:
        low, high = table[row["run"]]
        assert low - 1e-3 <= row["acc1 mean"] <= high + 1e-3, row
