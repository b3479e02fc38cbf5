"""Where training reports go: a rich progress bar, metrics.csv and TensorBoard.

Only the main process logs; the others get a `RunLogger` that does nothing.
"""

from __future__ import annotations

import csv
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from zrenie.config import atomic_path

console = Console(stderr=True)


def print_run_header(title: str, rows: list[tuple[str, str]]) -> None:
    """The first lines of a run: what runs, on what, where it writes (one `name  value` line each)."""
    width = max(len(name) for name, _ in rows)
    console.print(title, highlight=False, soft_wrap=True)
    for name, value in rows:
        console.print(f"  {name:<{width}}  {value}", highlight=False, soft_wrap=True)


class EpochProgress:
    """A progress bar over one epoch showing loss, images/s and ETA; silent when disabled."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and console.is_terminal
        self.progress = None

    def start(self, description: str, total: int) -> None:
        if not self.enabled:
            return
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task(description, total=total, info="")

    def update(self, advance: int, info: str | None = None) -> None:
        """Advances the bar; `info` replaces the text beside it (None keeps the last one)."""
        if self.progress is not None:
            fields = {} if info is None else {"info": info}
            self.progress.update(self.task, advance=advance, **fields)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class RunLogger:
    """metrics.csv (one row per epoch) and TensorBoard scalars/images in the run directory."""

    def __init__(self, run_dir: Path | None, tensorboard: bool, resume: bool):
        self.run_dir = run_dir
        self.writer = None
        if run_dir is None:
            return
        self.csv_path = run_dir / "metrics.csv"
        if not resume and self.csv_path.exists():
            self.csv_path.unlink()
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=None)

    def log_epoch(self, row: dict[str, Any]) -> None:
        if self.run_dir is None:
            return
        rows = []
        if self.csv_path.exists():
            with self.csv_path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < row["epoch"]]
        rows.append({k: _fmt(v) for k, v in row.items()})
        fields = list(dict.fromkeys(k for r in rows for k in r))
        with atomic_path(self.csv_path) as tmp, tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, row["epoch"])
            self.writer.flush()

    def ensure_row(self, row: dict[str, Any]) -> None:
        """Writes `row` into metrics.csv unless its epoch is there (resume repairs a row a kill lost)."""
        if self.run_dir is None:
            return
        if self.csv_path.exists():
            with self.csv_path.open(newline="") as f:
                if any(int(r["epoch"]) == row["epoch"] for r in csv.DictReader(f)):
                    return
        self.log_epoch(row)

    def log_images(self, tag: str, images: torch.Tensor, step: int) -> None:
        """images: Tensor[N, C, H, W], any range; each is min-max scaled for display."""
        if self.writer is None or images.ndim != 4 or images.shape[1] not in (1, 3):
            return
        x = images[:16].detach().float().cpu()
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = x.amax(dim=(1, 2, 3), keepdim=True)
        self.writer.add_images(tag, (x - lo) / (hi - lo).clamp_min(1e-8), step)

    def log_weights(self, model: torch.nn.Module, step: int, prefix: str = "") -> None:
        """A histogram of every parameter tensor (TensorBoard's "Histograms" tab); `prefix` names the model."""
        if self.writer is None:
            return
        for name, param in model.named_parameters():
            self.writer.add_histogram(f"weights/{prefix}{name}", param.detach().float().cpu(), step)

    def log_graph(self, model: torch.nn.Module, images: torch.Tensor) -> None:
        """The model graph, traced in eval mode with the RNG forked, so training is not disturbed."""
        if self.writer is None or not isinstance(images, torch.Tensor):
            return
        import contextlib
        import io

        was_training = model.training
        model.eval()
        printed = io.StringIO()  # TensorBoard prints a failed trace's error itself before raising
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad(), warnings.catch_warnings(), \
                    contextlib.redirect_stdout(printed):
                warnings.simplefilter("ignore")
                self.writer.add_graph(model, images[:2])
        except Exception as err:  # tracing fails on some control flow and on dict outputs; the graph is optional
            reason = (printed.getvalue().strip().splitlines() or [str(err)])[0]
            warnings.warn(f"TensorBoard graph skipped: {type(err).__name__}: {reason}", stacklevel=2)
        finally:
            model.train(was_training)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


class Throughput:
    """Images per second over the current epoch."""

    def __init__(self):
        self.start = time.perf_counter()
        self.count = 0

    def add(self, n: int) -> float:
        self.count += n
        return self.count / max(1e-9, time.perf_counter() - self.start)
