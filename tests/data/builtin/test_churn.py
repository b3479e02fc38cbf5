"""Tests of the built-in churn table: the stated logistic model recomputed by hand, the AUC against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from zrenie.data.builtin import churn as C
from zrenie.errors import ConfigError, DataError

CATEGORIES = {
    "gender": {"Female", "Male"},
    "partner": {"Yes", "No"},
    "dependents": {"Yes", "No"},
    "phone_service": {"Yes", "No"},
    "internet_service": {"DSL", "Fiber optic", "No"},
    "online_security": {"Yes", "No", "No internet service"},
    "tech_support": {"Yes", "No", "No internet service"},
    "streaming_tv": {"Yes", "No", "No internet service"},
    "contract": {"Month-to-month", "One year", "Two year"},
    "paperless_billing": {"Yes", "No"},
    "payment_method": {"Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"},
}


def _stated_probability(row: dict) -> float:
    """The churn probability of one customer, term by term as the module docstring states it."""
    t = row["tenure_months"]
    mtm = row["contract"] == "Month-to-month"
    fiber = row["internet_service"] == "Fiber optic"
    m = (row["monthly_charges"] - 65) / 30
    z = -1.70
    z += 1.70 * mtm - 0.80 * (row["contract"] == "Two year")
    z += 0.20 * fiber - 0.70 * (row["internet_service"] == "No")
    z += 1.50 * (mtm and fiber)
    z += -0.25 * math.log(1 + t)
    z += -0.55 * mtm * math.log(1 + t)
    z += 0.25 * max(0, 6 - t)
    z += 0.60 * (row["payment_method"] == "Electronic check")
    z += -0.45 * (row["online_security"] == "Yes") - 0.45 * (row["tech_support"] == "Yes")
    z += 0.60 * (fiber and row["tech_support"] == "No" and row["senior_citizen"] == 1)
    z += 0.35 * (row["paperless_billing"] == "Yes")
    z += -0.25 * (row["partner"] == "Yes")
    z += 0.80 * m * m
    return 1 / (1 + math.exp(-z))


def test_same_seed_same_table_other_seed_another():
    a, pa = C.churn_table(500, seed=3)
    b, pb = C.churn_table(500, seed=3)
    pd.testing.assert_frame_equal(a, b)
    np.testing.assert_array_equal(pa, pb)
    other, _ = C.churn_table(500, seed=4)
    assert not a.drop(columns="id").equals(other.drop(columns="id"))


def test_columns_types_and_values():
    df, probs = C.churn_table(2000, seed=0)
    assert list(df.columns)[0] == "id" and list(df.columns)[-1] == "target"
    assert df["id"].is_unique
    for col in ("tenure_months", "num_services", "senior_citizen", "target", "id"):
        assert pd.api.types.is_integer_dtype(df[col]), col
    for col in ("monthly_charges", "total_charges"):
        assert pd.api.types.is_float_dtype(df[col]), col
    for col, values in CATEGORIES.items():
        assert not pd.api.types.is_numeric_dtype(df[col]), col
        assert set(df[col]) == values, col
    assert set(df["senior_citizen"]) == {0, 1} and set(df["target"]) == {0, 1}
    assert df["tenure_months"].between(0, 72).all()
    no_internet = df["internet_service"] == "No"
    assert (df.loc[no_internet, "tech_support"] == "No internet service").all()
    assert (df.loc[no_internet, "phone_service"] == "Yes").all()  # everyone has some service
    services = ((df["phone_service"] == "Yes").astype(int) + (~no_internet)
                + sum((df[c] == "Yes").astype(int) for c in ("online_security", "tech_support", "streaming_tv")))
    np.testing.assert_array_equal(df["num_services"], services)
    assert probs.shape == (2000,) and ((probs > 0) & (probs < 1)).all()


def test_total_charges_missing_exactly_for_new_customers():
    df, _ = C.churn_table(3000, seed=1)
    new = df["tenure_months"] == 0
    assert new.sum() > 0
    np.testing.assert_array_equal(df["total_charges"].isna(), new)
    old = df[~new]
    ratio = old["total_charges"] / (old["tenure_months"] * old["monthly_charges"])
    assert ratio.between(0.75, 1.3).all()  # tenure x monthly with a few percent of noise


def test_default_table_churns_a_quarter_to_30_percent():
    df, probs = C.churn_table(seed=0)
    assert len(df) == C.DEFAULT_NUM_ROWS
    assert 0.25 <= df["target"].mean() <= 0.30
    assert abs(df["target"].mean() - probs.mean()) < 0.01


def test_probabilities_follow_the_stated_formula():
    df, probs = C.churn_table(400, seed=5)
    expected = [_stated_probability(row) for row in df.to_dict("records")]
    np.testing.assert_allclose(probs, expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(C.churn_probability(df), expected, rtol=1e-12, atol=0)


def test_bayes_auc_equals_sklearn_with_and_without_ties():
    df, probs = C.churn_table(1500, seed=2)
    y = df["target"].to_numpy()
    assert C.bayes_auc(probs, y) == pytest.approx(roc_auc_score(y, probs), abs=1e-12)
    coarse = np.round(probs, 1)  # many ties
    assert C.bayes_auc(coarse, y) == pytest.approx(roc_auc_score(y, coarse), abs=1e-12)
    with pytest.raises(DataError, match="both classes"):
        C.bayes_auc(probs[:3], np.ones(3))


def test_split_partitions_the_rows_and_keeps_the_churn_rate():
    df, _ = C.churn_table(2000, seed=0)
    y = df["target"].to_numpy()
    split = C.churn_split(y, seed=0)
    assert set(split) == {"train", "val", "test"}
    joined = np.concatenate(list(split.values()))
    np.testing.assert_array_equal(np.sort(joined), np.arange(len(df)))
    assert len(split["test"]) == pytest.approx(C.TEST_FRACTION * len(df), abs=2)
    assert len(split["val"]) == pytest.approx(C.VAL_FRACTION * len(df), abs=2)
    for idx in split.values():
        assert y[idx].mean() == pytest.approx(y.mean(), abs=0.01)
    again = C.churn_split(y, seed=0)
    for k in split:
        np.testing.assert_array_equal(split[k], again[k])
    with pytest.raises(ConfigError, match="test_fraction"):
        C.churn_split(y, test_fraction=0.6, val_fraction=0.5)
    with pytest.raises(ConfigError, match="num_rows"):
        C.churn_table(0)
