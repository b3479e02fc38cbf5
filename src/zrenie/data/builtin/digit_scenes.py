"""scikit-learn's real handwritten digits pasted at random positions and scales on noise backgrounds, with boxes.

The localisation task (one digit per image: classify it and regress its box) and, with several digits per
image, a small detection task. Each 8x8 digit (16 grey levels) is upsampled bilinearly to its pasted size and
used as the opacity of a flat ink colour over the background; opacities below `INK_THRESHOLD` are dropped, so
a pixel is either ink or background and the ink mask is exact. Boxes are the tight boxes of that mask in pixel
edges, `(x_min, y_min, x_max + 1, y_max + 1)`, as in `zrenie.data.builtin.shapes`.

The source digits of train, val and test scenes are disjoint: the 1,797 digits are split with the same
fractions and seed as the scenes, so a test scene never shows a handwritten digit seen in training.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from zrenie.config import DataConfig
from zrenie.data.base import DatasetSplits, InMemoryDataset, split_in_memory, stratified_split
from zrenie.data.builtin.shapes import masks_to_boxes, smooth_noise
from zrenie.errors import ConfigError
from zrenie.registry import DATASETS

CLASSES = tuple(str(d) for d in range(10))
TEST_FRACTION = 0.15
DEFAULT_SIZE = 64
DEFAULT_NUM_SAMPLES = 3000
MIN_SIZE = 24  # the smallest pasted digit is 8 px (its native size); below 24 px there is no room to move it
INK_THRESHOLD = 0.25  # opacity under which an upsampled pixel is background (the digit's faint rim)
SINGLE_SCALE = (0.35, 0.75)  # pasted side as a fraction of the image side, one digit per image
MULTI_SCALE = (0.2, 0.4)  # the same with several digits, which must fit side by side
ASPECT_RANGE = (0.8, 1.25)  # pasted width / height, so box shapes vary beyond the square digit grid
PIXEL_NOISE = 20.0  # std of the per-pixel noise of the background, grey levels
MIN_CONTRAST = 140.0  # Euclidean RGB distance between the ink and the background's mean colour
MAX_TRIES = 30  # positions tried for a digit of a multi-digit scene before it is left out


@dataclass
class DigitScene:
    """One rendered image with its annotations.

    Attributes:
        image: uint8 [3, H, W].
        background: uint8 [3, H, W] the image before any digit was pasted.
        masks: bool [N, H, W] the ink of each digit (digits never overlap).
        boxes: float32 [N, 4] (x1, y1, x2, y2) the tight box of each mask in pixel edges.
        labels: int64 [N] the digit, 0 to 9.
        sources: int64 [N] the index of each digit in `sklearn.datasets.load_digits()`.
    """

    image: np.ndarray
    background: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    sources: np.ndarray


@functools.lru_cache(maxsize=64)
def _upsample_matrix(n_out: int, n_in: int = 8) -> np.ndarray:
    """[n_out, n_in] bilinear weights with pixel-centre alignment (`align_corners=False`)."""
    x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    return np.stack([np.interp(x, np.arange(n_in), np.eye(n_in)[k]) for k in range(n_in)], axis=1)


def digit_opacity(digit: np.ndarray, height: int, width: int) -> np.ndarray:
    """A digit [8, 8] of levels 0-16 upsampled to float [height, width] opacity; under `INK_THRESHOLD` is 0."""
    alpha = _upsample_matrix(height) @ (digit / 16.0) @ _upsample_matrix(width).T
    return np.where(alpha >= INK_THRESHOLD, np.clip(alpha, 0.0, 1.0), 0.0)


def noise_background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth noise between two nearby colours plus per-pixel Gaussian noise.

    Returns:
        image: float [H, W, 3] in [0, 255].
        mean_color: float [3] the colour the texture varies around.
    """
    base = rng.uniform(0, 255, size=3)
    other = np.clip(base + rng.uniform(-60, 60, size=3), 0, 255)
    t = smooth_noise(rng, size, size, (int(rng.integers(3, 8)), int(rng.integers(3, 8))))[..., None]
    image = base + t * (other - base) + rng.normal(0, PIXEL_NOISE, size=(size, size, 1))
    return np.clip(image, 0, 255), (base + other) / 2


def _ink_color(rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    """A colour at least MIN_CONTRAST from `avoid` [3] if one of 32 candidates is, else the farthest."""
    candidates = rng.uniform(0, 255, size=(32, 3))
    distance = np.linalg.norm(candidates - avoid, axis=1)
    ok = np.flatnonzero(distance >= MIN_CONTRAST)
    return candidates[ok[0] if len(ok) else int(distance.argmax())]


def _ink_box(alpha: np.ndarray) -> tuple[int, int, int, int]:
    """(row0, col0, row1, col1), exclusive ends, of the non-zero pixels of a patch."""
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    return rows[0], cols[0], rows[-1] + 1, cols[-1] + 1


def render_digit_scene(rng: np.random.Generator, size: int, digits: np.ndarray, sources: np.ndarray,
                       scale_range: tuple[float, float] = SINGLE_SCALE) -> DigitScene:
    """Pastes the given digits, each at a random size and place, on a noise background.

    A digit whose ink box would touch an earlier one is moved (up to `MAX_TRIES` times) and otherwise left out,
    so the masks are disjoint and every pasted digit is whole.

    Args:
        rng: the only source of randomness.
        size: side of the square image.
        digits: float [K, 8, 8] sklearn digits, levels 0-16.
        sources: int64 [K] their indices in `load_digits()`, with their labels looked up by the caller.
        scale_range: pasted height as a fraction of `size`.
    """
    canvas, mean_color = noise_background(rng, size)
    background = np.round(canvas).astype(np.uint8)
    image = background.astype(np.float64)
    taken = np.zeros((size, size), dtype=bool)  # ink boxes so far, grown by one pixel
    masks, kept = [], []
    for k, digit in enumerate(digits):
        height = max(8, int(round(rng.uniform(*scale_range) * size)))
        width = min(size, max(8, int(round(height * rng.uniform(*ASPECT_RANGE)))))
        alpha = digit_opacity(digit, height, width)
        r0, c0, r1, c1 = _ink_box(alpha)
        alpha = alpha[r0:r1, c0:c1]  # only the ink's box needs a place in the image
        for _ in range(MAX_TRIES):
            y = int(rng.integers(0, size - alpha.shape[0] + 1))
            x = int(rng.integers(0, size - alpha.shape[1] + 1))
            window = (slice(y, y + alpha.shape[0]), slice(x, x + alpha.shape[1]))
            if not taken[window].any():
                break
        else:
            continue
        taken[max(y - 1, 0):y + alpha.shape[0] + 1, max(x - 1, 0):x + alpha.shape[1] + 1] = True
        ink = _ink_color(rng, mean_color)
        a = alpha[..., None]  # (h, w, 1)
        image[window] = (1 - a) * image[window] + a * ink
        mask = np.zeros((size, size), dtype=bool)
        mask[window] = alpha > 0
        masks.append(mask)
        kept.append(k)
    mask_arr = np.asarray(masks, dtype=bool).reshape(len(kept), size, size)
    return DigitScene(image=np.round(image).astype(np.uint8).transpose(2, 0, 1),
                      background=background.transpose(2, 0, 1), masks=mask_arr, boxes=masks_to_boxes(mask_arr),
                      labels=np.zeros(len(kept), dtype=np.int64), sources=np.asarray(sources)[kept].astype(np.int64))


def _source_pools(targets: np.ndarray, val_fraction: float, seed: int) -> list[list[np.ndarray]]:
    """pools[part][digit]: indices of the sklearn digits that scenes of split part (test, val, train) draw from."""
    parts = stratified_split(targets, [TEST_FRACTION, val_fraction], seed)
    return [[part[targets[part] == d] for d in range(10)] for part in parts]


def digit_scenes_arrays(num_images: int, size: int = DEFAULT_SIZE, max_digits: int = 1, seed: int = 0,
                        val_fraction: float = 0.1) -> tuple[list[DigitScene], np.ndarray]:
    """The scenes of the dataset, deterministic for a seed, and the strata their split is drawn with.

    With `max_digits` 1 every scene holds one digit, the classes balanced and the split stratified by digit;
    otherwise each holds 1 to `max_digits` random digits and the split is at random. The scene split is
    `stratified_split(strata, [TEST_FRACTION, val_fraction], seed)` (as `split_in_memory` draws it) and each
    scene takes its digits from the sklearn digits of its own part.

    Returns:
        scenes: `num_images` scenes; `labels` filled in.
        strata: int64 [num_images] for `split_in_memory`.
    """
    from sklearn.datasets import load_digits  # imported on use: listing datasets stays light

    bunch = load_digits()
    images, targets = bunch.images, bunch.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    single = max_digits == 1
    first = rng.permutation(np.arange(num_images) % 10)  # the digit of each single-digit scene, balanced
    strata = first if single else np.zeros(num_images, dtype=np.int64)
    part_of = np.empty(num_images, dtype=np.int64)
    for part, idx in enumerate(stratified_split(strata, [TEST_FRACTION, val_fraction], seed)):
        part_of[idx] = part
    pools = _source_pools(targets, val_fraction, seed)
    scenes = []
    for i in range(num_images):
        count = 1 if single else int(rng.integers(1, max_digits + 1))
        labels = first[i:i + 1] if single else rng.integers(0, 10, size=count)
        sources = np.array([_draw(rng, pools[part_of[i]][d], targets, d) for d in labels], dtype=np.int64)
        scene = render_digit_scene(rng, size, images[sources], sources, SINGLE_SCALE if single else MULTI_SCALE)
        scene.labels = targets[scene.sources]
        scenes.append(scene)
    return scenes, strata


def _draw(rng: np.random.Generator, pool: np.ndarray, targets: np.ndarray, digit: int) -> int:
    """A random index from `pool`; from every digit of that class if a tiny val split left the pool empty."""
    if len(pool) == 0:
        pool = np.flatnonzero(targets == digit)
    return int(pool[rng.integers(len(pool))])


@DATASETS.register("digit_scenes", tags=("boxes",))
def digit_scenes(cfg: DataConfig, target: str = "boxes") -> DatasetSplits:
    """Real digits on noise backgrounds with boxes: one per image (localisation) or several (detection).

    `data.size` is the image side (default 64, at least 24), `data.num_samples` the scenes in all splits
    (default 3000), `data.seed` seeds the scenes and the 75/10/15 split (`data.val_fraction` sets val).
    Targets are `{"boxes": Tensor[k, 4] XYXY pixel edges, "labels": Tensor[k] int64}`, classes "0" to "9".
    `data.max_objects` (default 1) is the most digits per image: 1 for localisation, more for detection.
    """
    if target != "boxes":
        raise ConfigError(f"dataset 'digit_scenes' serves box targets, not {target!r}")
    size = DEFAULT_SIZE if cfg.size is None else cfg.size
    num_samples = DEFAULT_NUM_SAMPLES if cfg.num_samples is None else cfg.num_samples
    max_digits = 1 if cfg.max_objects is None else cfg.max_objects
    if size < MIN_SIZE:
        raise ConfigError(f"config key 'data.size': digit_scenes needs images of at least {MIN_SIZE} pixels, "
                          f"got {size}")
    if not 1 <= max_digits <= 16:
        raise ConfigError(f"config key 'data.max_objects': digit_scenes holds 1 to 16 digits per image, "
                          f"got {max_digits}")
    if max_digits == 1 and num_samples < 10:
        raise ConfigError(f"config key 'data.num_samples': need at least one image per digit (10), got {num_samples}")
    scenes, strata = digit_scenes_arrays(num_samples, size, max_digits, cfg.seed, cfg.val_fraction)
    images = torch.from_numpy(np.stack([scene.image for scene in scenes]))
    targets = [{"boxes": torch.from_numpy(scene.boxes).float(), "labels": torch.from_numpy(scene.labels)}
               for scene in scenes]
    labels = torch.from_numpy(strata) if max_digits == 1 else None  # one class per image: samplers can use it
    full = InMemoryDataset(images, targets, list(CLASSES), labels=labels)
    return split_in_memory(full, strata, TEST_FRACTION, cfg, hflip=False)
