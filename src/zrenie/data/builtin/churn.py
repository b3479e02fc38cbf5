"""Built-in `churn`: a procedural telecom customer table whose churn probability is known exactly.

It imitates the telecom churn table of the course's Kaggle competition: one row per customer with an
`id`, numeric columns, categorical columns as strings, and a 0/1 `target` (the customer left). The
columns, in order:

    id                 int, 100000 upwards
    tenure_months      int 0..72; 0 for a customer who joined this month
    monthly_charges    float, the sum of the services' prices plus noise
    total_charges      float, ~ tenure_months * monthly_charges with noise; missing (NaN) when
                       tenure_months is 0, as the real set leaves TotalCharges blank for new customers
    num_services       int 1..5: phone, internet, online security, tech support, streaming TV
    gender             Female | Male
    senior_citizen     int 0 | 1 (a 0/1 code, as in the real set)
    partner            Yes | No
    dependents         Yes | No
    phone_service      Yes | No
    internet_service   DSL | Fiber optic | No
    online_security    Yes | No | No internet service
    tech_support       Yes | No | No internet service
    streaming_tv       Yes | No | No internet service
    contract           Month-to-month | One year | Two year
    paperless_billing  Yes | No
    payment_method     Electronic check | Mailed check | Bank transfer (automatic) | Credit card (automatic)
    target             int 0 | 1

The generating model. With `t = tenure_months`, `[...]` the 0/1 indicator of a condition and
`m = (monthly_charges - 65) / 30`, the churn probability is `p = 1 / (1 + exp(-z))` with

    z = -1.70
        + 1.70 [contract = Month-to-month] - 0.80 [contract = Two year]
        + 0.20 [internet_service = Fiber optic] - 0.70 [internet_service = No]
        + 1.50 [contract = Month-to-month and internet_service = Fiber optic]
        - 0.25 log(1 + t)
        - 0.55 [contract = Month-to-month] log(1 + t)
        + 0.25 max(0, 6 - t)
        + 0.60 [payment_method = Electronic check]
        - 0.45 [online_security = Yes] - 0.45 [tech_support = Yes]
        + 0.60 [internet_service = Fiber optic and tech_support = No and senior_citizen = 1]
        + 0.35 [paperless_billing = Yes]
        - 0.25 [partner = Yes]
        + 0.80 m^2

(`COEFFICIENTS` holds these numbers; `churn_probability` evaluates them.) Gender, dependents, phone
service, streaming TV, the number of services and total charges have no term of their own: they are
noise columns or proxies of the others. The interactions (month-to-month x fiber, tenure x contract,
fiber without tech support x senior) and the nonlinear terms (log tenure, the first-six-months hinge,
the U in monthly charges) are what a logistic regression on one-hot and scaled columns cannot express;
a gradient-boosted tree ensemble can. Since `target` is drawn from `p`, the best ROC-AUC any model can
reach on a split is the AUC of `p` itself on that split (`bayes_auc`).

The default table has 15,000 rows (churn rate ~27%, AUC of `p` ~0.85); `churn_split` makes the default
split, stratified by `target`: 20% test, 10% val (early stopping), 70% train. This module registers no
dataset: the tabular task reads `churn_table` and `churn_split` itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from zrenie.errors import ConfigError, DataError
from zrenie.registry import DATASETS

if TYPE_CHECKING:  # pandas loads on use: listing datasets imports this module
    import pandas as pd

    from zrenie.config import DataConfig

DEFAULT_NUM_ROWS = 15_000  # CatBoost fits it in ~10 s on 2 cores and gets within 0.005 of the best AUC
TEST_FRACTION = 0.2
VAL_FRACTION = 0.1  # the rest (70%) is train
FIRST_ID = 100_000
MAX_TENURE = 72

# The terms of the churn logit, named after what they multiply (see the module docstring).
COEFFICIENTS = {
    "intercept": -1.70,
    "month_to_month": 1.70,
    "two_year": -0.80,
    "fiber": 0.20,
    "no_internet": -0.70,
    "month_to_month_x_fiber": 1.50,
    "log_tenure": -0.25,  # times log(1 + tenure_months)
    "month_to_month_x_log_tenure": -0.55,
    "first_months_hinge": 0.25,  # times max(0, HINGE_MONTHS - tenure_months)
    "electronic_check": 0.60,
    "online_security": -0.45,
    "tech_support": -0.45,
    "fiber_no_tech_support_x_senior": 0.60,
    "paperless": 0.35,
    "partner": -0.25,
    "charges_squared": 0.80,  # times ((monthly_charges - CHARGES_CENTER) / CHARGES_SCALE) ** 2
}
HINGE_MONTHS = 6
CHARGES_CENTER = 65.0
CHARGES_SCALE = 30.0

CONTRACTS = ("Month-to-month", "One year", "Two year")
CONTRACT_SHARES = (0.55, 0.21, 0.24)
# tenure_months / 72 ~ Beta(a, b) per contract: month-to-month customers are mostly new ones.
TENURE_BETA = {"Month-to-month": (0.7, 2.0), "One year": (1.5, 1.2), "Two year": (2.5, 0.9)}
INTERNET = ("DSL", "Fiber optic", "No")
INTERNET_SHARES = (0.34, 0.44, 0.22)
PAYMENT_METHODS = ("Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)")
PAYMENT_SHARES = (0.34, 0.23, 0.22, 0.21)
NO_INTERNET = "No internet service"
# Monthly price of each service; the charge is their sum plus N(0, CHARGE_NOISE), at least MIN_CHARGE.
PRICES = {"phone": 20.0, "DSL": 25.0, "Fiber optic": 50.0, "online_security": 5.0, "tech_support": 5.0,
          "streaming_tv": 10.0}
CHARGE_NOISE = 3.0
MIN_CHARGE = 18.25
TOTAL_NOISE = 0.05  # total_charges = tenure * monthly * exp(N(0, TOTAL_NOISE)): prices changed over time


def _choice(rng: np.random.Generator, values: tuple[str, ...], shares: tuple[float, ...], n: int) -> np.ndarray:
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=shares)]


def _yes_no(rng: np.random.Generator, p_yes: float | np.ndarray, n: int) -> np.ndarray:
    return np.where(rng.random(n) < p_yes, "Yes", "No").astype(object)


def _customers(num_rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every column but `target`, drawn in a fixed order so that a seed fixes the table."""
    n = num_rows
    gender = np.where(rng.random(n) < 0.5, "Female", "Male").astype(object)
    senior = (rng.random(n) < 0.16).astype(np.int64)
    partner = _yes_no(rng, 0.48, n)
    dependents = _yes_no(rng, np.where(partner == "Yes", 0.45, 0.10), n)
    contract = _choice(rng, CONTRACTS, CONTRACT_SHARES, n)
    a = np.array([TENURE_BETA[c][0] for c in contract])
    b = np.array([TENURE_BETA[c][1] for c in contract])
    tenure = np.rint(MAX_TENURE * rng.beta(a, b)).astype(np.int64)
    internet = _choice(rng, INTERNET, INTERNET_SHARES, n)
    has_internet = internet != "No"
    # Everyone has phone or internet: a customer without internet keeps the phone line.
    phone = np.where(has_internet, _yes_no(rng, 0.9, n), "Yes").astype(object)
    extras = {}
    for name, p_yes in (("online_security", 0.35), ("tech_support", 0.35),
                        ("streaming_tv", np.where(internet == "Fiber optic", 0.55, 0.35))):
        extras[name] = np.where(has_internet, _yes_no(rng, p_yes, n), NO_INTERNET).astype(object)
    paperless = _yes_no(rng, 0.59, n)
    payment = _choice(rng, PAYMENT_METHODS, PAYMENT_SHARES, n)
    monthly = PRICES["phone"] * (phone == "Yes") + np.select(
        [internet == "DSL", internet == "Fiber optic"], [PRICES["DSL"], PRICES["Fiber optic"]], 0.0)
    for name, flag in extras.items():
        monthly = monthly + PRICES[name] * (flag == "Yes")
    monthly = np.round(np.maximum(monthly + rng.normal(0.0, CHARGE_NOISE, n), MIN_CHARGE), 2)
    total = np.round(tenure * monthly * np.exp(rng.normal(0.0, TOTAL_NOISE, n)), 2)
    total = np.where(tenure == 0, np.nan, total)
    num_services = (phone == "Yes").astype(np.int64) + has_internet + sum(f == "Yes" for f in extras.values())
    return {"id": FIRST_ID + np.arange(n, dtype=np.int64), "tenure_months": tenure, "monthly_charges": monthly,
            "total_charges": total, "num_services": num_services.astype(np.int64), "gender": gender,
            "senior_citizen": senior, "partner": partner, "dependents": dependents, "phone_service": phone,
            "internet_service": internet, **extras, "contract": contract, "paperless_billing": paperless,
            "payment_method": payment}


def churn_probability(table: "pd.DataFrame | dict[str, np.ndarray]") -> np.ndarray:
    """The generating churn probability of each row (the logistic model of the module docstring).

    Args:
        table: the churn columns (a DataFrame from `churn_table` or a dict of arrays); `target` is not read.

    Returns:
        float64 [N] in (0, 1).
    """
    c = COEFFICIENTS
    col = {k: np.asarray(table[k]) for k in ("contract", "internet_service", "tenure_months", "payment_method",
                                             "online_security", "tech_support", "senior_citizen",
                                             "paperless_billing", "partner", "monthly_charges")}
    mtm = col["contract"] == "Month-to-month"
    fiber = col["internet_service"] == "Fiber optic"
    log_tenure = np.log1p(col["tenure_months"].astype(np.float64))
    no_tech = col["tech_support"] == "No"
    m = (col["monthly_charges"].astype(np.float64) - CHARGES_CENTER) / CHARGES_SCALE
    z = (c["intercept"]
         + c["month_to_month"] * mtm + c["two_year"] * (col["contract"] == "Two year")
         + c["fiber"] * fiber + c["no_internet"] * (col["internet_service"] == "No")
         + c["month_to_month_x_fiber"] * (mtm & fiber)
         + c["log_tenure"] * log_tenure + c["month_to_month_x_log_tenure"] * mtm * log_tenure
         + c["first_months_hinge"] * np.maximum(0, HINGE_MONTHS - col["tenure_months"])
         + c["electronic_check"] * (col["payment_method"] == "Electronic check")
         + c["online_security"] * (col["online_security"] == "Yes") + c["tech_support"] * (col["tech_support"] == "Yes")
         + c["fiber_no_tech_support_x_senior"] * (fiber & no_tech & (col["senior_citizen"] == 1))
         + c["paperless"] * (col["paperless_billing"] == "Yes") + c["partner"] * (col["partner"] == "Yes")
         + c["charges_squared"] * m**2)
    return 1.0 / (1.0 + np.exp(-z))


def churn_table(num_rows: int = DEFAULT_NUM_ROWS, seed: int = 0) -> tuple["pd.DataFrame", np.ndarray]:
    """The customer table and the probability each `target` was drawn from; the same seed gives the same table.

    Args:
        num_rows: number of customers (rows).
        seed: seeds every column and the draw of `target`.

    Returns:
        The DataFrame (columns as in the module docstring, `target` last) and float64 [num_rows], the
        generating churn probability of each row.
    """
    import pandas as pd

    if int(num_rows) < 1:
        raise ConfigError(f"churn: num_rows must be at least 1, got {num_rows}")
    rng = np.random.default_rng(seed)
    columns = _customers(int(num_rows), rng)
    probs = churn_probability(columns)
    columns["target"] = (rng.random(int(num_rows)) < probs).astype(np.int64)
    return pd.DataFrame(columns), probs


def churn_split(target: np.ndarray, seed: int = 0, test_fraction: float = TEST_FRACTION,
                val_fraction: float = VAL_FRACTION) -> dict[str, np.ndarray]:
    """The default train/val/test split of a churn table, stratified by `target`.

    Args:
        target: int [N] the 0/1 target column.
        seed: same seed, same split.
        test_fraction: share of each class in test (20% by default).
        val_fraction: share of each class in val (10%); train takes the rest.

    Returns:
        `{"train": idx, "val": idx, "test": idx}`, sorted int64 row positions that partition range(N).
    """
    if test_fraction < 0 or val_fraction < 0 or test_fraction + val_fraction >= 1:
        raise ConfigError(f"churn split: test_fraction {test_fraction} and val_fraction {val_fraction} must be "
                          "non-negative and leave rows for train")
    target = np.asarray(target)
    rng = np.random.default_rng([seed, 1])  # its own stream: the split does not shift when the table grows
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for cls in np.unique(target):
        idx = rng.permutation(np.flatnonzero(target == cls))
        n_test, n_val = round(test_fraction * len(idx)), round(val_fraction * len(idx))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    return {k: np.sort(np.concatenate(v)).astype(np.int64) if v else np.zeros(0, np.int64) for k, v in parts.items()}


def bayes_auc(probs: np.ndarray, target: np.ndarray) -> float:
    """ROC-AUC of scores against 0/1 targets: with the generating `probs`, the best any model reaches.

    The Mann-Whitney form: the chance that a random positive scores above a random negative, ties
    counting one half (average ranks).

    Args:
        probs: float [N] scores, e.g. `churn_probability` of the split's rows.
        target: int [N] 0/1.
    """
    probs = np.asarray(probs, dtype=np.float64)
    target = np.asarray(target).astype(bool)
    n_pos, n_neg = int(target.sum()), int((~target).sum())
    if n_pos == 0 or n_neg == 0:
        raise DataError(f"ROC-AUC needs both classes; got {n_pos} positives and {n_neg} negatives")
    order = np.argsort(probs, kind="mergesort")
    sorted_probs = probs[order]
    ranks = np.empty(len(probs), dtype=np.float64)
    # Average rank (1-based) over each run of equal scores.
    starts = np.flatnonzero(np.r_[True, sorted_probs[1:] != sorted_probs[:-1]])
    ends = np.r_[starts[1:], len(probs)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[target].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@DATASETS.register("churn", tags=("table",))
def churn(cfg: "DataConfig", target: str = "table") -> tuple["pd.DataFrame", np.ndarray]:
    """The customer table of `data.num_samples` rows (default 15,000) seeded by `data.seed`, for `zrenie classic`
    (a table, not images: image tasks are refused by the catalog); returns `churn_table`'s frame and probabilities."""
    return churn_table(cfg.num_samples or DEFAULT_NUM_ROWS, cfg.seed)
