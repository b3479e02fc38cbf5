"""Classification pictures and tables for the run report: confusion matrix, per-class scores, mistakes.

The test metrics are not here: the run report shows them once, in its summary
(`zrenie.report.run_report`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from zrenie.errors import ShapeError
from zrenie.report.html import Section
from zrenie.report.plots import MAX_ANNOTATED_CLASSES, image_grid, plot_confusion_matrix
from zrenie.tasks.classify.metrics import per_class_accuracy

CONFUSION_PNG = "confusion_matrix.png"
MISCLASSIFIED_PNG = "misclassified.png"
MAX_MISCLASSIFIED = 32


def _per_class_rows(confusion: Tensor, classes: list[str]) -> list[dict[str, Any]]:
    accuracy, precision, support = per_class_accuracy(confusion)
    f1 = 2 * precision * accuracy / (precision + accuracy)  # NaN where either is undefined
    f1 = torch.where((precision + accuracy) == 0, torch.zeros_like(f1), f1)
    correct = torch.as_tensor(confusion).detach().cpu().double().diagonal()

    def value(t: Tensor, i: int) -> float | None:
        return None if torch.isnan(t[i]) else float(t[i])

    return [
        {
            "class": name,
            "support": int(support[i]),
            "correct": int(correct[i]),
            "recall (accuracy)": value(accuracy, i),
            "precision": value(precision, i),
            "f1": value(f1, i),
        }
        for i, name in enumerate(classes)
    ]


def _misclassified_section(
    run_dir: Path,
    classes: list[str],
    misclassified: tuple[Tensor, Tensor, Tensor, Tensor],
) -> Section:
    """Writes the grid of the most confident mistakes, which say most about what the model confuses."""
    images, true, pred, confidence = (torch.as_tensor(t).detach().cpu() for t in misclassified)
    n = images.shape[0]
    if not (true.shape[0] == pred.shape[0] == confidence.shape[0] == n):
        raise ShapeError(
            f"misclassified images, true, pred and confidence must have the same length, got "
            f"{n}, {true.shape[0]}, {pred.shape[0]}, {confidence.shape[0]}"
        )
    title = "Misclassified test images"
    if n == 0:
        return Section(title=title, text="No misclassified images.")
    order = torch.argsort(confidence.float(), descending=True, stable=True)[:MAX_MISCLASSIFIED]
    captions = [
        f"true {classes[int(true[i])]} / pred {classes[int(pred[i])]} ({float(confidence[i]):.2f})" for i in order
    ]
    image_grid(images[order].float(), captions, Path(run_dir) / MISCLASSIFIED_PNG)
    return Section(
        title=title,
        images=[MISCLASSIFIED_PNG],
        text=f"{len(order)} of {n} misclassified images, most confident first.",
    )


def classification_sections(
    run_dir: Path,
    metrics: dict[str, Any],
    classes: list[str],
    confusion: Tensor,
    misclassified: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
) -> list[Section]:
    """Writes the classification pictures into a run directory and returns their report sections.

    Args:
        run_dir: the run directory; `confusion_matrix.png` and `misclassified.png` go there.
        metrics: unused; the test metrics are shown once, in the run report's summary. Kept so that
            callers passing it positionally need not change.
        classes: C class names, in index order.
        confusion: `Tensor[C, C]` counts, rows = true class, columns = predicted class.
        misclassified: `(images [N, C, H, W] in [0, 1], true [N], pred [N], confidence [N])`,
            or None to leave the section out. At most 32 are shown, most confident first.

    Returns:
        Sections: confusion matrix, per-class precision/recall/F1, misclassified images.
    """
    run_dir = Path(run_dir)
    confusion = torch.as_tensor(confusion).detach().cpu()
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or confusion.shape[0] != len(classes):
        raise ShapeError(f"confusion matrix must be [{len(classes)}, {len(classes)}], got {list(confusion.shape)}")
    plot_confusion_matrix(confusion, classes, run_dir / CONFUSION_PNG, normalize=True)
    sections = [
        Section(
            title="Confusion matrix",
            images=[CONFUSION_PNG],
            text="Rows: true class; columns: predicted class. Colour is the fraction of each true class"
            + ("; cells show counts." if len(classes) <= MAX_ANNOTATED_CLASSES else "."),
        ),
        Section(
            title="Per-class precision, recall and F1",
            table=_per_class_rows(confusion, classes),
            text="recall = correct / support (the class's accuracy); precision = correct / times predicted; "
            "F1 = their harmonic mean. Rare classes show here what overall accuracy hides.",
        ),
    ]
    if misclassified is not None:
        sections.append(_misclassified_section(run_dir, classes, misclassified))
    return sections
