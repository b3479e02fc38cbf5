"""`zrenie classic`: the classical-ML warm-up as runs with a folder, config.yaml, results.json and report.html.

    zrenie classic logreg data=churn penalty=l2 C=1.0
    zrenie classic boost data=churn.csv target=Churn
    zrenie classic knn data=digits n_neighbors=3
    zrenie classic search data=digits model=knn grid.n_neighbors=1,3,5,7
    zrenie classic submit runs/boost test.csv

Each verb is `train` with its model (`search` with a grid): the task owns its loop (`Task.run`), so the API
still makes, checks and keeps the run folder. The fitted pipeline is pickled in `model.pkl`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zrenie.config import TrainConfig
from zrenie.errors import ConfigError
from zrenie.tasks import Task, Verb, register_task


@dataclass
class ClassicConfig:
    target: str = field(default="target", metadata={"help": "the label column of a CSV table (data=FILE.csv)"})
    id_column: str = field(default="id", metadata={
        "help": "the id column of a table, not a feature: the first column of submission.csv"})
    features: str = field(default="pixels", metadata={
        "help": "image features: raw pixels, HOG (scikit-image), or embed (a trained run's penultimate layer)",
        "choices": ("pixels", "hog", "embed")})
    embed_run: str | None = field(default=None, metadata={"help": "the run whose network embeds images "
                                                                  "(features=embed)"})
    params: dict = field(default_factory=dict, metadata={
        "help": "the model's keywords, e.g. classic.params.C=0.5 (short: C=0.5, penalty=, n_neighbors=)"})
    grid: dict = field(default_factory=dict, metadata={
        "help": "values to search by cross-validation, e.g. classic.grid.C=0.01,0.1,1 (short: grid.C=)"})
    cv: int = field(default=5, metadata={"help": "cross-validation folds of the grid search", "range": ">= 2"})
    scoring: str | None = field(default=None, metadata={
        "help": "the grid search's score (scikit-learn's names); default roc_auc for two classes, else accuracy"})
    test_fraction: float = field(default=0.2, metadata={"help": "share of a table held out as test",
                                                        "range": "in (0, 1)"})


def _run_verb(model: str | None, needs_grid: bool = False):
    def run(ns: Any, api: Any) -> int:
        from zrenie.config import is_recipe, parse_overrides

        recipe = next((arg for arg in ns.args if is_recipe(arg)), None)
        overrides = parse_overrides([arg for arg in ns.args if arg != recipe])
        if model is not None:
            overrides.setdefault("model", model)
        if needs_grid and not any(k.startswith(("grid.", "classic.grid")) for k in overrides) and recipe is None:
            raise ConfigError("search needs a grid: e.g. grid.n_neighbors=1,3,5,7 or classic.grid.C=0.01,0.1,1")
        api.train("classic", recipe, **overrides)
        return 0

    return run


def _train_verb(help_text: str, model: str | None, examples: list[str], needs_grid: bool = False) -> Verb:
    args = [(("args",), {"nargs": "*", "metavar": "[recipe] key=value",
                         "help": "config overrides (zrenie classic keys), e.g. data=churn C=0.5"})]
    return Verb(help=help_text, arguments=args, run=_run_verb(model, needs_grid), examples=examples)


def _submit(ns: Any, api: Any) -> int:
    from zrenie.tasks.classic.fit import submit

    path = submit(ns.run, ns.table, ns.out, ns.allow_unseen)
    print(f"wrote {path}")
    return 0


VERBS = {
    "logreg": _train_verb("the hand-written logistic regression (model=logreg_sklearn: scikit-learn's)", "logreg",
                          ["zrenie classic logreg data=churn penalty=l2 C=1.0",
                           "zrenie classic logreg data=digits solver=minibatch classic.params.batch_size=64"]),
    "knn": _train_verb("k nearest neighbours on image features or a table (model=knn_sklearn: scikit-learn's)", "knn",
                       ["zrenie classic knn data=digits n_neighbors=3",
                        "zrenie classic knn data=shapes data.size=32 classic.features=hog"]),
    "boost": _train_verb("CatBoost with native categorical columns, early-stopped on val", "boost",
                         ["zrenie classic boost data=churn", "zrenie classic boost data=churn.csv target=Churn"]),
    "search": _train_verb("grid search with cross-validation over any model's parameters", None,
                          ["zrenie classic search data=digits model=knn grid.n_neighbors=1,3,5,7",
                           "zrenie classic search data=churn model=logreg grid.C=0.01,0.1,1,10 grid.penalty=l1,l2"],
                          needs_grid=True),
    "submit": Verb(help="predict a table with a trained run: a Kaggle submission CSV (id,target)",
                   arguments=[(("run",), {"help": "run directory"}),
                              (("table",), {"help": "CSV with the training columns (the target may be absent)"}),
                              (("--out",), {"default": None, "help": "output CSV (default: RUN/submission_TABLE.csv)"}),
                              (("--allow-unseen",), {"action": "store_true",
                                                     "help": "encode categories never seen in training as unknown"})],
                   run=_submit, examples=["zrenie classic submit runs/boost test.csv --out submission.csv"]),
}


@register_task
class ClassicTask(Task):
    """Classical machine learning on tables and image features, with the run folder and report of every task."""

    name = "classic"
    section = ClassicConfig
    verbs = VERBS
    engine_verbs = ("train", "keys")  # no checkpoints: `submit` predicts with model.pkl
    defaults = {"data.name": "churn", "model.name": "logreg"}
    aliases = {"target": "classic.target", "features": "classic.features", "grid": "classic.grid",
               "C": "classic.params.C", "penalty": "classic.params.penalty", "solver": "classic.params.solver",
               "n_neighbors": "classic.params.n_neighbors", "weights": "classic.params.weights"}
    monitor = ("val/accuracy", "max")

    def run(self, cfg: TrainConfig, run_dir: Path) -> dict[str, Any]:
        from zrenie.tasks.classic.fit import fit_run

        return fit_run(cfg, run_dir)
