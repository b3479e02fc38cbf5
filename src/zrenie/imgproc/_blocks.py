"""Running CPU ops block by block, so the many passes of an eager op stay in cache.

An eager torch op makes one pass over memory per elementwise step; rgb_to_hsv takes ~15 steps.
On a 1080p frame every step streams 8-24 MB through DRAM. Cut into blocks of ~2^16 pixels, the
intermediates fit in L2 and the same code runs ~2x faster (benchmarks/imgproc.py). Blocks are
only used where they cannot change the result: pointwise ops, without autograd, on CPU.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import Tensor

BLOCK_PIXELS = 1 << 16


def blocks(batch: int, height: int, width: int, pixels: int = BLOCK_PIXELS) -> Iterator[tuple[slice, slice]]:
    """(images, rows) slices that tile (batch, height) with about `pixels` pixels each."""
    per_image = height * width
    if per_image <= pixels:
        step = max(1, pixels // per_image)
        for start in range(0, batch, step):
            yield slice(start, min(batch, start + step)), slice(0, height)
        return
    rows = max(1, pixels // width)
    for image in range(batch):
        for top in range(0, height, rows):
            yield slice(image, image + 1), slice(top, min(height, top + rows))


def wants_blocks(image: Tensor) -> bool:
    """True for a large CPU tensor outside autograd, where blocks pay off and change nothing."""
    batch, _, height, width = image.shape
    return (image.device.type == "cpu" and not (torch.is_grad_enabled() and image.requires_grad)
            and batch * height * width > 4 * BLOCK_PIXELS)


def pointwise_in_blocks(fn: Callable[..., Tensor], image: Tensor, *args) -> Tensor:
    """`fn(image, *args)` for a per-pixel `fn` on Tensor[B, C, H, W], computed block by block when it pays."""
    if not wants_blocks(image):
        return fn(image, *args)
    batch, _, height, width = image.shape
    out = None
    for images, rows in blocks(batch, height, width):
        part = fn(image[images, :, rows], *args)
        if out is None:
            out = part.new_empty(batch, part.shape[1], height, width)
        out[images, :, rows] = part
    return out
