"""Whole-batch augmentation on the device for in-memory datasets.

One call augments a whole batch with tensor ops, instead of a Python transform per sample: on a
small CNN the per-sample path spends more time in the DataLoader than in the model. Random numbers
come from an explicit generator so that a batch's augmentation depends only on (seed, epoch, batch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_crop(images: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Pads by `padding` (reflect) and crops back to the original size at a random offset per image.

    Args:
        images: Tensor[B, C, H, W].
    """
    if padding <= 0:
        return images
    b, c, h, w = images.shape
    padded = F.pad(images, (padding,) * 4, mode="reflect")
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=generator.device).to(images.device)
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=generator.device).to(images.device)
    # Gather rows then columns with per-image offsets: index grids of shape (B, H) and (B, W).
    rows = (torch.arange(h, device=images.device)[None] + dy[:, None])  # (B, H)
    cols = (torch.arange(w, device=images.device)[None] + dx[:, None])  # (B, W)
    out = padded.gather(2, rows[:, None, :, None].expand(b, c, h, padded.shape[3]))
    return out.gather(3, cols[:, None, None, :].expand(b, c, h, w))


def random_hflip(images: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    flip = torch.rand(len(images), generator=generator, device=generator.device).to(images.device) < p
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def cutout(images: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Zeroes one `size` x `size` square per image at a random centre (DeVries & Taylor 2017)."""
    if size <= 0:
        return images
    b, _, h, w = images.shape
    cy = torch.randint(0, h, (b,), generator=generator, device=generator.device).to(images.device)
    cx = torch.randint(0, w, (b,), generator=generator, device=generator.device).to(images.device)
    ys = torch.arange(h, device=images.device)[None, :]
    xs = torch.arange(w, device=images.device)[None, :]
    inside_y = (ys >= (cy - size // 2)[:, None]) & (ys < (cy - size // 2 + size)[:, None])  # (B, H)
    inside_x = (xs >= (cx - size // 2)[:, None]) & (xs < (cx - size // 2 + size)[:, None])  # (B, W)
    mask = inside_y[:, :, None] & inside_x[:, None, :]  # (B, H, W)
    return images.masked_fill(mask[:, None], 0.0)


def trivial_augment(images: Tensor, chunk: int = 8) -> Tensor:
    """TrivialAugment (Muller & Hutter 2021) on a float batch: one random op and strength per chunk.

    torchvision's v2 op draws one op for the whole tensor it is given; chunks of `chunk` images
    keep the per-image variety close while the work stays batched. Ops run on uint8, where every
    op of its table is defined. Randomness comes from torch's global generator (checkpointed).
    """
    from torchvision.transforms import v2

    op = v2.TrivialAugmentWide()
    as_uint8 = images.clamp(0, 1).mul(255).round().to(torch.uint8)
    out = torch.cat([op(part) for part in as_uint8.split(chunk)])
    return out.float().div_(255)


class BatchAugment:
    """A preset of batch ops: `none`, `light` (crop), `standard` (crop, flip where allowed, cutout),
    `strong` (standard with TrivialAugment before the cutout; MixUp/CutMix are applied by the step).

    Padding is 1/8 of the image side and the cutout 1/4 of it (4 and 8 pixels at 32x32, the
    values of the CIFAR baselines these presets follow).
    """

    def __init__(self, preset: str, image_size: int, hflip: bool):
        self.preset = preset
        self.padding = max(1, image_size // 8)
        self.cutout = max(1, image_size // 4)
        self.hflip = hflip

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        if self.preset == "none":
            return images
        images = random_crop(images, self.padding, generator)
        if self.preset in ("standard", "strong"):
            if self.hflip:
                images = random_hflip(images, generator)
            if self.preset == "strong":
                images = trivial_augment(images)
            images = cutout(images, self.cutout, generator)
        elif self.hflip:
            images = random_hflip(images, generator)
        return images
