"""The estimators a classical-ML run fits (`model=`), each a scikit-learn Pipeline whose last step is "model".

    logreg          zrenie's hand-written LogisticRegression (`zrenie.tasks.classic.LogisticRegression`)
    logreg_sklearn  scikit-learn's LogisticRegression, the reference
    knn             zrenie's KNNClassifier (exact batched search in PyTorch)
    knn_sklearn     scikit-learn's KNeighborsClassifier, the reference
    boost           CatBoost: categorical columns natively, early stopping on the val split

In front of the linear models and kNN, tables get `tabular.preprocessor` (impute, scale, one-hot) and image
features a StandardScaler for the linear models (kNN keeps the pixel distances as they are). CatBoost takes
the table's columns as they are. `classic.params.NAME=` sets the model's keywords, and `classic.grid.NAME=`
lists values for a cross-validated grid search over them.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from zrenie.errors import ConfigError

MODELS = ("logreg", "logreg_sklearn", "knn", "knn_sklearn", "boost")


def model_class(name: str) -> type:
    """The estimator class of `model=name`."""
    if name == "logreg":
        from zrenie.tasks.classic.logreg import LogisticRegression

        return LogisticRegression
    if name == "knn":
        from zrenie.tasks.classic.knn import KNNClassifier

        return KNNClassifier
    if name == "logreg_sklearn":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression
    if name == "knn_sklearn":
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier
    if name == "boost":
        from catboost import CatBoostClassifier

        return CatBoostClassifier
    raise ConfigError(f"config key 'model.name': classic models are {', '.join(MODELS)}; got {name!r}")


def check_names(name: str, keys: list[str], key: str) -> None:
    """One ConfigError naming `key` when a parameter is not one of the estimator's."""
    known = sorted(_valid_params(name))
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ConfigError(f"config key '{key}.{unknown[0]}': {name} has no parameter {unknown[0]!r}; "
                          f"its parameters: {', '.join(known)}")


def _valid_params(name: str) -> set[str]:
    cls = model_class(name)
    if name == "boost":  # CatBoost takes a long list of keywords; these are the ones a course touches
        return {"iterations", "learning_rate", "depth", "l2_leaf_reg", "early_stopping_rounds", "border_count",
                "random_strength", "bagging_temperature", "one_hot_max_size"}
    return set(cls().get_params())


def build_estimator(name: str, params: dict[str, Any], data: Any, seed: int, threads: int) -> Any:
    """The Pipeline of `model=name` for `data` (a `ClassicData`), its model step built with `params`."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    check_names(name, list(params), "classic.params")
    if name == "boost":
        from zrenie.tasks.classic.tabular import catboost_model

        options = {k: v for k, v in params.items() if k in ("iterations", "learning_rate", "depth",
                                                            "early_stopping_rounds")}
        model = catboost_model(data.categorical, thread_count=threads, seed=seed, **options)
        model.set_params(**{k: v for k, v in params.items() if k not in options})
        return Pipeline([("prep", _text_categories(data.categorical)), ("model", model)])
    model = model_class(name)(**_defaults(name, seed), **params)
    if hasattr(model, "_parameter_constraints"):  # scikit-learn's own: values checked now, before any work
        with parameter_errors(name):
            model._validate_params()
    if data.kind == "table":
        from zrenie.tasks.classic.tabular import preprocessor

        return Pipeline([("prep", preprocessor(data.numeric, data.categorical)), ("model", model)])
    if name.startswith("logreg"):
        return Pipeline([("prep", StandardScaler()), ("model", model)])
    return Pipeline([("model", model)])


def _defaults(name: str, seed: int) -> dict[str, Any]:
    if name == "logreg":
        return {"random_state": seed}
    if name == "logreg_sklearn":
        return {"random_state": seed, "max_iter": 1000}
    return {}


def _text_categories(categorical: list[str]) -> Any:
    """The step in front of CatBoost: categorical cells as text, missing ones as a category of their own."""
    from sklearn.preprocessing import FunctionTransformer

    from zrenie.tasks.classic.tabular import categories_as_text

    return FunctionTransformer(categories_as_text, kw_args={"categorical": list(categorical)})


def fit_params(name: str, pipeline: Any, data: Any) -> dict[str, Any]:
    """Keyword arguments of `fit`: CatBoost stops early on the val split and keeps its best trees."""
    if name != "boost":
        return {}
    val_x = pipeline.named_steps["prep"].fit(data.x["val"]).transform(data.x["val"])
    return {"model__eval_set": (val_x, np.asarray(data.y["val"])), "model__use_best_model": True}


def parse_grid(name: str, grid: dict[str, Any]) -> dict[str, list]:
    """`classic.grid.C=0.01,0.1,1` (a comma list, or a YAML list in a recipe) as GridSearchCV's param_grid."""
    import yaml

    check_names(name, list(grid), "classic.grid")
    out = {}
    for key, values in grid.items():
        if isinstance(values, str):
            values = [yaml.safe_load(v.strip()) for v in values.split(",") if v.strip()]
        elif not isinstance(values, (list, tuple)):
            values = [values]
        if not values:
            raise ConfigError(f"config key 'classic.grid.{key}': no values; write e.g. classic.grid.{key}=1,3,5")
        out[f"model__{key}"] = [normalise_value(key, v) for v in values]
    return out


def normalise_value(key: str, value: Any) -> Any:
    """`penalty=none` means no penalty, as YAML's null does."""
    return None if key == "penalty" and isinstance(value, str) and value.lower() == "none" else value


@contextlib.contextmanager
def parameter_errors(name: str) -> Iterator[None]:
    """scikit-learn's and CatBoost's refusals of a parameter value (n_neighbors=0, depth=40) as one ConfigError."""
    from catboost import CatBoostError
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        yield
    except InvalidParameterError as err:
        raise ConfigError(f"{name}: {str(err).splitlines()[0]}") from None
    except CatBoostError as err:  # "path/to/options.cpp:128: Maximum tree depth is 16"
        raise ConfigError(f"{name}: {str(err).rsplit(': ', 1)[-1]}") from None


def check_scoring(scoring: str) -> None:
    from sklearn.metrics import get_scorer_names

    if scoring not in get_scorer_names():
        raise ConfigError(f"config key 'classic.scoring': unknown score {scoring!r}; e.g. accuracy, roc_auc, f1, "
                          f"balanced_accuracy, neg_log_loss (all: sklearn.metrics.get_scorer_names())")


def search(pipeline: Any, grid: dict[str, list], data: Any, cv: int, scoring: str, fit_kwargs: dict[str, Any]) -> Any:
    """scikit-learn's GridSearchCV over `grid` on the train split, refitted on all of it with the best values."""
    from sklearn.model_selection import GridSearchCV

    counts = np.unique(np.asarray(data.y["train"]).astype(str), return_counts=True)[1]
    if cv < 2 or counts.min() < cv:
        raise ConfigError(f"config key 'classic.cv': {cv} folds need at least {cv} training samples of every "
                          f"class (the rarest has {counts.min()}) and cv >= 2")
    # one process: the models use the run's threads themselves, and workers would re-import torch
    searcher = GridSearchCV(pipeline, grid, cv=cv, scoring=scoring, n_jobs=1, refit=True)
    return searcher.fit(data.x["train"], data.y["train"], **fit_kwargs)
