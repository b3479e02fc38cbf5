"""Pictures of a classical-ML run: ROC curve, feature importances, the loss curve of the hand-written
logistic regression, and the grid search's scores (a heat map over two parameters, a line over one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

ROC_PNG = "roc.png"
IMPORTANCE_PNG = "importance.png"
LOSS_PNG = "loss_curve.png"
GRID_PNG = "grid.png"
MAX_BARS = 20


def _figure(size: tuple[float, float]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def plot_roc(y_true: np.ndarray, scores: np.ndarray, out_png: Path, auc: float,
             truth: np.ndarray | None = None) -> Path:
    """The ROC curve of `scores`, and of the generating probabilities `truth` when known (the best reachable)."""
    from sklearn.metrics import roc_curve

    from zrenie.report.plots import save_figure

    fig, ax = _figure((4.2, 4.0))
    fpr, tpr, _ = roc_curve(y_true, scores)
    ax.plot(fpr, tpr, label=f"model (AUC {auc:.3f})", color="#4c72b0")
    if truth is not None:
        from zrenie.data.builtin.churn import bayes_auc

        fpr, tpr, _ = roc_curve(y_true, truth)
        ax.plot(fpr, tpr, "--", color="#55a868", label=f"generating model (AUC {bayes_auc(truth, y_true):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, out_png)


def plot_importance(importances: dict[str, float], out_png: Path, xlabel: str) -> Path:
    """Horizontal bars of the largest `MAX_BARS` values by magnitude, largest on top."""
    from zrenie.report.plots import save_figure

    items = sorted(importances.items(), key=lambda kv: -abs(kv[1]))[:MAX_BARS][::-1]
    fig, ax = _figure((5.5, 0.28 * len(items) + 1.0))
    ax.barh(range(len(items)), [v for _, v in items], color="#4c72b0")
    ax.set_yticks(range(len(items)), [k for k, _ in items], fontsize=8)
    ax.set_xlabel(xlabel)
    return save_figure(fig, out_png)


def plot_loss_curve(curve: list[float], val_curve: list[float] | None, out_png: Path, unit: str) -> Path:
    """The training objective per iteration (or epoch), and the held-out loss with early stopping."""
    from zrenie.report.plots import save_figure

    fig, ax = _figure((5.0, 3.4))
    ax.plot(range(1, len(curve) + 1), curve, label="train objective / (C n)", color="#4c72b0")
    if val_curve:
        ax.plot(range(1, len(val_curve) + 1), val_curve, label="held-out log-loss", color="#dd8452")
    if min(curve) > 0 and max(curve) / min(curve) > 10:
        ax.set_yscale("log")
    ax.set_xlabel(unit)
    ax.legend(fontsize=8)
    return save_figure(fig, out_png)


def plot_grid(cv_results: dict[str, Any], grid: dict[str, list], scoring: str, out_png: Path) -> Path | None:
    """Mean cross-validated score over one parameter (a line) or two (a heat map with the values written in)."""
    from zrenie.report.plots import save_figure

    varied = [k for k, values in grid.items() if len(values) > 1]
    if not 1 <= len(varied) <= 2:
        return None
    scores = np.asarray(cv_results["mean_test_score"], dtype=np.float64)
    params = cv_results["params"]
    labels = {k: [str(v) for v in grid[k]] for k in varied}
    name = [k.removeprefix("model__") for k in varied]
    if len(varied) == 1:
        fig, ax = _figure((4.8, 3.4))
        ys = [np.mean([s for s, p in zip(scores, params) if str(p[varied[0]]) == v]) for v in labels[varied[0]]]
        ax.plot(range(len(ys)), ys, "o-", color="#4c72b0")
        ax.set_xticks(range(len(ys)), labels[varied[0]])
        ax.set_xlabel(name[0])
        ax.set_ylabel(f"mean CV {scoring}")
        return save_figure(fig, out_png)
    rows, cols = labels[varied[0]], labels[varied[1]]
    table = np.full((len(rows), len(cols)), np.nan)
    for s, p in zip(scores, params):
        table[rows.index(str(p[varied[0]])), cols.index(str(p[varied[1]]))] = s
    fig, ax = _figure((1.0 + 0.9 * len(cols), 1.0 + 0.5 * len(rows)))
    image = ax.imshow(table, cmap="viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(table):
        if value == value:
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8,
                    color="white" if value < np.nanmean(table) else "black")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(name[1])
    ax.set_ylabel(name[0])
    fig.colorbar(image, ax=ax, label=f"mean CV {scoring}")
    return save_figure(fig, out_png)


def grid_table(cv_results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per combination, best first: its values, mean and std of the CV score, and its rank."""
    rows = []
    for i in np.argsort(cv_results["rank_test_score"], kind="stable"):
        values = {k.removeprefix("model__"): v for k, v in cv_results["params"][i].items()}
        rows.append({**values, "mean CV score": round(float(cv_results["mean_test_score"][i]), 4),
                     "std": round(float(cv_results["std_test_score"][i]), 4),
                     "rank": int(cv_results["rank_test_score"][i])})
    return rows
