"""`lesions`: procedural dermoscopy-like images with binary lesion masks, the offline stand-in for PH2.

Each image is a patch of skin seen through a dermatoscope, drawn to be hard in the ways dermoscopy is:

- Skin: a tone from light to dark with mottling at two scales, fine grain, a white-balance cast and a
  few faint freckles that are not the lesion.
- The lesion: an irregular blob (its outline a sum of random harmonics), sometimes with a satellite
  lobe. Its radius is drawn log-uniformly, so it covers from about 1% of the field to a third, and
  half the lesions less than about 7%: lesion pixels are a tenth of all (class imbalance). Its border
  is fuzzy (1-6 pixels at 64 px) and its pigment thins out unevenly there, so the visible edge wanders
  inside the outline drawn in the mask, as an annotator's smooth outline does around real pigment.
  Its contrast with the skin varies from strong to barely visible (one image in five is faint: lesion
  colour close to skin), with lighter regression islands inside.
- Hairs: none in a third of the images, else 1-8 thin dark curves, about half of them crossing the lesion.
- Light: uneven (a ramp from one side and a smooth blotch), the vignetting of the instrument, and in
  some images the dark ring of its round field of view cutting the corners.

The mask is the lesion's outline (where its opacity reaches one half), not where the pigment shows.
Everything is drawn with numpy from `data.seed`: same seed, same images.
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
RADIUS_RANGE = (0.06, 0.32)  # lesion radius / image side, drawn log-uniformly: about 1% to 30% of the field
FAINT_SHARE = 0.2  # images whose lesion is barely darker than the skin
HAIR_COLOUR = np.array([34.0, 24, 20])
REFERENCE_SIDE = 64  # lengths below are in pixels at this side and scale with the image


def _blob(rng: np.random.Generator, size: int, centre: np.ndarray, radius: float) -> np.ndarray:
    """Signed distance-like field (float [H, W]): distance from `centre` minus the wobbling outline radius."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    dy, dx = ys - centre[0], xs - centre[1]
    angle = np.arctan2(dy, dx)
    outline = np.ones_like(angle)
    for k in HARMONICS:  # an irregular but star-shaped outline: the radius varies by up to about 40%
        outline += rng.uniform(0, 0.4 / k) * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
    return np.hypot(dy, dx) - radius * outline


def _lesion_field(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The lesion's opacity (float [H, W] in [0, 1], fuzzy border) and its mask (bool [H, W], opacity > 1/2)."""
    centre = size / 2 + rng.uniform(-0.18, 0.18, 2) * size
    radius = np.exp(rng.uniform(*np.log(RADIUS_RANGE))) * size
    field = _blob(rng, size, centre, radius)
    if rng.random() < 0.25:  # a satellite lobe joined to (or just beside) the main blob
        angle = rng.uniform(0, 2 * np.pi)
        offset = radius * rng.uniform(0.7, 1.2) * np.array([np.sin(angle), np.cos(angle)])
        field = np.minimum(field, _blob(rng, size, centre + offset, radius * rng.uniform(0.3, 0.6)))
    softness = rng.uniform(1.0, 6.0) * size / REFERENCE_SIDE  # width of the 12%-88% ramp of the border
    opacity = 1 / (1 + np.exp(np.clip(field / (softness / 4), -50, 50)))
    return opacity, opacity > 0.5


def _curve_distance(points: np.ndarray, size: int, reach: int) -> np.ndarray:
    """Distance (float [H, W]) from each pixel centre to the nearest of `points` (n, 2) as (y, x), exact within
    `reach` pixels of a point and infinite beyond (points are spaced well under a pixel apart)."""
    distance = np.full(size * size, np.inf)
    offsets = np.arange(-reach, reach + 1)
    base = np.floor(points).astype(int)
    rows = base[:, 0, None, None] + offsets[None, :, None]  # (n, k, 1)
    cols = base[:, 1, None, None] + offsets[None, None, :]  # (n, 1, k)
    d = np.hypot(rows + 0.5 - points[:, 0, None, None], cols + 0.5 - points[:, 1, None, None])  # (n, k, k)
    rows, cols = np.broadcast_to(rows, d.shape), np.broadcast_to(cols, d.shape)
    inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    np.minimum.at(distance, rows[inside] * size + cols[inside], d[inside])
    return distance.reshape(size, size)


def _hairs(rng: np.random.Generator, size: int, lesion_centre: np.ndarray | None = None) -> np.ndarray:
    """Opacity (float [H, W] in [0, 1]) of thin dark curves (quadratic Bezier): none in a third of the images,
    else 1-8; about half of them pass through `lesion_centre` when it is given."""
    cover = np.zeros((size, size))
    count = 0 if rng.random() < 1 / 3 else int(rng.integers(1, 9))
    t = np.linspace(0, 1, 4 * size)[:, None]  # points well under a pixel apart along the curve
    scale = size / REFERENCE_SIDE
    for _ in range(count):
        if lesion_centre is not None and rng.random() < 0.5:
            direction = rng.normal(size=2)
            reach = rng.uniform(0.3, 0.8) * size * direction / np.linalg.norm(direction)
            p0, p2 = lesion_centre + reach, lesion_centre - reach
            p1 = lesion_centre + rng.uniform(-0.2, 0.2, 2) * size
        else:
            p0, p1, p2 = (rng.uniform(-0.1, 1.1, 2) * size for _ in range(3))
        points = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2  # (n, 2) as (y, x)
        width = rng.uniform(0.4, 1.1) * scale
        distance = _curve_distance(points, size, int(np.ceil(1.5 * width)) + 1)
        cover = np.maximum(cover, np.clip(1.5 - distance / width, 0, 1) * rng.uniform(0.55, 0.95))
    return cover


def _skin(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Skin (float [H, W, 3]) with mottling, grain and faint freckles, and its base tone (3,)."""
    tone = SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.normal(0, 10, 3)
    mottling = (smooth_noise(rng, size, size, (4, 4)) - 0.5) + 0.5 * (smooth_noise(rng, size, size, (12, 12)) - 0.5)
    image = tone * (1 + rng.uniform(0.06, 0.16) * mottling[..., None])
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    for _ in range(int(rng.integers(0, 4))):  # freckles: small, soft and faint, never in the mask
        centre, radius = rng.uniform(0, size, 2), rng.uniform(0.8, 2.2) * size / REFERENCE_SIDE
        spot = np.exp(-((ys - centre[0]) ** 2 + (xs - centre[1]) ** 2) / (2 * radius ** 2))
        image *= 1 - rng.uniform(0.08, 0.25) * spot[..., None]
    return image, tone


def _pigment(rng: np.random.Generator, tone: np.ndarray, size: int) -> np.ndarray:
    """The lesion's colour (float [H, W, 3]): a pigment darker than the skin, blended towards the skin by a
    random contrast, patchy, with lighter regression areas; faint lesions are close to the skin's colour."""
    darker = [p for p in PIGMENTS if p.mean() < tone.mean() - 20] or [PIGMENTS[-1]]
    pigment = darker[rng.integers(len(darker))] + rng.normal(0, 8, 3)
    contrast = rng.uniform(0.2, 0.35) if rng.random() < FAINT_SHARE else rng.uniform(0.4, 0.9)
    colour = tone + contrast * (pigment - tone)
    patches = smooth_noise(rng, size, size, (7, 7))[..., None]
    regression = np.clip(smooth_noise(rng, size, size, (5, 5)) * 2.5 - 1.5, 0, 1)[..., None]  # light islands
    lesion = colour * (0.8 + 0.4 * patches)
    return lesion + rng.uniform(0.0, 0.5) * regression * (tone - lesion)


def _lighting(rng: np.random.Generator, size: int) -> np.ndarray:
    """Multiplicative light (float [H, W]): a ramp from one side, a smooth blotch, vignetting, and in some
    images the dark ring of the dermatoscope's round field of view."""
    ys, xs = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    light = 1 + rng.uniform(0.0, 0.5) * (np.cos(angle) * xs + np.sin(angle) * ys)
    light *= 1 + rng.uniform(0.0, 0.25) * (smooth_noise(rng, size, size, (3, 3)) - 0.5)
    radius = np.hypot(ys, xs) / 0.5  # 1 at the middle of each edge, 1.41 in the corners
    light *= 1 - rng.uniform(0.15, 0.5) * np.clip(radius ** 4, 0, 1.6) / 1.6
    if rng.random() < 0.4:
        rim = rng.uniform(0.95, 1.3)
        light *= 0.12 + 0.88 / (1 + np.exp((radius - rim) * size / 3))
    return light


def render_lesion(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One image (uint8 [3, H, W]) and its mask (uint8 [H, W], 1 on the lesion)."""
    image, tone = _skin(rng, size)
    opacity, mask = _lesion_field(rng, size)
    lesion = _pigment(rng, tone, size)
    # The pigment thins out unevenly towards the border, so the visible edge wanders inside the outline.
    density = 0.55 + 0.45 * smooth_noise(rng, size, size, (9, 9))
    shown = (opacity * (1 - 2 * (1 - density) * (1 - opacity)))[..., None]  # density x 1/2 at the outline, 1 inside
    image = image * (1 - shown) + lesion * shown
    centre = np.argwhere(mask).mean(0) + 0.5 if mask.any() else None
    hair = _hairs(rng, size, centre)[..., None]
    image = image * (1 - hair) + HAIR_COLOUR * hair
    image = image * _lighting(rng, size)[..., None] * rng.uniform(0.95, 1.05, 3)  # white-balance cast
    image = np.clip(image + rng.normal(0, rng.uniform(3, 7), image.shape), 0, 255)  # sensor grain
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
