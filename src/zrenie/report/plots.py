"""Report pictures: learning curves, the learning rate, confusion matrices and captioned image grids, saved as PNG.

Figures are built with `matplotlib.figure.Figure` directly rather than `pyplot`, so no global
figure registry or GUI backend is involved: plotting is safe in worker threads, on headless
machines and in several runs at once.
"""

from __future__ import annotations

import csv
import math
import textwrap
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from torch import Tensor

from zrenie.config import atomic_path
from zrenie.errors import DataError, ShapeError

# Below this many pixels per side an image is upscaled (nearest) so that 8x8 digits stay visible.
MIN_CELL_PIXELS = 64
# Annotating every cell stops being readable beyond this many classes.
MAX_ANNOTATED_CLASSES = 20
# Beyond this many classes tick labels overlap even at the smallest font, so they are dropped.
MAX_LABELLED_CLASSES = 60
CAPTION_WIDTH = 22  # characters per caption line before wrapping
LOG_SCALE_SPAN = 10.0  # a loss whose max / min exceeds this is drawn on a log axis


def save_figure(fig: Figure, out_png: Path, dpi: int = 100) -> Path:
    """Saves a figure as PNG atomically: a temp file in the same folder, then a rename.

    A reader (the HTML report, a browser refreshing it) never sees a half-written file.

    Returns:
        The path written.
    """
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return out_png


def read_epochs(metrics_csv: Path) -> list[dict[str, float]]:
    """Reads a metrics.csv as one `{column: value}` dict per row, in file order.

    Empty cells (epochs without validation), text and non-finite values are left out of their
    row rather than read as zero, so `"val/acc1" in row` says whether that epoch was validated.
    """
    return _read_csv(metrics_csv)[1]


def _read_csv(metrics_csv: Path) -> tuple[list[str], list[dict[str, float]]]:
    metrics_csv = Path(metrics_csv)
    if not metrics_csv.is_file():
        raise DataError(f"metrics file not found: {metrics_csv}")
    try:
        with open(metrics_csv, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            raw = list(reader)
            columns = [c for c in (reader.fieldnames or []) if c]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"unreadable metrics file: {metrics_csv} ({type(err).__name__})") from None
    rows = []
    for cells in raw:
        values = {c: _to_float(cells.get(c)) for c in columns}
        rows.append({c: v for c, v in values.items() if v is not None})
    return columns, rows


def read_metric_columns(metrics_csv: Path) -> tuple[dict[str, dict[str, tuple[list[float], list[float]]]], str]:
    """Reads the `split/metric` columns of a metrics.csv.

    Columns without a `/` (epoch, lr, time) are not curves. Empty cells (epochs without
    validation) are skipped rather than read as zero.

    Returns:
        `({metric: {split: (xs, ys)}}, x_label)`, metrics and splits in column order; x is the
        `epoch` column when present, else the row number.
    """
    columns, rows = _read_csv(metrics_csv)
    x_label = "epoch" if "epoch" in columns else "row"
    curves: dict[str, dict[str, tuple[list[float], list[float]]]] = defaultdict(dict)
    for column in columns:
        if "/" not in column:
            continue
        split, metric = column.split("/", 1)
        points = [(_x(row, i, x_label), row[column]) for i, row in enumerate(rows) if column in row]
        points = [(x, y) for x, y in points if x is not None]
        if points:
            curves[metric][split] = ([x for x, _ in points], [y for _, y in points])
    return dict(curves), x_label


def _to_float(cell: str | None) -> float | None:
    if cell is None or not cell.strip():
        return None
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _x(row: dict[str, float], i: int, x_label: str) -> float | None:
    return row.get("epoch") if x_label == "epoch" else float(i + 1)


def uses_log_scale(metric: str, values: list[float]) -> bool:
    """Whether a learning-curve subplot gets a log y axis: a loss that spans more than `LOG_SCALE_SPAN`.

    A loss that falls from 2.3 to 0.02 looks flat after the first epochs on a linear axis, which hides
    the late progress and the gap between training and validation; within a factor of 10 the linear
    axis shows the same and reads more naturally. Accuracies and other bounded scores stay linear, and
    so does a loss with values <= 0 (adversarial losses), which a log axis cannot show.
    """
    if "loss" not in metric or not values or min(values) <= 0:
        return False
    return max(values) / min(values) > LOG_SCALE_SPAN


def plot_learning_curves(
    metrics_csv: Path, out_png: Path, exclude: Collection[str] = (), best_epoch: float | None = None
) -> Path:
    """Plots every `split/metric` column of a metrics.csv against the epoch.

    One subplot per metric name (loss, acc1, ...), one line per split (train, val, ...). A loss
    subplot has a log y axis when the loss spans more than a factor of 10 (see `uses_log_scale`).

    Args:
        metrics_csv: a CSV with a header row such as `epoch,lr,time,train/loss,val/loss,val/acc1`.
        out_png: where the PNG goes; folders are created.
        exclude: metric names (the part after `split/`) to leave out, e.g. `{"acc5"}`.
        best_epoch: the epoch of best.pt, marked with a dashed vertical line in every subplot.

    Returns:
        `out_png`.
    """
    curves, x_label = read_metric_columns(metrics_csv)
    excluded = set(exclude)
    curves = {metric: splits for metric, splits in curves.items() if metric not in excluded}
    if not curves:
        fig = Figure(figsize=(4, 2))
        fig.text(0.5, 0.5, f"no split/metric columns in {Path(metrics_csv).name}", ha="center", va="center")
        return save_figure(fig, out_png)
    ncols = min(3, len(curves))
    nrows = math.ceil(len(curves) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    # One colour per split across all subplots, so "val" is the same colour in loss and acc1.
    split_names = list(dict.fromkeys(split for splits in curves.values() for split in splits))
    colours = {split: f"C{i % 10}" for i, split in enumerate(split_names)}
    for ax, (metric, splits) in zip(axes, curves.items()):
        for split in (name for name in split_names if name in splits):
            xs, ys = splits[split]
            # Markers keep a curve with a handful of points (or one validation epoch) visible.
            ax.plot(xs, ys, label=split, color=colours[split], marker="o" if len(xs) <= 30 else None, markersize=3)
            _integer_ticks(ax, xs)
        log = uses_log_scale(metric, [y for _, ys in splits.values() for y in ys])
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 0.1, not 10^-1
        if best_epoch is not None:
            ax.axvline(best_epoch, color="0.5", linestyle="--", linewidth=1, label="best epoch")
        ax.set_title(f"{metric} (log scale)" if log else metric)
        ax.set_xlabel(x_label)
        ax.grid(True, alpha=0.3, which="both" if log else "major")
        ax.legend(fontsize="small")
    for ax in axes[len(curves):]:
        ax.set_visible(False)
    return save_figure(fig, out_png)


def plot_learning_rate(metrics_csv: Path, out_png: Path) -> Path:
    """Plots the `lr` column of a metrics.csv (the learning rate at the end of each epoch).

    The axis is linear: warmup, cosine and one-cycle schedules are recognised by their shape on a
    linear axis, and a schedule that ends at 0 has no place on a log one.

    Raises:
        DataError: the file is missing or has no `lr` values.
    """
    epochs = read_epochs(metrics_csv)
    points = [(row.get("epoch", float(i + 1)), row["lr"]) for i, row in enumerate(epochs) if "lr" in row]
    if not points:
        raise DataError(f"no lr column in {metrics_csv}")
    xs, ys = [x for x, _ in points], [y for _, y in points]
    fig = Figure(figsize=(4.2, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(xs, ys, color="C2", marker="o" if len(xs) <= 30 else None, markersize=3)
    _integer_ticks(ax, xs)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.set_ylim(bottom=0)
    ax.set_title("learning rate (end of epoch)")
    ax.set_xlabel("epoch" if "epoch" in epochs[0] else "row")
    ax.grid(True, alpha=0.3)
    return save_figure(fig, out_png)


def _integer_ticks(ax, xs: list[float]) -> None:
    if all(float(x).is_integer() for x in xs):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_confusion_matrix(
    cm: np.ndarray | Tensor, classes: list[str], out_png: Path, normalize: bool = True
) -> Path:
    """Draws a confusion matrix as a heatmap.

    Args:
        cm: `[C, C]` counts, rows = true class, columns = predicted class.
        classes: C class names, in index order.
        out_png: where the PNG goes; folders are created.
        normalize: colour each row by its fraction of the true class (recall on the diagonal),
            so rare classes are as visible as common ones; counts are still written in the cells.

    Returns:
        `out_png`.
    """
    counts = _as_numpy(cm).astype(np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ShapeError(f"confusion matrix must be [C, C], got {list(counts.shape)}")
    num_classes = counts.shape[0]
    if len(classes) != num_classes:
        raise ShapeError(f"confusion matrix is {num_classes}x{num_classes} but {len(classes)} class names given")
    if normalize:
        row_sums = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, row_sums, out=np.zeros_like(counts), where=row_sums > 0)
        vmax = 1.0
    else:
        values = counts
        vmax = max(float(counts.max(initial=0.0)), 1.0)
    side = min(max(4.0, 0.5 * num_classes + 2.5), 30.0)
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of true class" if normalize else "count")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if num_classes <= MAX_LABELLED_CLASSES:
        fontsize = 10 if num_classes <= 12 else 7
        ax.set_xticks(range(num_classes), [str(c) for c in classes], fontsize=fontsize)
        ax.set_yticks(range(num_classes), [str(c) for c in classes], fontsize=fontsize)
        if num_classes > 6 or max((len(str(c)) for c in classes), default=0) > 3:
            ax.tick_params(axis="x", labelrotation=45)
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
    if num_classes <= MAX_ANNOTATED_CLASSES:
        _annotate_cells(ax, counts, values / vmax)
    return save_figure(fig, out_png)


def _annotate_cells(ax, counts: np.ndarray, shade: np.ndarray) -> None:
    """Writes each count in its cell, white on dark cells so it stays readable."""
    fontsize = 9 if counts.shape[0] <= 10 else 6
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            text = f"{counts[i, j]:.0f}" if float(counts[i, j]).is_integer() else f"{counts[i, j]:.3g}"
            color = "white" if shade[i, j] > 0.5 else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=fontsize)


def class_bars(values: list[float], classes: list[str], ylabel: str, out_png: Path) -> Path:
    """One bar per class of a score in [0, 1] (per-class IoU, AP); NaN and negative "no data" values
    (COCO's -1) are drawn as 0.

    Args:
        values: one score per class; classes: their names, the x tick labels; ylabel: what the score is.
    """
    fig = Figure(figsize=(max(4.0, 0.45 * len(classes) + 1.5), 3.2), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(range(len(classes)), [0.0 if v != v or v < 0 else v for v in values], color="#4c72b0")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    return save_figure(fig, out_png)


def image_grid(images: Tensor, captions: list[str], out_png: Path, ncols: int = 8) -> Path:
    """Lays images out in a grid with a caption under each.

    Args:
        images: `Tensor[N, C, H, W]` float in [0, 1], C = 1 (grey) or 3 (RGB).
        captions: N strings, e.g. "true 3 / pred 8 (0.91)"; long ones are wrapped.
        out_png: where the PNG goes; folders are created.
        ncols: images per row (fewer when N is smaller).

    Returns:
        `out_png`.
    """
    images = torch.as_tensor(images).detach().cpu().float()
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ShapeError(f"image grid expects [N, 1 or 3, H, W], got {list(images.shape)}")
    if len(captions) != images.shape[0]:
        raise ShapeError(f"image grid got {images.shape[0]} images but {len(captions)} captions")
    if images.shape[0] == 0:
        fig = Figure(figsize=(3, 1))
        fig.text(0.5, 0.5, "no images", ha="center", va="center")
        return save_figure(fig, out_png)
    images = _upscale_nearest(images.clamp(0, 1))
    n, _, height, width = images.shape
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    wrapped = [textwrap.fill(str(c), CAPTION_WIDTH) for c in captions]
    caption_lines = max(c.count("\n") + 1 for c in wrapped)
    cell_w = 1.6
    cell_h = cell_w * height / width + 0.18 * caption_lines + 0.1
    fig = Figure(figsize=(cell_w * ncols, cell_h * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, image, caption in zip(axes, images, wrapped):
        if image.shape[0] == 1:
            ax.imshow(image[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(caption, fontsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    return save_figure(fig, out_png, dpi=110)


def _upscale_nearest(images: Tensor) -> Tensor:
    """Repeats pixels by an integer factor so tiny images (8x8 digits) have crisp, visible pixels."""
    side = max(images.shape[-2:])
    factor = max(1, math.ceil(MIN_CELL_PIXELS / side))
    if factor == 1:
        return images
    return images.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def _as_numpy(array: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(array, Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)
