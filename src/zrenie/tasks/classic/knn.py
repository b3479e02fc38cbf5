"""The k-NN classifier on zrenie's exact batched search (`zrenie.ops.knn_search`), with scikit-learn's
estimator interface so that `GridSearchCV` and `cross_val_score` take it as it is.

Votes follow scikit-learn's `KNeighborsClassifier` (read in its `_classification.py` and
`neighbors/_base.py::_get_weights`): uniform votes count neighbours; distance votes weigh each neighbour by
1 / distance, except that a query at distance 0 from some training points is decided by those points alone,
each with weight 1. `predict` is the class of the largest `predict_proba` column, and a tie of votes goes to
the first class in `classes_` (sorted order), as scikit-learn's argmax and `weighted_mode` both do.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from zrenie.ops.knn import METRICS, KnnArgumentError, knn_search

WEIGHTS = ("uniform", "distance")


class KNNClassifier(ClassifierMixin, BaseEstimator):
    """k-nearest-neighbour classifier: majority or distance-weighted votes of the exact neighbours.

    Args:
        n_neighbors: neighbours that vote.
        weights: "uniform" (one vote each) or "distance" (1 / distance; a training point at distance 0 from
            the query outvotes every other).
        metric: a `knn_search` metric: "euclidean", "sqeuclidean", "cosine"; "inner" (the largest inner
            products are the neighbours) only with uniform weights.
        batch_size: queries searched at once (None: `knn_search` sizes the chunks).

    Attributes:
        classes_: the sorted distinct labels seen in `fit`, of any type `numpy.unique` sorts.
        n_features_in_: the feature count seen in `fit`.

    Features are kept as float32 when given as float32 and float64 otherwise, and the distances are
    worked out in that type.
    """

    def __init__(self, n_neighbors: int = 5, weights: str = "uniform", metric: str = "euclidean",
                 batch_size: int | None = None):
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.metric = metric
        self.batch_size = batch_size

    def fit(self, X, y) -> KNNClassifier:
        """Stores the training points and labels.

        Args:
            X: array-like (n_samples, n_features).
            y: array-like (n_samples,) of class labels.

        Returns:
            self.
        """
        if self.weights not in WEIGHTS:
            raise KnnArgumentError(f"KNNClassifier: weights must be one of {', '.join(WEIGHTS)}, got {self.weights!r}")
        if self.metric not in METRICS:
            raise KnnArgumentError(f"KNNClassifier: unknown metric {self.metric!r}; expected one of "
                                   f"{', '.join(METRICS)}")
        if self.metric == "inner" and self.weights == "distance":
            raise KnnArgumentError("KNNClassifier: the inner product is a similarity, not a distance: "
                                   "use weights='uniform' with metric='inner'")
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        # numpy, not torch: a fitted estimator pickles as plain arrays (torch tensors pickle through torch.load)
        self._fit_X = np.ascontiguousarray(X)
        self._codes = codes.astype(np.int64)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Vote shares of the classes, columns in the order of `classes_`.

        Args:
            X: array-like (n_queries, n_features).

        Returns:
            ndarray (n_queries, n_classes) of float64, rows summing to 1.
        """
        check_is_fitted(self, "_fit_X")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        base = torch.from_numpy(self._fit_X)
        queries = torch.from_numpy(np.ascontiguousarray(X)).to(base.dtype)
        dist, idx = knn_search(queries, base, self.n_neighbors, self.metric, self.batch_size)
        votes = vote_weights(dist.double(), self.weights)  # (Q, k)
        labels = torch.from_numpy(self._codes)[idx]  # (Q, k)
        proba = torch.zeros(len(X), len(self.classes_), dtype=torch.float64)
        # neighbour by neighbour, nearest first: the order scikit-learn adds the votes in
        for j in range(labels.shape[1]):
            proba.scatter_add_(1, labels[:, j:j + 1], votes[:, j:j + 1])
        return (proba / proba.sum(1, keepdim=True)).numpy()

    def predict(self, X) -> np.ndarray:
        """The class with the most votes; a tie goes to the class that comes first in `classes_`.

        Args:
            X: array-like (n_queries, n_features).

        Returns:
            ndarray (n_queries,) of labels from `classes_`.
        """
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def vote_weights(distances: torch.Tensor, weights: str) -> torch.Tensor:
    """Each neighbour's vote: (Q, k) from distances (Q, k).

    "distance" gives 1 / distance, and in a row with zero distances 1 for each of those and 0 for the rest
    (scikit-learn's rule: a query on top of training points takes their labels).
    """
    if weights == "uniform":
        return torch.ones_like(distances)
    zero = distances == 0
    on_top = zero.any(1, keepdim=True)  # (Q, 1)
    return torch.where(on_top, zero.to(distances.dtype), 1 / distances.where(~zero, torch.ones_like(distances)))
