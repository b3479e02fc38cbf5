"""`zrenie compare RUN_DIR...`: final metrics side by side and one plot of the learning curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from matplotlib.figure import Figure

from zrenie.errors import ZrenieError
from zrenie.report.plots import read_metric_columns, save_figure

RESULTS_FILE = "results.json"  # test metrics written at the end of training


def run_summary(run_dir: Path) -> dict[str, Any]:
    """One row: the run's model and data, its last validation metrics and its test metrics."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.csv").is_file() or not (run_dir / "config.yaml").is_file():
        raise ZrenieError(f"{run_dir} is not a run directory (no metrics.csv or config.yaml)")
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        model, data = cfg["model"]["name"], cfg["data"]["name"]
    except (yaml.YAMLError, TypeError, KeyError, UnicodeDecodeError) as err:
        raise ZrenieError(f"{run_dir / 'config.yaml'}: not a run's config ({type(err).__name__})") from None
    try:
        columns, _ = read_metric_columns(run_dir / "metrics.csv")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ZrenieError(f"{run_dir / 'metrics.csv'}: not a metrics table ({type(err).__name__})") from None
    row: dict[str, Any] = {"run": str(run_dir), "model": model, "data": data}
    for metric, splits in columns.items():
        for split, (xs, ys) in splits.items():
            if split == "val" and ys:
                row["epochs"] = max(row.get("epochs", 0), int(xs[-1]))
                row[f"val/{metric}"] = ys[-1]
    results = run_dir / RESULTS_FILE
    if results.is_file():
        try:
            row.update({f"test/{k}": v for k, v in json.loads(results.read_text()).items()})
        except (ValueError, AttributeError, UnicodeDecodeError) as err:
            raise ZrenieError(f"{results}: not a results file ({type(err).__name__})") from None
    return row


def plot_runs(run_dirs: list[Path], out_png: Path, metrics: tuple[str, ...] = ("loss", "acc1")) -> Path:
    """One subplot per metric, one colour per run (validation curves; dashed: training); up to 20 runs
    get distinct colours, and with more than 6 the legend sits beside the plots."""
    from matplotlib import colormaps

    many = len(run_dirs) > 6
    fig = Figure(figsize=(6 * len(metrics) + (2.5 if many else 0), 4.5))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    palette = colormaps["tab10" if len(run_dirs) <= 10 else "tab20"]
    for i, run_dir in enumerate(run_dirs):
        columns, xlabel = read_metric_columns(Path(run_dir) / "metrics.csv")
        for ax, metric in zip(axes, metrics):
            for split, style in (("val", "-"), ("train", "--")):
                if split in columns.get(metric, {}):
                    xs, ys = columns[metric][split]
                    ax.plot(xs, ys, style, color=palette(i % palette.N), label=f"{Path(run_dir).name} {split}")
            ax.set_title(metric)
            ax.set_xlabel(xlabel)
    for ax in axes:
        ax.grid(alpha=0.3)
    if many:
        axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    else:
        for ax in axes:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, Path(out_png))
