"""One classical-ML run: load, (search,) fit, score val and test, write model.pkl, plots, submission and report."""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np

from zrenie.config import TrainConfig, atomic_path
from zrenie.errors import CheckpointError, DataError
from zrenie.report.html import Section

MODEL_FILE = "model.pkl"
SUBMISSION_FILE = "submission.csv"


def fit_run(cfg: TrainConfig, run_dir: Path) -> dict[str, Any]:
    """Fits `model.name` on the train split (a grid search first when `classic.grid` is set) and tests it."""
    from zrenie.tasks.classic import estimators
    from zrenie.tasks.classic.data import load_data

    start = time.perf_counter()
    data = load_data(cfg)
    name, own = cfg.model.name, cfg.classic
    params = {k: estimators.normalise_value(k, v) for k, v in own.params.items()}
    pipeline = estimators.build_estimator(name, params, data, cfg.seed, cfg.threads)
    grid = estimators.parse_grid(name, own.grid) if own.grid else None
    scoring = own.scoring or ("roc_auc" if len(data.classes) == 2 else "accuracy")
    estimators.check_scoring(scoring)
    _print_header(cfg, data, scoring if grid else None)
    fit_kwargs = estimators.fit_params(name, pipeline, data)
    searched = None
    with estimators.parameter_errors(name):
        if grid:
            searched = estimators.search(pipeline, grid, data, own.cv, scoring, fit_kwargs)
            pipeline = searched.best_estimator_
            print(f"best  {_plain(searched.best_params_)}  (mean CV {scoring} {searched.best_score_:.4f})")
        else:
            pipeline.fit(data.x["train"], data.y["train"], **fit_kwargs)
    val, test = (score(pipeline, data, split) for split in ("val", "test"))
    wall = time.perf_counter() - start
    print("val   " + "  ".join(f"{k} {v:.4f}" for k, v in val.items()))
    print("test  " + "  ".join(f"{k} {v:.4f}" for k, v in test.items()))
    _save_model(run_dir, pipeline, data, cfg)
    sections = _sections(run_dir, pipeline, data, searched, grid, scoring, test)
    if data.ids and len(data.classes) == 2:
        from zrenie.tasks.classic.tabular import write_submission

        write_submission(run_dir / SUBMISSION_FILE, data.ids["test"], positive_scores(pipeline, data.x["test"]))
    report = None
    if cfg.report:
        from zrenie.config import to_dict
        from zrenie.report.run_report import write_run_report

        info = {"wall_time_s": wall, "counts": data.counts(), "num_classes": len(data.classes)}
        report = write_run_report(run_dir, f"classic: {name} on {cfg.data.name}", _used_config(to_dict(cfg)), test,
                                  sections, info, val_metrics=val, model_file=MODEL_FILE)
    return {"run_dir": run_dir, "val": val, "test": test, "report": report,
            "best_params": None if searched is None else _plain(searched.best_params_)}


USED_KEYS = {"data": ("name", "root", "num_samples", "num_classes", "size", "val_fraction", "seed"),
             "model": ("name",)}


def _used_config(config: dict[str, Any]) -> dict[str, Any]:
    """The keys a classic run reads, for the report (config.yaml keeps them all): the engine's (epochs, optim,
    AMP ...) would only be noise there."""
    shown = {k: config[k] for k in ("task", "out", "seed", "threads", "classic")}
    for section, keys in USED_KEYS.items():
        shown[section] = {k: config[section][k] for k in keys}
    return shown


def _print_header(cfg: TrainConfig, data: Any, scoring: str | None) -> None:
    from zrenie.engine.logging import print_run_header

    counts = data.counts()
    what = (f"{len(data.numeric)} numeric + {len(data.categorical)} categorical columns" if data.kind == "table"
            else f"{cfg.classic.features} features, {data.x['train'].shape[1]} per image")
    rows = [("model", cfg.model.name + (f"  (grid search, {cfg.classic.cv}-fold CV, {scoring})" if scoring else "")),
            ("data", f"{cfg.data.name}: train {counts['train']:,}, val {counts['val']:,}, test {counts['test']:,}; "
                     f"{what}; {len(data.classes)} classes"),
            ("output", str(cfg.out))]
    print_run_header("zrenie classic", rows)


def positive_scores(pipeline: Any, x: Any) -> np.ndarray:
    """The probability of the second class (the positive one of a 0/1 target)."""
    return np.asarray(pipeline.predict_proba(x)[:, 1], dtype=np.float64)


def score(pipeline: Any, data: Any, split: str) -> dict[str, float]:
    """accuracy and log_loss; roc_auc for two classes; and on built-in churn the generating model's AUC."""
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    x, y = data.x[split], np.asarray(data.y[split])
    probs = pipeline.predict_proba(x)
    classes = pipeline.classes_
    out = {"accuracy": float(accuracy_score(y, classes[probs.argmax(1)]))}
    if len(classes) == 2 and len(np.unique(y)) == 2:
        out["roc_auc"] = float(roc_auc_score(y == classes[1], probs[:, 1]))
    out["log_loss"] = float(log_loss(y, np.clip(probs, 1e-15, 1), labels=classes))
    if split in data.truth:
        from zrenie.data.builtin.churn import bayes_auc

        out["generating_auc"] = bayes_auc(data.truth[split], y)
    return out


def _sections(run_dir: Path, pipeline: Any, data: Any, searched: Any, grid: dict | None, scoring: str,
              test: dict[str, float]) -> list[Section]:
    from sklearn.metrics import confusion_matrix

    from zrenie.report.plots import plot_confusion_matrix
    from zrenie.tasks.classic import viz

    sections = _data_sections(run_dir, data)
    if searched is not None:
        png = viz.plot_grid(searched.cv_results_, grid, scoring, run_dir / viz.GRID_PNG)
        sections.append(Section(f"Grid search ({scoring}, {searched.n_splits_}-fold CV)",
                                images=[png.name] if png else [], table=viz.grid_table(searched.cv_results_),
                                text=f"best: {_plain(searched.best_params_)}, refitted on the whole train split"))
    x, y = data.x["test"], np.asarray(data.y["test"])
    if "roc_auc" in test:
        viz.plot_roc(y == pipeline.classes_[1], positive_scores(pipeline, x), run_dir / viz.ROC_PNG,
                     test["roc_auc"], data.truth.get("test"))
        sections.append(Section("ROC curve (test)", images=[viz.ROC_PNG]))
    cm = confusion_matrix(y, pipeline.predict(x), labels=pipeline.classes_)
    plot_confusion_matrix(cm, [str(c) for c in pipeline.classes_], run_dir / "confusion.png")
    sections.append(Section("Confusion matrix (test)", images=["confusion.png"]))
    sections.extend(_model_sections(run_dir, pipeline))
    return sections


def _data_sections(run_dir: Path, data: Any) -> list[Section]:
    if data.kind != "table":
        return []
    from zrenie.tasks.classic.tabular import analyse, plot_balance_missing, plot_correlation

    analysis = analyse(data.frame, data.target, data.id_column)
    plot_balance_missing(analysis, run_dir / "balance_missing.png")
    plot_correlation(analysis.correlation, run_dir / "correlation.png")
    return [Section("Data: class balance, missing values, correlations",
                    images=["balance_missing.png", "correlation.png"],
                    table={"rows": len(data.frame), "numeric columns": ", ".join(data.numeric),
                           "categorical columns": ", ".join(data.categorical)})]


def _model_sections(run_dir: Path, pipeline: Any) -> list[Section]:
    """CatBoost's feature importances, a linear model's largest coefficients, the hand-written model's curve."""
    from zrenie.tasks.classic import viz

    model = pipeline.named_steps["model"]
    names = _feature_names(pipeline)
    if hasattr(model, "get_feature_importance"):
        importances = dict(zip(model.feature_names_, map(float, model.get_feature_importance())))
        viz.plot_importance(importances, run_dir / viz.IMPORTANCE_PNG, "importance (% of the loss change)")
        return [Section("Feature importance (CatBoost)", images=[viz.IMPORTANCE_PNG])]
    sections = []
    coef = getattr(model, "coef_", None)
    if coef is not None and names is not None and coef.shape[0] == 1:
        viz.plot_importance(dict(zip(names, coef[0].tolist())), run_dir / viz.IMPORTANCE_PNG,
                            "coefficient (scaled features)")
        sections.append(Section("Largest coefficients", images=[viz.IMPORTANCE_PNG]))
    if getattr(model, "loss_curve_", None):
        unit = "iteration" if model.solver == "gd" else "epoch"
        viz.plot_loss_curve(model.loss_curve_, getattr(model, "val_loss_curve_", None), run_dir / viz.LOSS_PNG, unit)
        sections.append(Section("Loss curve", images=[viz.LOSS_PNG],
                                text=f"{model.n_iter_} {unit}s of solver {model.solver!r}"))
    return sections


def _feature_names(pipeline: Any) -> list[str] | None:
    prep = pipeline.named_steps.get("prep")
    try:
        return [str(n) for n in prep.get_feature_names_out()] if prep is not None else None
    except (AttributeError, ValueError):
        return None


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    return {k.removeprefix("model__"): v.item() if hasattr(v, "item") else v for k, v in params.items()}


def _save_model(run_dir: Path, pipeline: Any, data: Any, cfg: TrainConfig) -> None:
    """model.pkl: the fitted pipeline, the table's columns and the categories training saw (for `submit`)."""
    state = {"format": "zrenie.classic/1", "model": cfg.model.name, "pipeline": pipeline, "classes": data.classes,
             "kind": data.kind, "numeric": data.numeric, "categorical": data.categorical,
             "id_column": data.id_column,
             "categories": {c: sorted(data.x["train"][c].dropna().astype(str).unique()) for c in data.categorical}}
    with atomic_path(run_dir / MODEL_FILE) as tmp, open(tmp, "wb") as f:
        pickle.dump(state, f)


# What a fitted pipeline is made of. Anything else a pickle names (os.system, a module of the file's choosing)
# is refused before it is imported or called; a pickle is still code, so load only runs you trust.
PICKLE_PACKAGES = {"sklearn", "numpy", "scipy", "pandas", "catboost", "zrenie", "collections", "copyreg",
                   "_codecs", "datetime"}
PICKLE_BUILTINS = {"set", "frozenset", "slice", "range", "complex", "bytearray", "dict", "list", "tuple", "int",
                   "float", "str", "bool", "bytes", "object"}
PICKLE_DENIED = ("load", "pickle", "eval", "exec", "system", "popen", "spawn", "runstring", "import")  # in names


class _PipelineUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        package = module.split(".")[0]
        allowed = name in PICKLE_BUILTINS if package == "builtins" else package in PICKLE_PACKAGES
        if not allowed or any(word in name.lower() for word in PICKLE_DENIED):
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a fitted pipeline does not hold")
        return super().find_class(module, name)


def load_model(run: str | Path) -> dict[str, Any]:
    path = Path(run) / MODEL_FILE if Path(run).is_dir() else Path(run)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; a classic run keeps its fitted model in {MODEL_FILE}")
    try:
        with open(path, "rb") as f:
            state = _PipelineUnpickler(f).load()
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path}: refused: {err}") from None
    except (EOFError, AttributeError, ImportError, ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: not a classic model file ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != "zrenie.classic/1":
        raise CheckpointError(f"{path}: not a classic model file")
    return state


def submit(run: str | Path, table: str | Path, out: str | Path | None = None, allow_unseen: bool = False) -> Path:
    """Predicts a CSV with a trained table run: `id,target` with the positive class's probability."""
    import pandas as pd

    from zrenie.tasks.classic.tabular import check_categories, read_table, write_submission

    state = load_model(run)
    if state["kind"] != "table":
        raise DataError(f"{run}: this run learned image features; submit predicts tables")
    frame = read_table(table, None)
    missing = [c for c in state["numeric"] + state["categorical"] if c not in frame.columns]
    if missing:
        raise DataError(f"{table}: lacks the training column(s) {', '.join(missing)}")
    seen = pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in state["categories"].items()})
    check_categories(seen, frame, state["categorical"], allow_unseen)
    id_col = state["id_column"]
    ids = frame[id_col].to_numpy() if id_col and id_col in frame.columns else np.arange(len(frame))
    probs = positive_scores(state["pipeline"], frame[state["numeric"] + state["categorical"]])
    out = Path(out) if out else Path(run) / f"submission_{Path(table).stem}.csv"
    return write_submission(out, ids, probs)
