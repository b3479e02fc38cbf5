"""zrenie.ops.knn_search against scikit-learn's brute-force NearestNeighbors and a float64 numpy reference.

scikit-learn orders tied neighbours arbitrarily (heap order), so with ties its distances are compared and
the indices are checked against the reference, which breaks ties by the lower base index.
"""

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from zrenie.errors import ShapeError
from zrenie.ops.knn import knn_search

EXACT_METRICS = ("euclidean", "sqeuclidean", "cosine")


def reference(queries: np.ndarray, base: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Every distance worked out term by term in float64; a stable sort orders ties by the lower index."""
    q, b = queries.astype(np.float64), base.astype(np.float64)
    if metric in ("euclidean", "sqeuclidean"):
        d = ((q[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        d = np.sqrt(d) if metric == "euclidean" else d
    elif metric == "cosine":
        qn = np.linalg.norm(q, axis=1, keepdims=True)
        bn = np.linalg.norm(b, axis=1, keepdims=True)
        d = 1 - (q / np.where(qn > 0, qn, 1)) @ (b / np.where(bn > 0, bn, 1)).T
    else:
        d = -(q @ b.T)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    dist = np.take_along_axis(d, idx, axis=1)
    return (-dist if metric == "inner" else dist), idx


def sklearn_brute(queries: np.ndarray, base: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute", metric=metric).fit(base.astype(np.float64))
    return nn.kneighbors(queries.astype(np.float64))


def continuous(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@pytest.mark.parametrize("metric", EXACT_METRICS)
def test_matches_sklearn_brute_in_chunks(metric):
    base, queries = continuous(120, 8, 0), continuous(23, 8, 1)
    dist, idx = knn_search(torch.from_numpy(queries), torch.from_numpy(base), 6, metric, batch_size=5)
    ref_d, ref_i = sklearn_brute(queries, base, 6, metric)
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    np.testing.assert_allclose(dist.numpy(), ref_d, atol=1e-5)
    whole_d, whole_i = knn_search(torch.from_numpy(queries), torch.from_numpy(base), 6, metric, batch_size=100)
    assert torch.equal(whole_i, idx) and torch.equal(whole_d, dist)


def test_inner_product_matches_sklearn_on_shifted_similarities():
    # scikit-learn has no inner-product metric: rank by C - q.b, a nonnegative precomputed distance
    base, queries = continuous(90, 8, 2), continuous(17, 8, 3)
    sim = queries.astype(np.float64) @ base.astype(np.float64).T
    shift = sim.max() + 1
    nn = NearestNeighbors(n_neighbors=5, algorithm="brute", metric="precomputed").fit(np.zeros((90, 90)))
    ref_d, ref_i = nn.kneighbors(shift - sim)
    dist, idx = knn_search(torch.from_numpy(queries), torch.from_numpy(base), 5, "inner", batch_size=4)
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    np.testing.assert_allclose(dist.numpy(), shift - ref_d, atol=1e-5)


@pytest.mark.parametrize("metric", ("euclidean", "sqeuclidean", "inner"))
def test_grid_ties_go_to_the_lower_index(metric):
    # small integers: every distance and inner product is exact in float32, so equal ones are true ties
    rng = np.random.default_rng(4)
    base = rng.integers(-2, 3, size=(60, 3)).astype(np.float32)
    base[[7, 31, 44]] = base[2]
    queries = np.concatenate([base[[2, 31, 5]], rng.integers(-2, 3, size=(10, 3)).astype(np.float32)])
    dist, idx = knn_search(torch.from_numpy(queries), torch.from_numpy(base), 12, metric, batch_size=4)
    ref_d, ref_i = reference(queries, base, 12, metric)
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    np.testing.assert_allclose(dist.numpy(), ref_d, atol=1e-5)
    if metric != "inner":
        np.testing.assert_allclose(dist.numpy(), sklearn_brute(queries, base, 12, metric)[0], atol=1e-5)
        twins = np.flatnonzero((base == base[2]).all(1))  # 2, 7, 31, 44 and any equal grid point
        assert idx[0, :len(twins)].tolist() == twins.tolist() and (dist[:2, :len(twins)] == 0).all()


@pytest.mark.parametrize("metric", EXACT_METRICS)
def test_duplicates_go_first_in_index_order(metric):
    base = continuous(70, 6, 9)
    base[[12, 40, 41, 66]] = base[5]
    queries = np.concatenate([base[[41, 5]], continuous(9, 6, 10)])
    dist, idx = knn_search(torch.from_numpy(queries), torch.from_numpy(base), 8, metric, batch_size=3)
    ref_d, ref_i = reference(queries, base, 8, metric)
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    np.testing.assert_allclose(dist.numpy(), ref_d, atol=1e-5)
    np.testing.assert_allclose(dist.numpy(), sklearn_brute(queries, base, 8, metric)[0], atol=1e-5)
    assert idx[:2, :5].tolist() == [[5, 12, 40, 41, 66]] * 2


@pytest.mark.parametrize("metric", EXACT_METRICS + ("inner",))
def test_more_tied_points_than_the_shortlist_margin(metric):
    # 10 copies of (3, 3, 3, 3) then 30 of the query (1, 1, 1, 1): the nearest 3 are tied 30 ways (40 for
    # cosine, all parallel; the 10 larger ones for the inner product), and the lowest indices win
    base = np.concatenate([np.full((10, 4), 3.0), np.full((30, 4), 1.0)]).astype(np.float32)
    _, idx = knn_search(torch.ones(2, 4), torch.from_numpy(base), 3, metric)
    want = [10, 11, 12] if metric in ("euclidean", "sqeuclidean") else [0, 1, 2]
    assert idx.tolist() == [want] * 2


def test_exact_duplicates_far_from_the_origin_are_at_distance_zero():
    # ||q||^2 - 2 q.b + ||b||^2 cancels: at norm 1e3 in float32 a duplicate comes out near sqrt(1e6 * 1e-7)
    base = 1000 + continuous(50, 32, 5)
    queries = base[[3, 17, 40]] + np.array([[0.0], [0.0], [1e-3]], dtype=np.float32)
    for metric in ("euclidean", "sqeuclidean"):
        dist, idx = knn_search(torch.from_numpy(queries), torch.from_numpy(base), 3, metric)
        assert idx[:, 0].tolist() == [3, 17, 40]
        assert dist[0, 0] == 0 and dist[1, 0] == 0
        ref_d, _ = reference(queries, base, 3, metric)
        np.testing.assert_allclose(dist.numpy(), ref_d, rtol=1e-5, atol=1e-6)


def test_exclude_self_matches_sklearn_leave_one_out():
    base = continuous(40, 5, 6)
    dist, idx = knn_search(torch.from_numpy(base), torch.from_numpy(base), 4, batch_size=9, exclude_self=True)
    ref_d, ref_i = NearestNeighbors(n_neighbors=4, algorithm="brute").fit(base.astype(np.float64)).kneighbors()
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    np.testing.assert_allclose(dist.numpy(), ref_d, atol=1e-5)


def test_k_equal_to_n_sorts_everything_and_float64_is_kept():
    base, queries = continuous(30, 4, 7).astype(np.float64), continuous(6, 4, 8).astype(np.float64)
    dist, idx = knn_search(torch.from_numpy(queries), torch.from_numpy(base), 30, "euclidean")
    ref_d, ref_i = reference(queries, base, 30, "euclidean")
    assert dist.dtype == torch.float64
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    np.testing.assert_allclose(dist.numpy(), ref_d, atol=1e-12)
    dist32, _ = knn_search(torch.from_numpy(queries).float(), torch.from_numpy(base).float(), 3, dtype=torch.float64)
    assert dist32.dtype == torch.float64


def test_empty_queries_give_empty_results():
    dist, idx = knn_search(torch.zeros(0, 4), torch.rand(10, 4), 3)
    assert dist.shape == (0, 3) and idx.shape == (0, 3) and idx.dtype == torch.long


@pytest.mark.parametrize("kwargs, match", [
    ({"k": 11}, r"k must be an integer in \[1, 10\]"),
    ({"k": 10, "exclude_self": True}, r"\[1, 9\]"),
    ({"k": 0}, "k must be"),
    ({"k": 2, "metric": "manhattan"}, "unknown metric"),
    ({"k": 2, "batch_size": 0}, "batch_size"),
])
def test_bad_arguments_are_one_line_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        knn_search(torch.rand(10, 4), torch.rand(10, 4), **kwargs)
    assert isinstance(err.value, ShapeError) and "\n" not in str(err.value)
    with pytest.raises(ShapeError, match="same D"):
        knn_search(torch.rand(3, 4), torch.rand(10, 5), 2)
