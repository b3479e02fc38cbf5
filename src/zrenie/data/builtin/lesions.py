"""`lesions`: procedural dermoscopy-like images with binary lesion masks, the offline stand-in for PH2.

Each image is a patch of skin seen through a dermatoscope: a skin tone with smooth mottling and
fine grain, one pigmented lesion (an irregular blob whose outline is a sum of a few random
harmonics, with a darker, patchy core and a soft border of 1-3 pixels), 0-4 dark hairs crossing the
field, and the vignetting of the instrument's round field of view. The mask is the lesion's outline
(where the border's opacity reaches one half), so the soft border and the hairs make the task harder
than thresholding a colour. Everything is drawn with numpy from `data.seed`: same seed, same images.
"""

from __future__ import annotations

import numpy as np
import torch

from zrenie.config import DataConfig
from zrenie.data.base import DatasetSplits, InMemoryDataset, split_in_memory
from zrenie.data.builtin.shapes import smooth_noise
from zrenie.errors import ConfigError
from zrenie.registry import DATASETS

CLASSES = ("background", "lesion")
DEFAULT_SIZE = 64
DEFAULT_NUM_SAMPLES = 600
MIN_SIZE = 32
TEST_FRACTION = 0.15
# Skin tones (RGB) from light to dark, and lesion pigments from light brown to near black.
SKIN_TONES = np.array([[238, 204, 178], [224, 178, 146], [198, 150, 118], [160, 112, 84], [112, 78, 58]], float)
PIGMENTS = np.array([[150, 96, 64], [112, 66, 44], [80, 46, 34], [52, 32, 28]], float)
HARMONICS = range(2, 7)  # outline wobbles: 2 (oval) to 6 (lobes)


def _lesion_field(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The lesion's opacity (float [H, W] in [0, 1], soft border) and its mask (bool [H, W])."""
    centre = size / 2 + rng.uniform(-0.15, 0.15, 2) * size
    radius = rng.uniform(0.16, 0.34) * size
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    dy, dx = ys - centre[0], xs - centre[1]
    angle, distance = np.arctan2(dy, dx), np.hypot(dy, dx)
    outline = np.ones_like(angle)
    for k in HARMONICS:  # an irregular but star-shaped outline: the radius varies by at most about 30%
        outline += rng.uniform(0, 0.3 / k) * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
    edge = radius * outline
    softness = rng.uniform(1.0, 3.0)
    opacity = 1 / (1 + np.exp((distance - edge) / (softness / 4)))
    return opacity, distance < edge


def _hairs(rng: np.random.Generator, size: int) -> np.ndarray:
    """Opacity (float [H, W] in [0, 1]) of 0-4 thin dark curves (quadratic Bezier) crossing the field."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    cover = np.zeros((size, size))
    t = np.linspace(0, 1, size)[:, None]  # about one point per pixel of length
    for _ in range(int(rng.integers(0, 5))):
        p0, p1, p2 = (rng.uniform(-0.1, 1.1, 2) * size for _ in range(3))
        points = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2  # (n, 2) as (y, x)
        distance = np.sqrt(((ys[..., None] - points[:, 0]) ** 2 + (xs[..., None] - points[:, 1]) ** 2).min(-1))
        width = rng.uniform(0.4, 0.8)
        cover = np.maximum(cover, np.clip(1.5 - distance / width, 0, 1) * rng.uniform(0.6, 0.95))
    return cover


def render_lesion(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One image (uint8 [3, H, W]) and its mask (uint8 [H, W], 1 on the lesion)."""
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.normal(0, 8, 3)
    mottling = smooth_noise(rng, size, size, (5, 5))[..., None] - 0.5
    image = skin * (1 + 0.12 * mottling) + rng.normal(0, 4, (size, size, 3))  # grain
    opacity, mask = _lesion_field(rng, size)
    pigment = PIGMENTS[rng.integers(len(PIGMENTS))] + rng.normal(0, 6, 3)
    patches = smooth_noise(rng, size, size, (6, 6))[..., None]
    core = opacity[..., None] ** 2  # darker towards the middle
    lesion = pigment * (0.75 + 0.5 * patches) * (1 - 0.25 * core)
    image = image * (1 - opacity[..., None]) + lesion * opacity[..., None]
    hair = _hairs(rng, size)[..., None]
    image = image * (1 - hair) + np.array([30.0, 22, 18]) * hair
    ys, xs = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    vignette = 1 - rng.uniform(0.2, 0.5) * np.clip((np.hypot(ys, xs) / 0.5) ** 4, 0, 1.5)
    image = np.clip(image * vignette[..., None], 0, 255)
    return image.round().astype(np.uint8).transpose(2, 0, 1), mask.astype(np.uint8)


def lesion_images(num_images: int, size: int = DEFAULT_SIZE, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images Tensor[N, 3, S, S] uint8 and masks Tensor[N, S, S] uint8 (0 skin, 1 lesion), deterministic."""
    rng = np.random.default_rng(seed)
    pairs = [render_lesion(rng, size) for _ in range(num_images)]
    images = np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, 3, size, size), np.uint8)
    masks = np.stack([p[1] for p in pairs]) if pairs else np.zeros((0, size, size), np.uint8)
    return torch.from_numpy(images), torch.from_numpy(masks)


@DATASETS.register("lesions", tags=("mask",))
def lesions(cfg: DataConfig, target: str = "mask") -> DatasetSplits:
    """Skin-lesion-like images with binary masks (classes "background", "lesion").

    `data.size` is the side (default 64, at least 32); `data.num_samples` the images in all splits
    (default 600), split at random 15% test, `data.val_fraction` val, the rest train, seeded by
    `data.seed`, which also seeds the images.
    """
    if target != "mask":
        raise ConfigError(f"dataset 'lesions' has masks only, not {target!r} targets")
    size = DEFAULT_SIZE if cfg.size is None else cfg.size
    num_samples = DEFAULT_NUM_SAMPLES if cfg.num_samples is None else cfg.num_samples
    if size < MIN_SIZE:
        raise ConfigError(f"config key 'data.size': lesions needs images of at least {MIN_SIZE} pixels, got {size}")
    if num_samples < 3:
        raise ConfigError(f"config key 'data.num_samples': lesions needs at least 3 images (one per split), "
                          f"got {num_samples}")
    images, masks = lesion_images(num_samples, size, cfg.seed)
    return split_in_memory(InMemoryDataset(images, masks, CLASSES), np.zeros(num_samples), TEST_FRACTION, cfg)
