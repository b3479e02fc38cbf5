"""zrenie.tasks.classic.KNNClassifier against scikit-learn's KNeighborsClassifier(algorithm="brute")."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KNeighborsClassifier

from zrenie.errors import ShapeError
from zrenie.tasks.classic import KNNClassifier


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)  # bundled with scikit-learn: no download
    return train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)


def assert_same_as_sklearn(x_train, y_train, x_test, **params):
    ours = KNNClassifier(**params).fit(x_train, y_train)
    theirs = KNeighborsClassifier(algorithm="brute", **params).fit(x_train, y_train)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_allclose(ours.predict_proba(x_test), theirs.predict_proba(x_test), atol=1e-12)
    np.testing.assert_array_equal(ours.predict(x_test), theirs.predict(x_test))
    return ours.predict(x_test)


@pytest.mark.parametrize("n_neighbors, weights, metric", [
    (1, "uniform", "euclidean"), (4, "uniform", "euclidean"), (5, "distance", "euclidean"), (6, "distance", "cosine"),
])
def test_digits_match_sklearn(digits, n_neighbors, weights, metric):
    x_train, x_test, y_train, y_test = digits
    assert_same_as_sklearn(x_train, y_train, x_test, n_neighbors=n_neighbors, weights=weights, metric=metric)


def test_uniform_vote_tie_goes_to_the_first_class():
    # the nearest neighbour is "b", but the vote is 1-1 and "a" comes first in classes_
    x, y = np.array([[0.0], [1.0], [5.0]]), np.array(["b", "a", "b"])
    pred = assert_same_as_sklearn(x, y, np.array([[0.4]]), n_neighbors=2)
    assert pred.tolist() == ["a"]


def test_distance_vote_ties_and_zero_distances():
    x = np.array([[0.0], [0.1], [-0.1], [7.0], [7.0], [20.0], [30.0], [32.0], [40.0]])
    y = np.array([3, 1, 1, 2, 0, 1, 2, 0, 1])
    queries = np.array([[0.0], [0.05], [7.0], [31.0]])
    # 0: on top of a class-3 point, which outvotes the two class-1 points; 0.05: 20 for class 3 against
    # 20 + 1 / 0.15 for class 1; 7: on two points of classes 2 and 0, a tie that class 0 wins;
    # 31: 1 for class 2, 1 for class 0, 1 / 9 for class 1: class 0 again
    pred = assert_same_as_sklearn(x, y, queries, n_neighbors=3, weights="distance")
    assert pred.tolist() == [3, 1, 0, 0]
    proba = KNNClassifier(n_neighbors=3, weights="distance").fit(x, y).predict_proba(queries)
    np.testing.assert_allclose(proba[0], [0, 0, 0, 1])
    np.testing.assert_allclose(proba[2], [0.5, 0, 0.5, 0])
    np.testing.assert_allclose(proba[3], np.array([1, 1 / 9, 1, 0]) / (2 + 1 / 9))


def test_grid_search_clones_it_and_scores_as_sklearn(digits):
    x_train, _, y_train, _ = digits
    x, y = x_train[:300], y_train[:300]
    grid = {"n_neighbors": [1, 3], "weights": ["uniform", "distance"]}
    ours = GridSearchCV(KNNClassifier(batch_size=64), grid, cv=3).fit(x, y)
    theirs = GridSearchCV(KNeighborsClassifier(algorithm="brute"), grid, cv=3).fit(x, y)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"])
    assert ours.best_params_ == theirs.best_params_ and ours.best_estimator_.batch_size == 64


def test_bad_parameters_are_one_line_value_errors():
    x, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    for params in ({"weights": "gaussian"}, {"metric": "chebyshev"}, {"metric": "inner", "weights": "distance"}):
        with pytest.raises(ShapeError) as err:
            KNNClassifier(**params).fit(x, y)
        assert isinstance(err.value, ValueError) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="k must be an integer in"):
        KNNClassifier(n_neighbors=5).fit(x, y).predict(x)
