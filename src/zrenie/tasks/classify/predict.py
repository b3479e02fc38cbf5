"""Classification predictions: a new image prepared as the model's inputs were, and its top-k result."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from zrenie.report.result import Result


def prepare_image(image: Tensor, meta: dict) -> Tensor:
    """Converts channels (RGB <-> gray, BT.601 luma as imgproc computes it) and resizes to the model's input.

    Args:
        image: Tensor[C, H, W] float in [0, 1], C in {1, 3, 4}.
    """
    from zrenie.imgproc.color import rgb_to_grayscale

    if image.shape[0] == 4:
        image = image[:3]
    if meta["in_channels"] == 1 and image.shape[0] == 3:
        image = rgb_to_grayscale(image[None], "bt601")[0]
    elif meta["in_channels"] == 3 and image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    size = meta["image_size"]
    if tuple(image.shape[1:]) != (size, size):
        image = F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)[0].clamp(0, 1)
    return image


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
