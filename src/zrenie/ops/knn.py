"""Exact k-nearest-neighbour search in PyTorch, batched over the queries: the brute-force index behind the
k-NN classifier and image search.

The score of every query against every base point comes from one matrix product per chunk of queries,
`||q||^2 - 2 q.b + ||b||^2` for the euclidean metrics. That expansion cancels catastrophically for near
points (an exact duplicate can come out at 1e-4 instead of 0 in float32, since the error of the squared
distance, about `eps (||q||^2 + ||b||^2)`, is then square-rooted), so the product only shortlists: every
point whose score lies within the product's rounding bound of the k-th best is rescored directly
(`sum((q - b)^2)`, `q.b` term by term), which is exact for duplicates and deterministic for equal rows,
and the k best of the shortlist are kept by (distance, base index). Ties therefore go to the lower base
index, whatever the chunking or the device.

scikit-learn's brute-force search does not order ties: its heap keeps an arbitrary member of a tied group
at the k-th place and lists tied neighbours in heap order, so only the distances, not the indices, of tied
neighbours can be compared with it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from zrenie.errors import ShapeError

METRICS = ("euclidean", "sqeuclidean", "cosine", "inner")

# Scores held at once per chunk of queries when batch_size is not given: 2^21 float32 scores are 8 MiB. On 2 CPU
# cores, 20k x 10k 64-d queries took 0.6-1.0 s in chunks of 2^21 or 2^24 scores alike: the bound is for memory.
_CHUNK_SCORES = 2**21
# Candidates taken beyond k, so that a few near-ties at the k-th place need no second pass.
_SHORTLIST_MARGIN = 8
# Elements of the (queries, candidates, D) differences held at once while rescoring.
_RESCORE_ELEMENTS = 2**24


class KnnArgumentError(ShapeError, ValueError):
    """A k-NN argument that cannot work: k larger than the base, mismatched widths, an unknown metric.

    It is a ShapeError (one line at the CLI) and a ValueError, as scikit-learn's estimators raise for the
    same mistakes, so model selection tools treat it as they treat theirs.
    """


def knn_search(queries: Tensor, base: Tensor, k: int, metric: str = "euclidean", batch_size: int | None = None,
               exclude_self: bool = False, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """The k nearest base points of every query, exactly, by brute force over chunks of queries.

    Args:
        queries: Tensor[Q, D], on any device.
        base: Tensor[N, D], on the same device.
        k: neighbours per query, 1 <= k <= N (N - 1 with `exclude_self`).
        metric: "euclidean" (L2 distance), "sqeuclidean" (its square), "cosine" (1 - cosine similarity; a zero
            vector is at distance 1 from everything, as in scikit-learn) or "inner" (the inner product q.b,
            a similarity: larger is nearer).
        batch_size: queries scored at once; the chunk's (batch_size, N) score matrix is the memory peak.
            None picks as many as keep it near 2^21 scores.
        exclude_self: the queries are the base (Q == N, row i is base point i) and query i never returns
            base point i: leave-one-out neighbours. A duplicate of point i at another index still counts.
        dtype: floating type of the arithmetic; None keeps the inputs' (float32 for integer inputs).
            torch.float64 narrows the shortlist for data with huge norms.

    Returns:
        distances: Tensor[Q, k] of `dtype`, nearest first (for "inner", the inner products, largest first).
        indices: Tensor[Q, k] (int64) into `base`; equal distances are ordered by the lower base index.

    Raises:
        KnnArgumentError: a bad metric, shape, k or batch_size, or tensors on two devices.
    """
    queries, base = torch.as_tensor(queries), torch.as_tensor(base)
    dtype = _check(queries, base, k, metric, batch_size, exclude_self, dtype)
    n, device = base.shape[0], queries.device
    if batch_size is None:
        batch_size = max(1, _CHUNK_SCORES // max(n, 1))
    base = _prepare(base.to(dtype), metric)  # (N, D)
    base_sq = base.square().sum(1)  # (N,)
    # Rounding bound of a product-based score, without the query's part: (D + 4) eps (|q| + max|b|)^2.
    base_norm_max = base_sq.max().sqrt() if n else base_sq.new_zeros(())
    unit = (base.shape[1] + 4) * torch.finfo(dtype).eps
    out_d = torch.empty(queries.shape[0], k, dtype=dtype, device=device)
    out_i = torch.empty(queries.shape[0], k, dtype=torch.long, device=device)
    for start in range(0, queries.shape[0], batch_size):
        q = _prepare(queries[start:start + batch_size].to(dtype), metric)  # (B, D)
        q_sq = q.square().sum(1)  # (B,)
        scores = _scores(q, base, base_sq, metric)  # (B, N), smaller is nearer
        if exclude_self:
            rows = torch.arange(q.shape[0], device=device)
            scores[rows, rows + start] = math.inf
        tol = unit * (q_sq.sqrt() + base_norm_max).square()  # (B,)
        dist, idx = _select(q, base, scores, tol, k, metric)
        out_d[start:start + batch_size], out_i[start:start + batch_size] = dist, idx
    if metric == "euclidean":
        out_d = out_d.sqrt()
    elif metric == "inner":
        out_d = -out_d
    return out_d, out_i


def _check(queries: Tensor, base: Tensor, k: int, metric: str, batch_size: int | None, exclude_self: bool,
           dtype: torch.dtype | None) -> torch.dtype:
    """Validates the arguments and returns the floating dtype of the arithmetic."""
    if metric not in METRICS:
        raise KnnArgumentError(f"knn_search: unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    if queries.ndim != 2 or base.ndim != 2 or queries.shape[1] != base.shape[1]:
        raise KnnArgumentError(f"knn_search: queries must be (Q, D) and base (N, D) with the same D, got "
                               f"{tuple(queries.shape)} and {tuple(base.shape)}")
    if queries.device != base.device:
        raise KnnArgumentError(f"knn_search: queries are on {queries.device} but base is on {base.device}")
    available = base.shape[0] - int(exclude_self)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= available:
        what = "base points other than the query itself" if exclude_self else "base points"
        raise KnnArgumentError(f"knn_search: k must be an integer in [1, {available}] ({available} {what}), "
                               f"got {k!r}")
    if exclude_self and queries.shape[0] != base.shape[0]:
        raise KnnArgumentError(f"knn_search: exclude_self needs the queries to be the base, got "
                               f"{queries.shape[0]} queries and {base.shape[0]} base points")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise KnnArgumentError(f"knn_search: batch_size must be a positive integer or None, got {batch_size!r}")
    if dtype is None:
        dtype = torch.promote_types(queries.dtype, base.dtype)
        dtype = dtype if dtype.is_floating_point else torch.get_default_dtype()
    if not dtype.is_floating_point:
        raise KnnArgumentError(f"knn_search: dtype must be a floating type, got {dtype}")
    return dtype


def _prepare(x: Tensor, metric: str) -> Tensor:
    """Rows scaled to unit length for cosine (zero rows stay zero); the data itself otherwise."""
    if metric != "cosine":
        return x
    norm = x.norm(dim=1, keepdim=True)
    return x / torch.where(norm > 0, norm, torch.ones_like(norm))


def _scores(q: Tensor, base: Tensor, base_sq: Tensor, metric: str) -> Tensor:
    """Ranking scores from one fused matrix product: (B, N), smaller is nearer.

    Each row is off by a constant from the metric (||b||^2 - 2 q.b lacks ||q||^2, -q.b lacks cosine's 1),
    which changes no ranking and saves passes over the (B, N) matrix; `_rescore` gives the true values.
    """
    if metric in ("euclidean", "sqeuclidean"):
        return torch.addmm(base_sq[None, :], q, base.T, alpha=-2)
    return torch.mm(-q, base.T)


def _rescore(q: Tensor, base: Tensor, cand: Tensor, metric: str) -> Tensor:
    """Exact scores of the candidates: (B, M) for `cand` (B, M), in pieces that bound the memory."""
    out = torch.empty(cand.shape, dtype=q.dtype, device=q.device)
    step = max(1, _RESCORE_ELEMENTS // max(1, cand.shape[1] * q.shape[1]))
    for r in range(0, q.shape[0], step):
        rows = cand[r:r + step]  # (b, M)
        qs = q[r:r + step, None, :]  # (b, 1, D)
        bs = base.index_select(0, rows.reshape(-1)).view(*rows.shape, -1)  # (b, M, D)
        if metric in ("euclidean", "sqeuclidean"):
            out[r:r + step] = (qs - bs).square().sum(-1)
        elif metric == "cosine":
            out[r:r + step] = (1 - (qs * bs).sum(-1)).clamp_(0, 2)
        else:
            out[r:r + step] = -(qs * bs).sum(-1)
    return out


def _select(q: Tensor, base: Tensor, scores: Tensor, tol: Tensor, k: int, metric: str) -> tuple[Tensor, Tensor]:
    """The k best of each row by (exact score, index) among the points the product cannot tell from them."""
    n = scores.shape[1]
    cand_scores, cand = scores.topk(min(n, k + _SHORTLIST_MARGIN), dim=1, largest=False)  # (B, M), sorted
    limit = cand_scores[:, k - 1] + tol  # (B,): a point scored above it is farther than the k-th best, exactly
    if cand.shape[1] < n and bool((cand_scores[:, -1] <= limit).any()):
        # more near-ties than the margin holds (duplicates, grid data): widen the shortlist to all of them
        m = int((scores <= limit[:, None]).sum(1).max())
        cand_scores, cand = scores.topk(m, dim=1, largest=False)
    exact = _rescore(q, base, cand, metric)
    exact = exact.masked_fill(cand_scores > limit[:, None], math.inf)
    # Index order first, then a stable sort by score: equal scores keep the lower index first.
    cand, order = cand.sort(dim=1)
    exact = exact.gather(1, order)
    exact, order = exact.sort(dim=1, stable=True)
    return exact[:, :k], cand.gather(1, order[:, :k])
