"""Classification predictions: a new image prepared as the model's inputs were, and its top-k result."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from zrenie.report.result import Result


class ClassificationResult(Result):
    """The top-k classes of one image.

    Args:
        source: the image's file name (or `tensor[i]`).
        top: (class name, probability) pairs, most probable first.
        image: Tensor[C, H, W] in [0, 1], for `plot`.
    """

    def __init__(self, source: str, top: list[tuple[str, float]], image: Tensor | None = None):
        self.source, self.top, self.image = source, top, image

    @property
    def label(self) -> str:
        return self.top[0][0]

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.source, "top": [{"class": c, "prob": p} for c, p in self.top]}

    def rows(self) -> list[dict[str, str]]:
        return [{"image": self.source if i == 0 else "", "rank": str(i + 1), "class": c, "probability": f"{p:.4f}"}
                for i, (c, p) in enumerate(self.top)]

    def plot(self, ax=None):
        """The image, titled with the top classes and their probabilities."""
        if ax is None:
            from matplotlib.figure import Figure

            ax = Figure(figsize=(4, 4)).add_subplot()
        if self.image is not None:
            picture = self.image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
            ax.imshow(picture[..., 0] if picture.shape[2] == 1 else picture[..., :3],
                      cmap="gray" if picture.shape[2] == 1 else None)
        ax.set_title("\n".join(f"{c}  {p:.1%}" for c, p in self.top[:3]), fontsize=9)
        ax.axis("off")
        return ax
