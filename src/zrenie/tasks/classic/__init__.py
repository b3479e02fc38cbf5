"""Classical machine learning (the warm-up weeks): `zrenie classic knn|logreg|boost|search`.

The estimators import scikit-learn, pandas and CatBoost, so they load on first use: listing the tasks
stays light. `zrenie.tasks.classic.LogisticRegression` is the hand-written logistic regression.
"""

from __future__ import annotations

from zrenie.tasks.classic import task  # noqa: F401  (registers the task; its module imports nothing heavy)

_LAZY = {"LogisticRegression": "zrenie.tasks.classic.logreg", "KNNClassifier": "zrenie.tasks.classic.knn"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
