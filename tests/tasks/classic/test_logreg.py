"""The hand-written logistic regression against scikit-learn's `LogisticRegression` (coefficients, predictions,
grid search), its gradient against autograd and finite differences, its stochastic solvers and stopping rules."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression as SklearnLogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.preprocessing import StandardScaler

from zrenie.tasks.classic.logreg import (
    LogisticRegression,
    penalty_weights,
    smooth_gradient,
    smooth_objective,
    soft_threshold,
)

PENALTIES = ["l2", "l1", "elasticnet", None]
# scikit-learn 1.8+ spells a penalty with l1_ratio (0: l2, 1: l1, between: elastic-net) and C=inf for none;
# saga is its solver for L1 and elastic-net, lbfgs the fastest for the smooth ones.
SKLEARN_SPELLING = {"l2": dict(l1_ratio=0.0, solver="lbfgs"), "l1": dict(l1_ratio=1.0, solver="saga"),
                    "elasticnet": dict(l1_ratio=0.5, solver="saga"), None: dict(l1_ratio=0.0, solver="lbfgs")}


@pytest.fixture(scope="module")
def breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _noisy(n_classes: int):
    """Overlapping classes (10% flipped labels): the unpenalised optimum is finite, unlike on breast cancer."""
    return make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=n_classes,
                               n_clusters_per_class=1, flip_y=0.1, random_state=0)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("penalty", PENALTIES)
def test_coefficients_match_sklearn(penalty, n_classes, breast_cancer):
    X, y = breast_cancer if (n_classes == 2 and penalty is not None) else _noisy(n_classes)
    C = 0.1
    ref = SklearnLogisticRegression(C=np.inf if penalty is None else C, tol=1e-10, max_iter=100_000,
                                    **SKLEARN_SPELLING[penalty]).fit(X, y)
    ours = LogisticRegression(penalty=penalty, C=C, l1_ratio=0.5 if penalty == "elasticnet" else None,
                              tol=1e-8, max_iter=20_000).fit(X, y)
    assert ours.coef_.shape == ref.coef_.shape == ((1, X.shape[1]) if n_classes == 2 else (3, X.shape[1]))
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-3)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-3)
    assert (ours.predict(X) == ref.predict(X)).mean() >= 0.99
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-3)
    np.testing.assert_allclose(ours.decision_function(X), ref.decision_function(X), atol=1e-2)
    if penalty == "l1":  # the proximal step gives exact zeros where scikit-learn's does
        np.testing.assert_array_equal(ours.coef_ == 0, np.abs(ref.coef_) < 1e-6)


class _HandGradient(torch.autograd.Function):
    """`smooth_objective` whose backward is `smooth_gradient`, for gradcheck to test against finite differences."""

    @staticmethod
    def forward(ctx, W, b, X, Y, C, l2):
        ctx.save_for_backward(W, b, X, Y)
        ctx.C, ctx.l2 = C, l2
        return smooth_objective(W, b, X, Y, C, l2)

    @staticmethod
    def backward(ctx, grad):
        g_W, g_b = smooth_gradient(*ctx.saved_tensors, ctx.C, ctx.l2)
        return grad * g_W, grad * g_b, None, None, None, None


@pytest.mark.parametrize("n_classes", [2, 4])
def test_gradient_matches_autograd(n_classes):
    g = torch.Generator().manual_seed(0)
    n, d = 12, 5
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    labels = torch.randint(0, n_classes, (n,), generator=g)
    one_hot = torch.nn.functional.one_hot(labels, n_classes).double()
    Y = one_hot[:, 1:] if n_classes == 2 else one_hot  # (n, 1): is it the second class; (n, K) one-hot
    k = Y.shape[1]
    for penalty in PENALTIES:
        l2 = penalty_weights(penalty, 0.3)[1]
        W = torch.randn(d, k, generator=g, dtype=torch.float64, requires_grad=True)
        b = torch.randn(k, generator=g, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(_HandGradient.apply, (W, b, X, Y, 0.7, l2))
        auto = torch.autograd.grad(smooth_objective(W, b, X, Y, 0.7, l2), (W, b))
        for hand, reference in zip(smooth_gradient(W.detach(), b.detach(), X, Y, 0.7, l2), auto):
            torch.testing.assert_close(hand, reference, rtol=1e-10, atol=1e-12)


def test_soft_threshold_by_hand():
    w = torch.tensor([-3.0, -0.5, 0.2, 1.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(soft_threshold(w, 1.0), torch.tensor([-2.0, 0.0, 0.0, 0.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("solver, options", [("sgd", dict(lr=0.1, schedule="inverse", max_iter=15)),
                                             ("minibatch", dict(batch_size=32, lr=0.5, schedule="cosine",
                                                                max_iter=40))])
def test_stochastic_solvers_reach_sklearn(solver, options, breast_cancer):
    # measured: both agree with scikit-learn on 99.8% of the 569 samples (accuracy 0.982 vs 0.981), last objective
    # 0.11648 vs scikit-learn's optimum 0.11647, max |coef difference| 0.010 (sgd) and 0.008 (minibatch)
    X, y = breast_cancer
    ref = SklearnLogisticRegression(C=0.1, tol=1e-10, max_iter=10_000).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fixed epoch budget, not a converged fit
        ours = LogisticRegression(C=0.1, solver=solver, random_state=0, tol=1e-6, **options).fit(X, y)
    assert (ours.predict(X) == ref.predict(X)).mean() >= 0.99
    assert abs(ours.score(X, y) - ref.score(X, y)) <= 0.01
    curve = ours.loss_curve_
    assert len(curve) == ours.n_iter_ and curve[-1] < curve[0]
    # the last epoch's objective (per sample, as loss_curve_ records it) is within 0.1% of scikit-learn's optimum
    ref_f = _objective_per_sample(ref, X, y, C=0.1)
    assert ref_f <= curve[-1] * (1 + 1e-9) and curve[-1] <= ref_f * 1.001


def _objective_per_sample(model, X, y, C: float) -> float:
    """scikit-learn's objective C sum logloss + ||w||^2 / 2 at `model`'s coefficients, divided by C n."""
    p = model.predict_proba(X)[np.arange(len(y)), y]
    return float(-np.log(p).mean() + 0.5 * (model.coef_**2).sum() / (C * len(y)))


def test_early_stopping(breast_cancer):
    X, y = breast_cancer
    # a tolerance no log-loss can improve by: the rule stops right after n_iter_no_change epochs past the first
    stuck = LogisticRegression(solver="minibatch", early_stopping=True, tol=10.0, n_iter_no_change=3,
                               max_iter=100, random_state=0).fit(X, y)
    assert stuck.n_iter_ == 4 and len(stuck.val_loss_curve_) == 4
    # few noisy samples and almost no penalty: the held-out loss has a minimum and then rises
    Xo, yo = make_classification(n_samples=120, n_features=40, n_informative=2, flip_y=0.1, random_state=0)
    model = LogisticRegression(C=1e4, solver="gd", early_stopping=True, validation_fraction=0.3, n_iter_no_change=5,
                               max_iter=2000, random_state=0).fit(Xo, yo)
    val = model.val_loss_curve_
    assert model.n_iter_ < 2000 and len(val) == model.n_iter_
    assert int(np.argmin(val)) == len(val) - 6  # the best epoch is n_iter_no_change before the last
    # the returned weights are the best epoch's: refitting without early stopping for that many steps gives them
    best = LogisticRegression(C=1e4, solver="gd", max_iter=len(val) - 5, tol=0.0)
    X_train, _, y_train, _ = train_test_split(Xo, yo, test_size=0.3, stratify=yo, random_state=0)  # fit's split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best.fit(X_train, y_train)
    np.testing.assert_allclose(model.coef_, best.coef_, atol=1e-12)


def test_grid_search_picks_sklearns_C(breast_cancer):
    X, y = breast_cancer
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    ours = GridSearchCV(LogisticRegression(), grid, cv=folds, scoring="neg_log_loss").fit(X, y)
    ref = GridSearchCV(SklearnLogisticRegression(), grid, cv=folds, scoring="neg_log_loss").fit(X, y)
    assert ours.best_params_ == ref.best_params_ == {"C": 1.0}
    # both stop at a gradient tolerance of 1e-4 on the per-sample objective; measured: the fold scores differ by
    # at most 0.0019 (at C=10, where each is ~0.001-0.003 from the exact optimum's -0.0969)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"], atol=5e-3)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_string_labels_round_trip(n_classes):
    X, codes = _noisy(n_classes)
    names = np.array(["cat", "dog", "emu"])[:n_classes]
    by_name = LogisticRegression(C=0.1).fit(X, names[codes])
    by_code = LogisticRegression(C=0.1).fit(X, codes)
    assert by_name.classes_.tolist() == names.tolist()
    np.testing.assert_array_equal(by_name.predict(X), names[by_code.predict(X)])
    assert by_name.score(X, names[codes]) == by_code.score(X, codes)


@pytest.mark.parametrize("params, X, y", [
    (dict(penalty="l3"), [[0.0], [1.0]], [0, 1]),
    (dict(solver="adam"), [[0.0], [1.0]], [0, 1]),
    (dict(schedule="warmup"), [[0.0], [1.0]], [0, 1]),
    (dict(penalty="elasticnet"), [[0.0], [1.0]], [0, 1]),
    (dict(C=0.0), [[0.0], [1.0]], [0, 1]),
    ({}, [0.0, 1.0], [0, 1]),
    ({}, [[0.0], [np.nan]], [0, 1]),
    ({}, [[0.0], ["a"]], [0, 1]),
    ({}, [[0.0], [1.0]], [0, 1, 1]),
    ({}, [[0.0], [1.0]], [[0, 1], [1, 0]]),
    ({}, np.zeros((2, 0)), [0, 1]),
    ({}, [[0.0], [1.0]], [1, 1]),
    ({}, [[0.0], [1.0]], [0.5, 1.5]),
])
def test_bad_input_is_one_line_value_error(params, X, y):
    with pytest.raises(ValueError) as info:
        LogisticRegression(**params).fit(X, y)
    assert "\n" not in str(info.value) and str(info.value).startswith("logreg:")


def test_predict_checks_fit_and_feature_count():
    with pytest.raises(NotFittedError):
        LogisticRegression().predict([[0.0, 1.0]])
    model = LogisticRegression().fit([[0.0, 1.0], [1.0, 0.0]], [0, 1])
    with pytest.raises(ValueError, match="2"):
        model.predict([[0.0, 1.0, 2.0]])
