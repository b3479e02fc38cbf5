"""The tabular pipeline of the churn week: read a table, look at it, preprocess, fit, check, submit.

    read_table        a CSV on disk -> DataFrame (blank cells are missing values)
    split_columns     numeric vs categorical feature columns
    analyse           missing values, class balance, correlations; `plot_correlation`, `plot_balance_missing`
    preprocessor      impute + scale numeric, impute + one-hot categorical (a ColumnTransformer for a linear model)
    fit_catboost      CatBoost with native categorical features, early-stopped on val; `catboost_predict`
    check_categories  categorical values at predict time that training never saw -> DataError
    write_submission  the Kaggle `id,target` CSV, written whole or not at all

pandas loads with this module; scikit-learn, CatBoost and matplotlib inside the functions that use them.
The task package's `__init__` does not import this module, so listing tasks stays light.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
from pandas.api import types as pdtypes

from zrenie.errors import DataError, ShapeError

if TYPE_CHECKING:
    from catboost import CatBoostClassifier
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

# What a missing categorical value becomes before one-hot encoding or CatBoost: a category of its own.
MISSING_CATEGORY = "__missing__"
# An integer column with at most this many distinct values is a code (0/1 like senior_citizen), not a count.
MAX_CODE_VALUES = 2
MAX_LISTED = 5  # unseen values and columns named in one error line


def _columns_list(columns: Sequence[str]) -> str:
    return ", ".join(map(str, columns)) or "none"


def read_table(path: str | Path, target: str | None) -> pd.DataFrame:
    """A CSV file with a header row, as a DataFrame that has the `target` column (None: a table to predict).

    Cells that are empty or only spaces are missing values, and a text column whose other cells are all
    numbers becomes numeric: the real churn set writes a new customer's TotalCharges as " ".

    Raises:
        DataError: the file is missing or unreadable, does not parse as CSV, or lacks `target` (the
            message lists the columns it has).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"table not found: {path}")
    try:
        df = pd.read_csv(path, skipinitialspace=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"table {path} is empty: expected a CSV with a header row") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"table {path} does not parse as CSV: {first}") from None
    if target is not None and target not in df.columns:
        raise DataError(f"table {path} has no target column {target!r}; its columns: {_columns_list(df.columns)}")
    for col in df.columns:
        if not pdtypes.is_numeric_dtype(df[col]) and not pdtypes.is_bool_dtype(df[col]):
            df[col] = _blanks_to_numbers(df[col])
    return df


def _blanks_to_numbers(column: pd.Series) -> pd.Series:
    """Blank strings -> NaN; the column as floats when every other cell is a number."""
    text = column.astype("object")
    blank = text.map(lambda v: isinstance(v, str) and not v.strip())
    if not blank.any():
        return column
    text = text.mask(blank)
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().sum() == text.notna().sum():
        return numbers
    return text


def split_columns(df: pd.DataFrame, target: str, id_col: str | None = "id") -> tuple[list[str], list[str]]:
    """The feature columns of a table, numeric and categorical, in table order.

    A column is categorical when its dtype is text, object, category or bool, or when it is an integer
    column with at most `MAX_CODE_VALUES` (2) distinct values: a 0/1 code such as `senior_citizen` names
    two groups rather than measuring an amount. Integer counts with more values (tenure in months, the
    number of services) stay numeric, as do floats. `target` and `id_col` are not features.

    Returns:
        (numeric, categorical) column names.
    """
    numeric, categorical = [], []
    for col in df.columns:
        if col == target or (id_col is not None and col == id_col):
            continue
        series = df[col]
        if pdtypes.is_bool_dtype(series) or not pdtypes.is_numeric_dtype(series):
            categorical.append(col)
        elif pdtypes.is_integer_dtype(series) and series.nunique(dropna=True) <= MAX_CODE_VALUES:
            categorical.append(col)
        else:
            numeric.append(col)
    return numeric, categorical


@dataclass
class TableAnalysis:
    """What `analyse` finds in a table.

    Attributes:
        num_rows: rows in the table.
        missing: missing cells per column, for every column (zeros included), in table order.
        class_balance: rows per target value, most frequent first.
        correlation: Pearson correlation of the numeric feature columns and the target (when numeric).
    """

    num_rows: int
    missing: dict[str, int]
    class_balance: dict[str, int]
    correlation: pd.DataFrame


def analyse(df: pd.DataFrame, target: str, id_col: str | None = "id") -> TableAnalysis:
    """Missing values per column, the class balance and the correlation matrix of the numeric columns.

    The target joins the correlation matrix when it is numeric (0/1), so each feature's linear
    relation to it is the last row.
    """
    if target not in df.columns:
        raise DataError(f"no target column {target!r}; columns: {_columns_list(df.columns)}")
    numeric, _ = split_columns(df, target, id_col)
    columns = numeric + ([target] if pdtypes.is_numeric_dtype(df[target]) else [])
    balance = df[target].value_counts(dropna=False)
    return TableAnalysis(
        num_rows=len(df),
        missing={str(c): int(n) for c, n in df.isna().sum().items()},
        class_balance={str(k): int(v) for k, v in balance.items()},
        correlation=df[columns].astype(np.float64).corr(),
    )


def plot_correlation(correlation: pd.DataFrame, out_png: str | Path) -> Path:
    """A heat map of a correlation matrix (-1 blue, +1 red) with each value written in its cell."""
    from matplotlib.figure import Figure

    from zrenie.report.plots import save_figure

    names = [str(c) for c in correlation.columns]
    k = len(names)
    fig = Figure(figsize=(1.5 + 0.7 * k, 1.0 + 0.6 * k))
    ax = fig.add_subplot()
    image = ax.imshow(correlation.to_numpy(), cmap="coolwarm", vmin=-1.0, vmax=1.0)
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    for i in range(k):
        for j in range(k):
            value = correlation.iat[i, j]
            if math.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title("correlation of numeric columns")
    fig.tight_layout()
    return save_figure(fig, Path(out_png))


def plot_balance_missing(analysis: TableAnalysis, out_png: str | Path) -> Path:
    """Two bar charts side by side: rows per class, and missing cells per column (columns with any)."""
    from matplotlib.figure import Figure

    from zrenie.report.plots import save_figure

    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    classes = list(analysis.class_balance)
    counts = [analysis.class_balance[c] for c in classes]
    left.bar(classes, counts, color="tab:blue")
    for x, n in enumerate(counts):
        left.text(x, n, f"{n / max(analysis.num_rows, 1):.1%}", ha="center", va="bottom")
    left.set_title("class balance")
    left.set_ylabel("rows")
    missing = {c: n for c, n in analysis.missing.items() if n > 0}
    if missing:
        right.barh(list(missing), list(missing.values()), color="tab:orange")
        right.invert_yaxis()
    else:
        right.text(0.5, 0.5, "no missing values", ha="center", va="center", transform=right.transAxes)
    right.set_title("missing values")
    right.set_xlabel("cells")
    fig.tight_layout()
    return save_figure(fig, Path(out_png))


def categories_as_text(df: pd.DataFrame, categorical: Sequence[str]) -> pd.DataFrame:
    """The categorical columns as Python strings, missing cells as `MISSING_CATEGORY`.

    One-hot encoding and CatBoost then see one kind of value per column (an integer 0/1 code becomes
    "0"/"1"; a code read with missing cells as 1.0 would become "1.0", so codes are written without
    the float's ".0" when they are whole numbers).
    """
    out = df.copy()
    for col in categorical:
        out[col] = [MISSING_CATEGORY if _is_missing(v) else _as_text(v) for v in df[col].tolist()]
        out[col] = out[col].astype(object)
    return out


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def preprocessor(numeric: Sequence[str], categorical: Sequence[str],
                 handle_unknown: str = "ignore") -> "ColumnTransformer":
    """The ColumnTransformer to put in front of a linear model.

    Numeric columns: missing values -> the train median, then `StandardScaler` (zero mean, unit
    variance on train). Categorical columns: missing values -> their own category, then one-hot
    columns in sorted category order; `handle_unknown="ignore"` encodes a value never seen in
    training as all zeros, "error" refuses it (`check_categories` reports unseen values first in
    either case, unless the caller allows them). Output columns: numeric, then the one-hot ones.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    numeric_steps = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical_steps = Pipeline([
        ("as_text", FunctionTransformer(_categories_as_text_all, feature_names_out="one-to-one")),
        ("one_hot", OneHotEncoder(handle_unknown=handle_unknown, sparse_output=False)),
    ])
    return ColumnTransformer([("numeric", numeric_steps, list(numeric)),
                              ("categorical", categorical_steps, list(categorical))],
                             remainder="drop", verbose_feature_names_out=False)


def _categories_as_text_all(df: pd.DataFrame) -> pd.DataFrame:
    # A module-level function (not a lambda), so a fitted pipeline pickles.
    return categories_as_text(df, list(df.columns))


def linear_pipeline(numeric: Sequence[str], categorical: Sequence[str], model: Any,
                    handle_unknown: str = "ignore") -> "Pipeline":
    """`preprocessor` followed by `model` (any scikit-learn-shaped classifier) as one Pipeline.

    Its steps are named "prep" and "model", so a grid over C is `{"model__C": [...]}` for `GridSearchCV`.
    """
    from sklearn.pipeline import Pipeline

    return Pipeline([("prep", preprocessor(numeric, categorical, handle_unknown)), ("model", model)])


def catboost_model(categorical: Sequence[str], iterations: int = 2000, learning_rate: float = 0.03,
                   depth: int = 6, early_stopping_rounds: int | None = 200, thread_count: int = 2,
                   seed: int = 0) -> "CatBoostClassifier":
    """An unfitted `catboost.CatBoostClassifier` that takes the `categorical` columns natively (by name).

    CatBoost encodes each category by ordered target statistics inside the boosting, so no one-hot
    columns are needed and interactions between categories are found by the trees. The defaults
    (depth 6, learning rate 0.03, up to 2,000 trees stopped 200 trees after the best validation AUC)
    fit the 15,000-row built-in `churn` in about 10 s on 2 cores.
    """
    from catboost import CatBoostClassifier

    return CatBoostClassifier(iterations=iterations, learning_rate=learning_rate, depth=depth,
                              cat_features=list(categorical), eval_metric="AUC",
                              early_stopping_rounds=early_stopping_rounds, thread_count=thread_count,
                              random_seed=seed, verbose=False, allow_writing_files=False)


def fit_catboost(train_x: pd.DataFrame, train_y: Sequence[int] | np.ndarray, categorical: Sequence[str],
                 val_x: pd.DataFrame | None = None, val_y: Sequence[int] | np.ndarray | None = None,
                 **options: Any) -> tuple["CatBoostClassifier", dict[str, float]]:
    """Fits `catboost_model(categorical, **options)`; with a val split, keeps the trees up to its best AUC.

    Args:
        train_x: the feature columns (no target, no id); missing categorical cells become `MISSING_CATEGORY`.
        train_y: 0/1 per row.
        categorical: the names of the categorical columns among `train_x`'s.
        val_x, val_y: the early-stopping split, or None to grow every tree.
        options: `catboost_model` keywords (iterations, learning_rate, thread_count, seed, ...).

    Returns:
        The fitted model and its feature importances (name -> share of the loss change, summing to
        100), largest first.
    """
    model = catboost_model(categorical, **options)
    eval_set = None
    if val_x is not None and val_y is not None:
        eval_set = (categories_as_text(val_x, categorical), np.asarray(val_y))
    model.fit(categories_as_text(train_x, categorical), np.asarray(train_y), eval_set=eval_set,
              use_best_model=eval_set is not None)
    importances = dict(zip(model.feature_names_, map(float, model.get_feature_importance())))
    return model, dict(sorted(importances.items(), key=lambda kv: -kv[1]))


def catboost_predict(model: "CatBoostClassifier", x: pd.DataFrame, categorical: Sequence[str]) -> np.ndarray:
    """The fitted model's probability of class 1 for each row: float64 [N]."""
    return np.asarray(model.predict_proba(categories_as_text(x, categorical))[:, 1], dtype=np.float64)


def check_categories(train_df: pd.DataFrame, new_df: pd.DataFrame, categorical: Sequence[str],
                     allow_unseen: bool = False) -> dict[str, list[str]]:
    """The values of each categorical column of `new_df` that `train_df` never has.

    Values are compared as `categories_as_text` writes them (so a code 1 and 1.0 are the same value);
    missing cells are not unseen values, both models give them a category of their own.

    Args:
        allow_unseen: return the unseen values instead of raising; one-hot with
            `handle_unknown="ignore"` encodes them as all zeros and CatBoost as an unknown category.

    Returns:
        `{column: sorted unseen values}` for the columns that have any (empty when none do).

    Raises:
        DataError: `new_df` lacks one of the columns, or (unless `allow_unseen`) a column has unseen
            values: one line naming the columns and a few of their values.
    """
    absent = [c for c in categorical if c not in new_df.columns]
    if absent:
        raise DataError(f"the table to predict lacks the categorical column(s) {_columns_list(absent)}; "
                        f"its columns: {_columns_list(new_df.columns)}")
    train_text = categories_as_text(train_df[list(categorical)], categorical)
    new_text = categories_as_text(new_df[list(categorical)], categorical)
    unseen = {}
    for col in categorical:
        values = set(new_text[col]) - set(train_text[col]) - {MISSING_CATEGORY}
        if values:
            unseen[col] = sorted(values)
    if unseen and not allow_unseen:
        parts = []
        for col, values in list(unseen.items())[:MAX_LISTED]:
            more = f" and {len(values) - MAX_LISTED} more" if len(values) > MAX_LISTED else ""
            parts.append(f"{col!r}: {', '.join(map(repr, values[:MAX_LISTED]))}{more}")
        raise DataError(f"categorical values never seen in training: {'; '.join(parts)}"
                        " (--allow-unseen encodes them as unknown)")
    return unseen


def write_submission(path: str | Path, ids: Sequence[Any] | np.ndarray, probs: Sequence[float] | np.ndarray) -> Path:
    """Writes the Kaggle submission: a header `id,target`, then one row per id with its probability.

    The file is written beside `path` under a temporary name and renamed over it, so a reader never
    sees half a file. Probabilities are written in full (`repr`), so reading them back gives the same floats.

    Raises:
        ShapeError: `ids` and `probs` differ in length.
        DataError: a probability is not a finite number in [0, 1].
    """
    from zrenie.config import atomic_path

    ids = list(np.asarray(ids).tolist())
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if len(ids) != len(probs):
        raise ShapeError(f"submission {path}: {len(ids)} ids but {len(probs)} probabilities")
    bad = ~(np.isfinite(probs) & (probs >= 0) & (probs <= 1))
    if bad.any():
        raise DataError(f"submission {path}: {int(bad.sum())} probabilities are not in [0, 1], "
                        f"e.g. {probs[bad][0]!r} for id {ids[int(np.flatnonzero(bad)[0])]!r}")
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "target"])
            writer.writerows((i, repr(float(p))) for i, p in zip(ids, probs))
    return path
