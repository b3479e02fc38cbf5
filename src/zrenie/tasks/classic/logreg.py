"""Logistic regression written by hand (course week 2): binary and multinomial, L1, L2 and elastic-net
penalties, full-batch proximal gradient descent, SGD and mini-batch SGD, learning-rate schedules and early
stopping, with scikit-learn's estimator interface so `GridSearchCV` takes it as it is.

The objective is scikit-learn's `LogisticRegression` objective, so on the same data the coefficients agree:

    F(W, b) = C * sum_i logloss_i(W, b) + l1 * ||W||_1 + 0.5 * l2 * ||W||_2^2

with (l1, l2) = (0, 1) for `penalty="l2"`, (1, 0) for `"l1"`, (r, 1 - r) for `"elasticnet"` with
`l1_ratio=r`, and (0, 0) for `penalty=None`; the intercept b is never penalised. Two classes use one
weight vector and a sigmoid, more classes K weight vectors and a softmax (scikit-learn's multinomial).
scikit-learn 1.8+ deprecates `penalty`: its `l1_ratio=0` is our `"l2"`, `l1_ratio=1` our `"l1"`,
`0 < l1_ratio < 1` our `"elasticnet"` with the same `l1_ratio`, and its `C=np.inf` our `penalty=None`
(here too `C=inf` drops the penalty, whatever `penalty` says). The scale is read from scikit-learn 1.9.1's
`linear_model/_logistic.py`, whose objective is "C * sum(pointwise_loss) + penalty" and whose saga solver weighs
the mean loss against alpha = (1 - l1_ratio) / C (L2) and beta = l1_ratio / C (L1) per sample.

The solvers minimise the same objective divided by C * n, f = F / (C n) = mean logloss + penalty / (C n),
so a learning rate means the same thing at any n and C. `loss_curve_` records f per iteration (`gd`) or
epoch (`sgd`, `minibatch`); `val_loss_curve_` the mean log-loss of the held-out samples.

    model = LogisticRegression(penalty="elasticnet", l1_ratio=0.5, C=0.1, solver="minibatch", batch_size=64,
                               schedule="cosine", early_stopping=True, random_state=0).fit(X, y)
    model.predict_proba(X_test), model.coef_, model.loss_curve_, model.val_loss_curve_
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from zrenie.errors import ConfigError, DataError

PENALTIES = ("l2", "l1", "elasticnet", None)
SOLVERS = ("gd", "sgd", "minibatch")
SCHEDULES = ("constant", "step", "cosine", "inverse")


class LogRegParamError(ConfigError, ValueError):
    """An unknown penalty, solver or schedule, or a value out of range (a ValueError, as scikit-learn's)."""


class LogRegDataError(DataError, ValueError):
    """X or y of the wrong shape, not finite, or with fewer than two classes (a ValueError, as scikit-learn's)."""


def penalty_weights(penalty: str | None, l1_ratio: float | None) -> tuple[float, float]:
    """The (l1, l2) weights of F for a penalty name, as in the module docstring."""
    if penalty not in PENALTIES:
        raise LogRegParamError(f"logreg: unknown penalty {penalty!r}, expected one of {PENALTIES}")
    if penalty == "elasticnet":
        if l1_ratio is None or not 0.0 <= l1_ratio <= 1.0:
            raise LogRegParamError(f"logreg: penalty='elasticnet' needs 0 <= l1_ratio <= 1, got {l1_ratio!r}")
        return float(l1_ratio), 1.0 - float(l1_ratio)
    return {"l2": (0.0, 1.0), "l1": (1.0, 0.0), None: (0.0, 0.0)}[penalty]


def class_probabilities(Z: Tensor) -> Tensor:
    """Scores `(n, 1)` -> sigmoid (probability of the second class); scores `(n, K)` -> softmax `(n, K)`."""
    return torch.sigmoid(Z) if Z.shape[1] == 1 else torch.softmax(Z, dim=1)


def smooth_objective(W: Tensor, b: Tensor, X: Tensor, Y: Tensor, C: float, l2: float) -> Tensor:
    """The differentiable part of F: C * sum_i logloss_i + 0.5 * l2 * ||W||^2.

    Args:
        W: weights `(d, K')`, K' = 1 for two classes (sigmoid), K' = K for more (softmax).
        b: intercepts `(K',)`.
        X: samples `(n, d)`.
        Y: targets `(n, K')`: 0/1 for the second class when K' = 1, one-hot rows otherwise.
        C: inverse regularisation strength, the weight of the summed log-loss.
        l2: the weight of 0.5 * ||W||^2.
    """
    Z = X @ W + b  # (n, K')
    if Z.shape[1] == 1:  # -log sigmoid(z) for y = 1, -log(1 - sigmoid(z)) for y = 0, without overflow
        losses = torch.nn.functional.softplus(Z) - Y * Z
    else:
        losses = torch.logsumexp(Z, dim=1, keepdim=True) - (Y * Z).sum(dim=1, keepdim=True)
    return C * losses.sum() + 0.5 * l2 * (W * W).sum()


def smooth_gradient(W: Tensor, b: Tensor, X: Tensor, Y: Tensor, C: float, l2: float) -> tuple[Tensor, Tensor]:
    """The gradient of `smooth_objective` by its formula: dF/dZ = C (P - Y) for sigmoid and softmax alike, so
    dF/dW = C X^T (P - Y) + l2 W and dF/db = C sum_i (P_i - Y_i). Returns (dW `(d, K')`, db `(K',)`)."""
    R = C * (class_probabilities(X @ W + b) - Y)  # (n, K')
    return X.T @ R + l2 * W, R.sum(dim=0)


def soft_threshold(W: Tensor, threshold: float) -> Tensor:
    """The proximal operator of threshold * ||W||_1: shrink every weight towards 0 by `threshold`."""
    return torch.sign(W) * torch.clamp(W.abs() - threshold, min=0.0)


def learning_rate(schedule: str, lr: float, epoch: int, max_iter: int) -> float:
    """The step size of `epoch` (0-based) out of `max_iter`.

    `constant`: lr; `step`: lr halved at each quarter of max_iter; `cosine`: lr * (1 + cos(pi epoch / max_iter)) / 2;
    `inverse`: lr / (1 + epoch), the 1/t decay under which SGD converges on a strongly convex objective.
    """
    if schedule == "constant":
        return lr
    if schedule == "step":
        return lr * 0.5 ** math.floor(4 * epoch / max_iter)
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / max_iter))
    return lr / (1.0 + epoch)


def _stalled(curve: list[float], tol: float, patience: int) -> bool:
    """True when none of the last `patience` values beat the best value before them by more than `tol`."""
    if len(curve) <= patience:
        return False
    return min(curve[-patience:]) > min(curve[:-patience]) - tol


class _Problem:
    """The normalised objective f = F / (C n) of one fit: mean log-loss + (a1 ||W||_1 + a2 ||W||^2 / 2)."""

    def __init__(self, X: Tensor, Y: Tensor, C: float, l1: float, l2: float, fit_intercept: bool = True):
        self.X, self.Y, self.c, self.fit_intercept = X, Y, 1.0 / X.shape[0], fit_intercept
        scale = 0.0 if math.isinf(C) else 1.0 / (C * X.shape[0])
        self.a1, self.a2 = l1 * scale, l2 * scale

    def smooth(self, W: Tensor, b: Tensor) -> float:
        return float(smooth_objective(W, b, self.X, self.Y, self.c, self.a2))

    def value(self, W: Tensor, b: Tensor) -> float:
        return self.smooth(W, b) + self.a1 * float(W.abs().sum())

    def gradient(self, W: Tensor, b: Tensor, rows: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The gradient of the smooth part of f, estimated on `rows` (a mini-batch) when given."""
        if rows is None:
            g_W, g_b = smooth_gradient(W, b, self.X, self.Y, self.c, self.a2)
        else:
            g_W, g_b = smooth_gradient(W, b, self.X[rows], self.Y[rows], 1.0 / len(rows), self.a2)
        return g_W, g_b if self.fit_intercept else torch.zeros_like(g_b)  # without an intercept b stays 0


def _fit_gd(problem: _Problem, W: Tensor, b: Tensor, est: LogisticRegression,
            monitor: _Monitor) -> tuple[Tensor, Tensor, int]:
    """FISTA (Beck & Teboulle 2009) with a backtracking line search and function-value restarts
    (O'Donoghue & Candes 2015). Restarts keep the linear rate of a strongly convex objective, which plain
    FISTA loses to oscillation: on standardised breast cancer (C=1) tol=1e-8 takes 917 steps with them, 9,938
    without.
    Stops when the gradient mapping (the prox-gradient step divided by the step size) is below tol."""
    step = 1.0 if est.lr is None else float(est.lr)
    x_W, x_b, y_W, y_b, t = W, b, W, b, 1.0
    f_x = problem.value(W, b)
    for it in range(1, est.max_iter + 1):
        f_y, (g_W, g_b) = problem.smooth(y_W, y_b), problem.gradient(y_W, y_b)
        while True:  # halve the step until the quadratic model majorises the smooth part
            n_W = soft_threshold(y_W - step * g_W, step * problem.a1)
            n_b = y_b - step * g_b
            d_W, d_b = n_W - y_W, n_b - y_b
            slope = float((g_W * d_W).sum() + (g_b * d_b).sum())
            model = f_y + slope + float((d_W**2).sum() + (d_b**2).sum()) / (2 * step)
            if problem.smooth(n_W, n_b) <= model + 1e-12 * abs(f_y) or step < 1e-20:
                break
            step *= 0.5
        mapping = max(float(d_W.abs().max()), float(d_b.abs().max())) / step
        f_n = problem.value(n_W, n_b)
        if f_n > f_x:  # momentum overshot: restart from the new point
            t, y_W, y_b = 1.0, n_W, n_b
        else:
            t_n = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            y_W, y_b = n_W + (t - 1.0) / t_n * (n_W - x_W), n_b + (t - 1.0) / t_n * (n_b - x_b)
            t = t_n
        x_W, x_b, f_x = n_W, n_b, f_n
        if monitor(it, x_W, x_b, f_x) or mapping <= est.tol:
            return x_W, x_b, it
    _warn_not_converged(est)
    return x_W, x_b, est.max_iter


def _fit_stochastic(problem: _Problem, W: Tensor, b: Tensor, est: LogisticRegression,
                    monitor: _Monitor) -> tuple[Tensor, Tensor, int]:
    """Proximal SGD: for each mini-batch (one sample for `sgd`) of a shuffled epoch, a gradient step on the batch's
    mean log-loss and the L2 term, then soft-thresholding for the L1 term. Stops when the training objective has
    not improved by tol for n_iter_no_change epochs (scikit-learn's SGDClassifier rule)."""
    n = problem.X.shape[0]
    batch = 1 if est.solver == "sgd" else min(n, est.batch_size or 32)
    lr0 = 0.1 if est.lr is None else float(est.lr)
    generator = torch.Generator()
    if est.random_state is None:
        generator.seed()  # a fresh order per fit, as scikit-learn's random_state=None
    else:
        generator.manual_seed(int(est.random_state))
    for epoch in range(est.max_iter):
        eta = learning_rate(est.schedule, lr0, epoch, est.max_iter)
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch):
            g_W, g_b = problem.gradient(W, b, order[start:start + batch])
            W = soft_threshold(W - eta * g_W, eta * problem.a1)
            b = b - eta * g_b
        if monitor(epoch + 1, W, b, problem.value(W, b)):
            return W, b, epoch + 1
    if not est.early_stopping:
        _warn_not_converged(est)
    return W, b, est.max_iter


def _warn_not_converged(est: LogisticRegression) -> None:
    warnings.warn(f"logreg: solver {est.solver!r} did not converge in max_iter={est.max_iter} "
                  f"(tol={est.tol}); raise max_iter or tol", ConvergenceWarning, stacklevel=3)


class _Monitor:
    """Records the curves after each iteration or epoch and says when to stop early.

    With a validation set it keeps the weights of the best validation loss, which `fit` returns."""

    def __init__(self, est: LogisticRegression, X_val: Tensor | None, Y_val: Tensor | None):
        self.est, self.X_val, self.Y_val = est, X_val, Y_val
        self.loss_curve: list[float] = []
        self.val_loss_curve: list[float] = []
        self.best: tuple[Tensor, Tensor] | None = None

    def __call__(self, it: int, W: Tensor, b: Tensor, value: float) -> bool:
        self.loss_curve.append(value)
        est = self.est
        if self.X_val is not None:
            val = float(smooth_objective(W, b, self.X_val, self.Y_val, 1.0 / self.X_val.shape[0], 0.0))
            if not self.val_loss_curve or val < min(self.val_loss_curve):
                self.best = (W, b)
            self.val_loss_curve.append(val)
            return _stalled(self.val_loss_curve, est.tol, est.n_iter_no_change)
        return est.solver != "gd" and _stalled(self.loss_curve, est.tol, est.n_iter_no_change)


class LogisticRegression(ClassifierMixin, BaseEstimator):
    """Logistic regression minimising scikit-learn's objective (see the module docstring) with hand-written solvers.

    Args:
        penalty: "l2", "l1", "elasticnet" or None.
        C: inverse regularisation strength (> 0); `float("inf")` means no penalty.
        l1_ratio: the L1 share of the elastic-net penalty, 0..1 (only for penalty="elasticnet").
        solver: "gd" (full-batch proximal gradient descent, FISTA with line search), "sgd" (one sample per
            step) or "minibatch" (`batch_size` samples per step).
        lr: the step size on the normalised objective f = F / (C n): for "gd" the first step the line search
            tries (default 1.0), for "sgd"/"minibatch" the schedule's starting rate (default 0.1).
        max_iter: iterations ("gd") or epochs ("sgd", "minibatch").
        tol: "gd" stops when the gradient mapping's largest entry is below tol; "sgd"/"minibatch" when the
            training objective (or, with early stopping, the validation loss) has not improved by tol for
            `n_iter_no_change` epochs.
        batch_size: samples per step for "minibatch" (default 32).
        schedule: "constant", "step", "cosine" or "inverse" (see `learning_rate`); "gd" ignores it.
        early_stopping: hold out `validation_fraction` of the samples (stratified) and stop when their mean
            log-loss has not improved by tol for `n_iter_no_change` iterations/epochs; keep the best weights.
        validation_fraction: the held-out share for early stopping.
        n_iter_no_change: the patience of both stopping rules.
        fit_intercept: learn an unpenalised intercept per weight vector.
        random_state: seeds the shuffling of the stochastic solvers and the validation split.

    Attributes (after `fit`): `classes_`, `coef_` `(1, d)` for two classes or `(K, d)`, `intercept_` `(1,)` or
    `(K,)`, `n_iter_`, `n_features_in_`, `loss_curve_` (f per iteration or epoch) and, with early stopping,
    `val_loss_curve_` (mean log-loss of the held-out samples).
    """

    def __init__(self, penalty: str | None = "l2", C: float = 1.0, l1_ratio: float | None = None, solver: str = "gd",
                 lr: float | None = None, max_iter: int = 1000, tol: float = 1e-4, batch_size: int | None = None,
                 schedule: str = "constant", early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 5, fit_intercept: bool = True, random_state: int | None = None):
        self.penalty = penalty
        self.C = C
        self.l1_ratio = l1_ratio
        self.solver = solver
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.schedule = schedule
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.fit_intercept = fit_intercept
        self.random_state = random_state

    def _check_params(self) -> tuple[float, float]:
        for name, value, allowed in (("solver", self.solver, SOLVERS), ("schedule", self.schedule, SCHEDULES)):
            if value not in allowed:
                raise LogRegParamError(f"logreg: unknown {name} {value!r}, expected one of {allowed}")
        if not self.C > 0:
            raise LogRegParamError(f"logreg: C must be > 0, got {self.C!r}")
        if self.max_iter < 1 or self.n_iter_no_change < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise LogRegParamError("logreg: max_iter, n_iter_no_change and batch_size must be >= 1")
        if self.early_stopping and not 0.0 < self.validation_fraction < 1.0:
            raise LogRegParamError(f"logreg: validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        return (0.0, 0.0) if math.isinf(self.C) else penalty_weights(self.penalty, self.l1_ratio)

    def _check_X(self, X, fitting: bool = False) -> np.ndarray:
        """X as a float64 array `(n, d)`; when predicting, d must be the fitted number of features."""
        if hasattr(X, "toarray"):
            raise LogRegDataError("logreg: sparse input is not supported, pass a dense array (X.toarray())")
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise LogRegDataError(f"logreg: X must hold numbers ({err})") from None
        if X.ndim != 2:
            raise LogRegDataError(f"logreg: X must be 2-D (n_samples, n_features), got shape {X.shape}: "
                                  f"Reshape your data")
        for axis, what in ((0, "sample"), (1, "feature")):
            if X.shape[axis] == 0:
                raise LogRegDataError(f"logreg: found array with 0 {what}(s) (shape={X.shape}) while a minimum of 1 "
                                      f"is required.")
        if not np.isfinite(X).all():
            raise LogRegDataError("logreg: X holds NaN or infinite values")
        if not fitting and X.shape[1] != self.n_features_in_:
            raise LogRegDataError(f"logreg: X has {X.shape[1]} features, but LogisticRegression is expecting "
                                  f"{self.n_features_in_} features as input")
        return X

    def _check_y(self, y, n_samples: int) -> np.ndarray:
        """y as a 1-D array of class labels, one per sample; a `(n, 1)` column is flattened, as scikit-learn does."""
        if y is None:
            raise LogRegDataError("logreg: LogisticRegression requires y to be passed, but the target y is None")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected: logreg flattens it",
                          DataConversionWarning, stacklevel=3)
            y = y[:, 0]
        if y.ndim != 1 or y.shape[0] != n_samples:
            raise LogRegDataError(f"logreg: y must be 1-D with one label per row of X ({n_samples}), "
                                  f"got shape {y.shape}")
        if type_of_target(y) not in ("binary", "multiclass"):
            raise LogRegDataError(f"logreg: Unknown label type {type_of_target(y)!r}: y must hold class labels")
        return y

    def fit(self, X, y) -> LogisticRegression:
        """Fit on samples `X` `(n, d)` and labels `y` `(n,)` of any kind (ints, strings ...) with >= 2 classes."""
        l1, l2 = self._check_params()
        X = self._check_X(X, fitting=True)
        y = self._check_y(y, X.shape[0])
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise LogRegDataError(f"logreg: y has one class ({self.classes_[0]!r}), it needs at least two")
        self.n_features_in_ = X.shape[1]
        K = len(self.classes_)
        Y = np.eye(K)[codes] if K > 2 else (codes == 1).astype(np.float64)[:, None]  # (n, K')
        X_val = Y_val = None
        if self.early_stopping:
            from sklearn.model_selection import train_test_split

            X, X_val, Y, Y_val = train_test_split(X, Y, test_size=self.validation_fraction, stratify=codes,
                                                  random_state=self.random_state)
            X_val, Y_val = torch.from_numpy(X_val), torch.from_numpy(Y_val)
        X, Y = torch.from_numpy(X), torch.from_numpy(Y)
        W = torch.zeros(X.shape[1], Y.shape[1], dtype=torch.float64)
        b = torch.zeros(Y.shape[1], dtype=torch.float64)
        problem = _Problem(X, Y, self.C, l1, l2, self.fit_intercept)
        monitor = _Monitor(self, X_val, Y_val)
        solve = _fit_gd if self.solver == "gd" else _fit_stochastic
        threads = torch.get_num_threads()
        if X.numel() < 2**20:  # small products: waking a thread pool costs ~100x the work (measured 13 us vs 1.8 ms)
            torch.set_num_threads(1)
        try:
            W, b, self.n_iter_ = solve(problem, W, b, self, monitor)
        finally:
            torch.set_num_threads(threads)
        if monitor.best is not None:
            W, b = monitor.best
        self.coef_ = W.T.numpy().copy()
        self.intercept_ = b.numpy().copy()
        self.loss_curve_ = monitor.loss_curve
        if self.early_stopping:
            self.val_loss_curve_ = monitor.val_loss_curve
        return self

    def decision_function(self, X) -> np.ndarray:
        """Scores X @ coef_.T + intercept_: `(n,)` for two classes (the second class's logit), else `(n, K)`."""
        check_is_fitted(self, "coef_")
        scores = self._check_X(X) @ self.coef_.T + self.intercept_  # (n, K')
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities `(n, K)`, columns in the order of `classes_`."""
        P = class_probabilities(_as_columns(self.decision_function(X))).numpy()
        return np.hstack([1.0 - P, P]) if P.shape[1] == 1 else P

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample, as one of `classes_`."""
        scores = self.decision_function(X)
        return self.classes_[(scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)]


def _as_columns(scores: np.ndarray) -> Tensor:
    """`(n,)` or `(n, K)` scores as a `(n, K')` tensor."""
    return torch.from_numpy(scores.reshape(scores.shape[0], -1))
