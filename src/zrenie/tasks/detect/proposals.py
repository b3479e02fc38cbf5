"""`zrenie detect proposals`: how many selective search proposals cover the objects (the R-CNN story).

    zrenie detect proposals data=shapes num_images=50 out=runs/detect_proposals

Runs `zrenie.ops.selective_search` on the first `num_images` test images of a dataset with box targets and
measures recall: the share of ground-truth boxes that some proposal among the first n overlaps at IoU >= 0.5
and >= 0.7, for every n. R-CNN took about 2,000 proposals per image; the curve shows where recall saturates on
the chosen data. Writes `OUT/proposals.csv` (one row per n) and `OUT/proposals_recall.png`, and prints a table
at a few budgets. Besides its own keys (`num_images`, `out`, `scale`, `sigma`, `min_size`, `strategies`,
`seed`) it takes the dataset's keys (`data=`, `data.size=`, `data.num_samples=`, `data.root=` ...).
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from zrenie.config import DataConfig, apply_overrides, atomic_path, parse_overrides
from zrenie.errors import ConfigError, DataError
from zrenie.ops import box_iou, selective_search
from zrenie.tasks import Verb

IOU_THRESHOLDS = (0.5, 0.7)
BUDGETS = (1, 10, 50, 100, 200, 500, 1000, 2000)  # proposal counts the printed table shows
CSV_NAME, PNG_NAME = "proposals.csv", "proposals_recall.png"


@dataclass
class ProposalsConfig:
    """The keys of `zrenie detect proposals`, typed and range-checked like a run's."""

    data: DataConfig = field(default_factory=lambda: DataConfig(name="shapes"))
    num_images: int = field(default=50, metadata={"help": "test images searched, >= 1", "range": ">= 1"})
    out: str = field(default="runs/detect_proposals", metadata={"help": "folder for the CSV and the plot"})
    scale: list = field(default_factory=lambda: [100.0, 300.0], metadata={
        "help": "Felzenszwalb scales (k), one segmentation each", "range": "> 0"})
    sigma: float = field(default=0.8, metadata={"help": "smoothing before segmentation, >= 0", "range": ">= 0"})
    min_size: int = field(default=20, metadata={"help": "smallest initial region in pixels, >= 1", "range": ">= 1"})
    strategies: list = field(default_factory=lambda: ["ctsf", "tsf"], metadata={
        "help": "similarity measures per hierarchy: letters of c(olour) t(exture) s(ize) f(ill)"})
    seed: int = field(default=0, metadata={"help": "seed of the randomised ranking, >= 0", "range": ">= 0"})


def proposals_config(args: Sequence[str]) -> ProposalsConfig:
    """`["data=shapes", "num_images=5"]` -> a checked config; an unknown key or a bad value is a ConfigError."""
    return apply_overrides(ProposalsConfig(), parse_overrides(list(args)))


def first_hits(truth: Tensor, proposals: Tensor, threshold: float) -> Tensor:
    """For each true box, the rank of the first proposal that overlaps it at IoU >= threshold.

    Args:
        truth: Tensor[G, 4] XYXY.
        proposals: Tensor[P, 4] XYXY, best ranked first.

    Returns:
        ranks: Tensor[G] int64 in [0, P), or -1 where no proposal reaches the threshold.
    """
    if len(truth) == 0 or len(proposals) == 0:
        return torch.full((len(truth),), -1, dtype=torch.long)
    hit = box_iou(truth.float(), proposals.float()) >= threshold  # (G, P)
    first = hit.long().argmax(dim=1)  # the first True of each row (argmax returns the first maximum)
    return torch.where(hit.any(dim=1), first, -1)


def recall_curve(hits: Tensor, max_proposals: int) -> Tensor:
    """Recall at n = 1..max_proposals proposals from the first-hit ranks of every true box (-1: never hit).

    Returns:
        recall: Tensor[max_proposals] float64; NaN when there are no true boxes.
    """
    if len(hits) == 0:
        return torch.full((max_proposals,), float("nan"), dtype=torch.float64)
    found = hits[(hits >= 0) & (hits < max_proposals)]
    return torch.bincount(found, minlength=max_proposals).cumsum(0).double() / len(hits)


def _test_images(cfg: ProposalsConfig) -> list[tuple[Tensor, Tensor]]:
    """The first `num_images` test images (Tensor[C, H, W]) and their boxes (Tensor[k, 4] XYXY)."""
    from zrenie.data.catalog import open_splits

    test = open_splits(cfg.data, target="boxes").test
    if len(test) == 0:
        raise DataError(f"dataset {cfg.data.name!r} has no test images")
    samples = []
    for i in range(min(cfg.num_images, len(test))):
        image, target = test[i]
        if not isinstance(image, Tensor):
            from torchvision.transforms.v2.functional import to_image

            image = to_image(image)
        samples.append((image, torch.as_tensor(target["boxes"]).as_subclass(Tensor).reshape(-1, 4)))
    return samples


def run_proposals(cfg: ProposalsConfig, say: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """Selective search on test images, recall vs number of proposals; returns rows, table, csv, png.

    Returns:
        {"rows": one dict per n (proposals, recall@0.5, recall@0.7), "table": the printed text, "csv": path,
         "png": path, "images": images searched, "boxes": true boxes, "mean_proposals", "seconds_per_image"}.
    """
    from zrenie.engine.logging import EpochProgress

    samples = _test_images(cfg)
    say(f"detect proposals: selective search on {len(samples)} test images of {cfg.data.name} "
        f"(scales {cfg.scale}, strategies {','.join(cfg.strategies)}) into {cfg.out}")
    hits: dict[float, list[Tensor]] = {t: [] for t in IOU_THRESHOLDS}
    counts = []
    bar = EpochProgress(progress)
    bar.start("selective search", len(samples))
    start = time.perf_counter()
    try:
        for image, truth in samples:
            boxes = selective_search(image, scale=cfg.scale, sigma=cfg.sigma, min_size=cfg.min_size,
                                     strategies=cfg.strategies, seed=cfg.seed)
            counts.append(len(boxes))
            for t in IOU_THRESHOLDS:
                hits[t].append(first_hits(truth, boxes, t))
            bar.update(1, info=f"{len(boxes)} proposals")
    finally:
        bar.stop()
    seconds = (time.perf_counter() - start) / len(samples)
    longest = max(max(counts), 1)
    curves = {t: recall_curve(torch.cat(h), longest) for t, h in hits.items()}
    rows = [{"proposals": n + 1, **{f"recall@{t}": curves[t][n].item() for t in IOU_THRESHOLDS}}
            for n in range(longest)]
    out = Path(cfg.out)
    csv_path, png_path = write_csv(out / CSV_NAME, rows), plot_recall(out / PNG_NAME, rows, cfg.data.name)
    num_boxes = len(torch.cat(hits[IOU_THRESHOLDS[0]]))
    table = recall_table(rows, sum(counts) / len(counts), num_boxes)
    return {"rows": rows, "table": table, "csv": csv_path, "png": png_path, "images": len(samples),
            "boxes": num_boxes, "mean_proposals": sum(counts) / len(counts), "seconds_per_image": seconds}


def recall_table(rows: list[dict[str, float]], mean_proposals: float, num_boxes: int) -> str:
    """Recall at the `BUDGETS` up to the most proposals any image got, then at all of them."""
    picks = [n for n in BUDGETS if n < len(rows)] + [len(rows)]
    columns = [f"recall@{t}" for t in IOU_THRESHOLDS]
    lines = [f"{num_boxes} true boxes, {mean_proposals:.0f} proposals per image on average",
             f"{'proposals':>10} " + " ".join(f"{c:>11}" for c in columns)]
    lines += [f"{n:>10} " + " ".join(f"{rows[n - 1][c]:>11.3f}" for c in columns) for n in picks]
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict[str, float]]) -> Path:
    """One row per number of proposals, full precision."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(text.getvalue())
    return path


def plot_recall(path: Path, rows: list[dict[str, float]], dataset: str) -> Path:
    """Recall against the number of proposals (log axis), one line per IoU threshold."""
    from matplotlib.figure import Figure

    from zrenie.report.plots import save_figure

    fig = Figure(figsize=(5, 3.6), layout="constrained")
    ax = fig.subplots()
    xs = [r["proposals"] for r in rows]
    for i, t in enumerate(IOU_THRESHOLDS):
        ax.plot(xs, [r[f"recall@{t}"] for r in rows], color=f"C{i}", label=f"IoU >= {t}")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("proposals per image (best ranked first)")
    ax.set_ylabel("recall")
    ax.set_title(f"selective search on {dataset}")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(loc="lower right")
    return save_figure(fig, path)


def _run_verb(ns: Any, api: Any) -> int:
    cfg = proposals_config(ns.args)
    if not cfg.scale or not cfg.strategies:
        raise ConfigError("scale= and strategies= need at least one value each")
    result = run_proposals(cfg)
    print(result["table"])
    print(f"{result['seconds_per_image']:.3f} s per image\ncsv: {result['csv']}\nplot: {result['png']}")
    return 0


PROPOSALS = Verb(
    help="selective search proposals on test images: recall vs number of proposals at IoU 0.5 and 0.7",
    arguments=[(("args",), {"nargs": "*", "metavar": "key=value",
                            "help": "num_images=N (default 50), out=DIR (default runs/detect_proposals), "
                                    "scale=100,300 sigma=0.8 min_size=20 strategies=ctsf,tsf seed=0, and data "
                                    "keys (default data=shapes)"})],
    run=_run_verb,
    examples=["zrenie detect proposals data=shapes",
              "zrenie detect proposals data=digit_scenes num_images=20 scale=50,100,200 out=runs/proposals"],
)
