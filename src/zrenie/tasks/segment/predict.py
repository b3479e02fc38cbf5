"""Segmentation predictions: an image prepared as eval prepared the test split, its class map and overlay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zrenie.report.result import Result

OVERLAY_ALPHA = 0.5


def prepare_batch(image: Tensor, meta: dict, device: torch.device) -> Tensor:
    """A batch of one image, channels converted, resized as the run's eval preset and normalised."""
    from zrenie.data.loading import Normalize
    from zrenie.data.transforms import prepare_image  # torchvision, imported on use

    x = prepare_image(image, meta)[None].to(device)
    return Normalize(meta["mean"], meta["std"], device)(x)


def palette(num_classes: int) -> np.ndarray:
    """uint8 [K, 3] colours: black for the background (class 0), then Pascal VOC's bit-interleaved palette,
    so class k has the colour VOC gives label k."""
    colours = np.zeros((max(num_classes, 1), 3), dtype=np.uint8)
    for k in range(num_classes):
        c, label = [0, 0, 0], k
        for shift in range(7, -1, -1):
            for channel in range(3):
                c[channel] |= ((label >> channel) & 1) << shift
            label >>= 3
        colours[k] = c
    return colours


def overlay(image: Tensor, mask: Tensor, num_classes: int, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """uint8 [H, W, 3]: the image with every non-background pixel tinted by its class colour."""
    rgb = image[:3].expand(3, -1, -1) if image.shape[0] == 1 else image[:3]
    base = (rgb.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.float64)
    colours = palette(num_classes)[mask.numpy()].astype(np.float64)
    tint = (mask.numpy() > 0)[..., None]
    return np.where(tint, (1 - alpha) * base + alpha * colours, base).round().astype(np.uint8)


class MaskResult(Result):
    """The class map of one image.

    Args:
        source: the image's file name (or `tensor[i]`).
        mask: Tensor[H, W] int64 class indices at the image's size.
        classes: class names, index 0 the background.
        image: Tensor[C, H, W] in [0, 1], for the overlay.
    """

    def __init__(self, source: str, mask: Tensor, classes: list[str], image: Tensor | None = None):
        self.source, self.mask, self.classes, self.image = source, mask, list(classes), image

    def fractions(self) -> dict[str, float]:
        """Share of the image's pixels per class present, largest first."""
        counts = torch.bincount(self.mask.flatten(), minlength=len(self.classes)).double()
        shares = (counts / max(1, self.mask.numel())).tolist()
        return dict(sorted(((c, s) for c, s in zip(self.classes, shares) if s > 0), key=lambda kv: -kv[1]))

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.source, "size": list(self.mask.shape), "pixels": self.fractions()}

    def rows(self) -> list[dict[str, str]]:
        return [{"image": self.source if i == 0 else "", "class": c, "pixels": f"{s:.2%}"}
                for i, (c, s) in enumerate(self.fractions().items())]

    def write_files(self, folder: str | Path) -> list[Path]:
        """`<stem>_mask.png` (class indices as grey levels, at the input's size) and `<stem>_overlay.png`."""
        from PIL import Image

        from zrenie.config import atomic_path

        folder = Path(folder)
        stem = Path(self.source).stem or "image"
        written = []
        mask_path = folder / f"{stem}_mask.png"
        with atomic_path(mask_path) as tmp:
            Image.fromarray(self.mask.numpy().astype(np.uint8)).save(tmp, format="PNG")
        written.append(mask_path)
        if self.image is not None:
            over_path = folder / f"{stem}_overlay.png"
            with atomic_path(over_path) as tmp:
                Image.fromarray(overlay(self.image, self.mask, len(self.classes))).save(tmp, format="PNG")
            written.append(over_path)
        return written

    def plot(self, ax=None):
        """The overlay, titled with the largest classes and their shares."""
        if ax is None:
            from matplotlib.figure import Figure

            ax = Figure(figsize=(4, 4)).add_subplot()
        picture = overlay(self.image, self.mask, len(self.classes)) if self.image is not None else \
            palette(len(self.classes))[self.mask.numpy()]
        ax.imshow(picture)
        top = list(self.fractions().items())[:3]
        ax.set_title(f"{Path(self.source).name}\n" + ", ".join(f"{c} {s:.0%}" for c, s in top), fontsize=9)
        ax.axis("off")
        return ax
