"""What `predict` returns: one `Result` per input, which prints, serialises, plots and saves itself.

Each task subclasses `Result` with its own fields (top-k classes, a mask, boxes ...) and `plot`;
`to_dict` gives plain JSON data and `save` writes the picture (`.png`/`.jpg`) or the data (`.json`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zrenie.config import atomic_path
from zrenie.errors import ConfigError


class Result:
    """One prediction. Subclasses set `source` (the input's name) and implement `to_dict` and `plot`."""

    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def rows(self) -> list[dict[str, str]]:
        """Rows of the table `zrenie TASK predict` prints (column -> text); one row of `to_dict` by default."""
        return [{k: str(v) for k, v in self.to_dict().items()}]

    def write_files(self, folder: str | Path) -> list[Path]:
        """Writes the pictures a prediction is (a segmentation's mask and overlay) into `folder`; most
        results are rows and JSON only and write nothing."""
        return []

    @classmethod
    def write_collection(cls, results: list["Result"], folder: str | Path) -> list[Path]:
        """Writes the files that describe all of one predict call's results together (detection's
        COCO-results JSON) into `folder`; none by default."""
        return []

    def plot(self, ax=None):
        """Draws the prediction on a matplotlib Axes (a new figure when None); returns the Axes."""
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Writes the plot (`.png`) or the data (`.json`) atomically; returns the path."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(self.to_dict(), indent=2))
            return path
        if path.suffix.lower() != ".png":
            raise ConfigError(f"cannot save a result as {path.suffix or 'a file without extension'}: "
                              f"use .png or .json ({path})")
        from matplotlib.figure import Figure  # imported on use: listing or predicting needs no plotting

        from zrenie.report.plots import save_figure

        fig = Figure(figsize=(6, 4))
        self.plot(fig.add_subplot())
        fig.tight_layout()
        return save_figure(fig, path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"
