"""Per-sample train and eval presets for datasets decoded from files, on `torchvision.transforms.v2`.

Each preset maps a uint8 image `(C, H, W)` (1 or 3 channels) to float32 `(C, S, S)` in [0, 1].
Normalisation is left out on purpose: the loader normalises whole batches on the device with the
dataset's mean/std, once, instead of per sample in the workers.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from zrenie.errors import ConfigError

AUGMENTS = ("none", "light", "standard", "strong")

# Train crops keep at least 35% of the image: ImageNet's usual 8% lower bound throws away too
# much of the small, often centred objects of course datasets.
CROP_SCALE = (0.35, 1.0)
# Eval resizes the shorter side to 8/7 of the crop (256 for 224), the ratio of the ImageNet
# evaluation protocol that torchvision's weights are measured with.
EVAL_RESIZE_RATIO = 8 / 7
ERASING_P = 0.25


def _to_float() -> v2.Transform:
    return v2.ToDtype(torch.float32, scale=True)  # uint8 [0, 255] -> float [0, 1]


def train_transform(image_size: int, augment: str, hflip: bool) -> v2.Compose:
    """The training preset.

    Args:
        image_size: side S of the square output.
        augment: "none" resizes the whole image to S x S (no crop, so the aspect ratio is not kept);
            "light" takes a random resized crop of 35-100% of the area, plus a horizontal flip
            when `hflip`; "standard" adds a small colour jitter and random erasing (p=0.25);
            "strong" replaces the jitter by TrivialAugment (Muller & Hutter 2021) before erasing
            (MixUp/CutMix, the rest of the strong preset, act on whole batches in the step).
        hflip: whether a horizontal flip keeps the label (False for digits and text).

    Returns:
        A transform from uint8 `(C, H, W)` to float32 `(C, S, S)` in [0, 1].
    """
    if augment not in AUGMENTS:
        raise ConfigError(f"unknown data.augment {augment!r}; expected one of {', '.join(AUGMENTS)}")
    if augment == "none":
        return v2.Compose([v2.Resize((image_size, image_size), antialias=True), _to_float()])
    steps: list[v2.Transform] = [v2.RandomResizedCrop(image_size, scale=CROP_SCALE, antialias=True)]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if augment == "strong":
        steps.append(v2.TrivialAugmentWide())  # on uint8, where every op of its table is defined
    steps.append(_to_float())
    if augment == "strong":
        steps.append(v2.RandomErasing(p=ERASING_P, value=0))
    if augment == "standard":
        # No hue shift: colour is often what tells classes apart (ripe vs unripe, species).
        # On 1-channel images v2 leaves saturation unchanged, so the preset serves both.
        steps.append(v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2))
        steps.append(v2.RandomErasing(p=ERASING_P, value=0))
    return v2.Compose(steps)


def eval_size(image_size: int) -> int:
    """Side the shorter edge is resized to before the centre crop: round(S * 8 / 7)."""
    return int(round(image_size * EVAL_RESIZE_RATIO))


def eval_transform(image_size: int) -> v2.Compose:
    """The evaluation preset: shorter side to round(S * 8 / 7), centre crop S x S, float in [0, 1].

    Args:
        image_size: side S of the square output.
    """
    return v2.Compose([
        v2.Resize(eval_size(image_size), antialias=True),
        v2.CenterCrop(image_size),
        _to_float(),
    ])
