"""Classical-ML speed against scikit-learn, each side in its own process so that whole runs can be compared.

    kNN search   `zrenie.ops.knn_search` vs `sklearn.neighbors.NearestNeighbors(algorithm="brute")`: 20,000
                 queries against 10,000 points of 64 dimensions, k = 10, float32 (the same neighbours).
    logreg       `zrenie.tasks.classic.LogisticRegression` (FISTA) vs scikit-learn's lbfgs: L2, C = 1, each at its
                 default tolerance, on the built-in churn table one-hot encoded and scaled (10,500 x 35; the one-hot
                 columns of a column sum to 1, so only the penalty makes the optimum unique: a badly conditioned
                 problem, where a first-order method needs many more steps than a quasi-Newton one).

Usage (the ratio of two whole-process timings is what benchmarks/README.md records):

    .venv/bin/python benchmarks/classic.py knn zrenie
    .venv/bin/python benchmarks/classic.py knn sklearn
    .venv/bin/python benchmarks/classic.py logreg zrenie
    .venv/bin/python benchmarks/classic.py logreg sklearn

Each prints the seconds of its timed part and what both sides can be checked by (the neighbours' index sum; the
objective C * sum(log-loss) + ||w||^2 / 2 reached).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def knn(side: str) -> tuple[float, str]:
    import torch
    from sklearn.neighbors import NearestNeighbors

    from zrenie.ops import knn_search

    rng = np.random.default_rng(0)
    base = rng.standard_normal((10_000, 64)).astype(np.float32)
    queries = rng.standard_normal((20_000, 64)).astype(np.float32)
    start = time.perf_counter()  # imports and data above are not timed
    if side == "zrenie":
        idx = knn_search(torch.from_numpy(queries), torch.from_numpy(base), k=10)[1].numpy()
    else:
        idx = NearestNeighbors(n_neighbors=10, algorithm="brute").fit(base).kneighbors(queries)[1]
    return time.perf_counter() - start, f"neighbour index sum {int(idx.sum())}"


def logreg(side: str) -> tuple[float, str]:
    from zrenie.data.builtin.churn import churn_split, churn_table
    from zrenie.tasks.classic.tabular import preprocessor, split_columns

    frame, _ = churn_table()
    train = churn_split(frame["target"].to_numpy())["train"]
    numeric, categorical = split_columns(frame, "target", "id")
    x = preprocessor(numeric, categorical).fit_transform(frame.iloc[train])
    y = frame["target"].to_numpy()[train]
    from sklearn.linear_model import LogisticRegression as Reference

    from zrenie.tasks.classic import LogisticRegression

    start = time.perf_counter()  # imports and data above are not timed
    model = (LogisticRegression if side == "zrenie" else Reference)(C=1.0).fit(x, y)
    seconds = time.perf_counter() - start
    margins = (x @ model.coef_[0] + model.intercept_[0]) * np.where(y == 1, 1, -1)
    objective = np.logaddexp(0, -margins).sum() + 0.5 * np.square(model.coef_).sum()
    return seconds, f"objective {objective:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("knn", "logreg"))
    parser.add_argument("side", choices=("zrenie", "sklearn"))
    ns = parser.parse_args()
    seconds, check = (knn if ns.what == "knn" else logreg)(ns.side)
    print(f"{ns.what} {ns.side}: {seconds:.3f} s  ({check})")


if __name__ == "__main__":
    main()
