"""Procedural coloured shapes on textured backgrounds: classes, instance masks, boxes, semantic masks.

Every shape is a flat colour without antialiasing, so a pixel belongs to exactly one object or to
the background and the masks are exact. Backgrounds are textured (smooth noise, stripes, checker,
gradient) in a random colour and shapes take random colours that contrast with what lies under
them: only the outline tells the class.

Geometry conventions:
    - Pixel (row i, column j) covers [j, j + 1) x [i, i + 1); it is inside a shape when its centre
      (j + 0.5, i + 0.5) is, so the mask area tends to the geometric area as shapes grow.
    - A shape of `radius` r fits in the disc of radius r around its centre (r is its circumradius).
    - Boxes are XYXY in absolute pixel edges: `(x_min, y_min, x_max + 1, y_max + 1)` of the mask's
      pixel indices, the convention under which torchvision's v2 flips and resizes of boxes agree
      with the same transforms of the masks. (`torchvision.ops.masks_to_boxes` returns the
      inclusive `(x_max, y_max)` instead, one pixel less.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from zrenie.config import DataConfig
from zrenie.data.base import DatasetSplits, InMemoryDataset, split_in_memory
from zrenie.errors import ConfigError
from zrenie.registry import DATASETS

# The first eight are the default classes; the order fixes the class index.
SHAPE_KINDS = ("circle", "square", "triangle", "star", "hexagon", "cross", "ellipse", "diamond",
               "pentagon", "heart", "crescent", "ring")

TEST_FRACTION = 0.15
DEFAULT_SIZE = 32
DEFAULT_NUM_CLASSES = 8
DEFAULT_NUM_SAMPLES = 3000
MIN_SIZE = 16  # below this a star, a hexagon and a circle differ by a few pixels

STAR_INNER = 0.45  # inner/outer radius; thicker than the regular pentagram's 0.38 so arms survive at 32 px
CROSS_HALF_WIDTH = 0.3  # arm half-width, in units of the radius
CROSS_LENGTH = 0.95  # arm half-length; corners at sqrt(0.95^2 + 0.3^2) < 1 stay inside the unit disc
RING_INNER = 0.55  # hole radius of a ring
CRESCENT_CUT = (0.5, 0.8)  # centre offset and radius of the disc cut from a crescent
ASPECT_RANGE = (0.45, 0.65)  # minor/major axis of ellipses and diamonds; far from 1 so never a circle or square
MIN_CONTRAST = 90.0  # Euclidean RGB distance between a shape's colour and the colours under it


@dataclass(frozen=True)
class ShapeSpec:
    """One shape's geometry, in absolute pixels.

    Attributes:
        kind: one of `SHAPE_KINDS`.
        cx: centre x (columns).
        cy: centre y (rows).
        radius: circumradius.
        angle: rotation in radians.
        aspect: minor/major axis of an ellipse or diamond; ignored by the other kinds.
    """

    kind: str
    cx: float
    cy: float
    radius: float
    angle: float = 0.0
    aspect: float = 0.55


@dataclass
class Scene:
    """One rendered image with its annotations; objects are listed back to front (paint order).

    Attributes:
        image: uint8 [3, H, W].
        labels: int64 [N] class index into the `shape_classes` the scene was drawn from.
        masks: bool [N, H, W] visible pixels of each object, after occlusion by later objects.
        boxes: float32 [N, 4] (x1, y1, x2, y2), the tight box of each visible mask in pixel edges.
        semantic: int64 [H, W] 0 for background, k + 1 for class k.
        colors: uint8 [N, 3] the flat RGB colour of each object.
        shapes: the geometry of each object, unoccluded.
    """

    image: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    semantic: np.ndarray
    colors: np.ndarray
    shapes: list[ShapeSpec]


def _regular_polygon(n: int, phase: float = -np.pi / 2) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _star() -> np.ndarray:
    radii = np.where(np.arange(10) % 2 == 0, 1.0, STAR_INNER)
    t = -np.pi / 2 + np.pi * np.arange(10) / 5
    return np.stack([radii * np.cos(t), radii * np.sin(t)], axis=1)


def _cross() -> np.ndarray:
    w, h = CROSS_HALF_WIDTH, CROSS_LENGTH
    return np.array([(-w, -h), (w, -h), (w, -w), (h, -w), (h, w), (w, w),
                     (w, h), (-w, h), (-w, w), (-h, w), (-h, -w), (-w, -w)], dtype=np.float64)


def _heart(n: int = 40) -> np.ndarray:
    # The classic parametric heart; v grows downwards as image rows do, so the point is at the bottom.
    t = 2 * np.pi * np.arange(n) / n
    pts = np.stack([16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))], 1)
    pts -= (pts.max(0) + pts.min(0)) / 2
    return pts / np.linalg.norm(pts, axis=1).max()


# Unit outlines in the shape's own frame (u right, v down), circumradius 1.
_OUTLINES = {
    "square": _regular_polygon(4, np.pi / 4),
    "triangle": _regular_polygon(3),
    "star": _star(),
    "hexagon": _regular_polygon(6),
    "cross": _cross(),
    "pentagon": _regular_polygon(5),
    "heart": _heart(),
}


def shape_outline(kind: str, aspect: float = 0.55) -> np.ndarray | None:
    """The unit polygon of a kind, or None for the curved kinds (circle, ellipse, crescent, ring).

    Returns:
        vertices: [V, 2] (u, v) in the shape's frame, v pointing down, circumradius 1.
    """
    if kind == "diamond":
        return np.array([(0.0, -1.0), (aspect, 0.0), (0.0, 1.0), (-aspect, 0.0)])
    if kind not in SHAPE_KINDS:
        raise ConfigError(f"unknown shape kind {kind!r}; known: {', '.join(SHAPE_KINDS)}")
    return _OUTLINES.get(kind)


def _inside_polygon(u: np.ndarray, v: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule for points against all edges at once: bool of the shape of `u`."""
    x, y = u.reshape(1, -1), v.reshape(1, -1)  # (1, P)
    x0, y0 = poly[:, :1], poly[:, 1:]  # (E, 1)
    nxt = np.roll(poly, -1, axis=0)
    x1, y1 = nxt[:, :1], nxt[:, 1:]
    dy = y1 - y0
    slope = np.divide(x1 - x0, dy, out=np.zeros_like(dy), where=dy != 0)  # horizontal edges never cross
    crosses = ((y0 > y) != (y1 > y)) & (x < x0 + (y - y0) * slope)  # (E, P)
    return (np.count_nonzero(crosses, axis=0) % 2 == 1).reshape(u.shape)


def _inside_unit_shape(kind: str, u: np.ndarray, v: np.ndarray, aspect: float) -> np.ndarray:
    rr = u * u + v * v
    if kind == "circle":
        return rr <= 1.0
    if kind == "ellipse":
        return u * u + (v / aspect) ** 2 <= 1.0
    if kind == "ring":
        return (rr <= 1.0) & (rr >= RING_INNER ** 2)
    if kind == "crescent":
        offset, cut = CRESCENT_CUT
        return (rr <= 1.0) & ((u - offset) ** 2 + v * v > cut ** 2)
    return _inside_polygon(u, v, shape_outline(kind, aspect))


def rasterize_shape(spec: ShapeSpec, image_size: int | tuple[int, int]) -> np.ndarray:
    """The pixels whose centres lie inside a shape.

    Args:
        spec: the shape's geometry.
        image_size: side of a square image, or (H, W).

    Returns:
        mask: bool [H, W].
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    mask = np.zeros((height, width), dtype=bool)
    # Only the window around the circumscribed disc is tested, so small objects in big scenes are cheap.
    r0, r1 = max(int(np.floor(spec.cy - spec.radius)), 0), min(int(np.ceil(spec.cy + spec.radius)) + 1, height)
    c0, c1 = max(int(np.floor(spec.cx - spec.radius)), 0), min(int(np.ceil(spec.cx + spec.radius)) + 1, width)
    if r0 >= r1 or c0 >= c1:
        return mask
    dy = (np.arange(r0, r1) + 0.5 - spec.cy)[:, None]  # (h, 1)
    dx = (np.arange(c0, c1) + 0.5 - spec.cx)[None, :]  # (1, w)
    cos, sin = np.cos(spec.angle), np.sin(spec.angle)
    u = (dx * cos + dy * sin) / spec.radius  # (h, w)
    v = (dy * cos - dx * sin) / spec.radius
    mask[r0:r1, c0:c1] = _inside_unit_shape(spec.kind, u, v, spec.aspect)
    return mask


@functools.lru_cache(maxsize=16)
def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """[n_out, n_in] linear interpolation weights, for separable upsampling of a coarse grid."""
    x = np.linspace(0, n_in - 1, n_out)
    return np.stack([np.interp(x, np.arange(n_in), np.eye(n_in)[k]) for k in range(n_in)], axis=1)


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: tuple[int, int]) -> np.ndarray:
    """A float [H, W] field in [0, 1]: random values on a coarse `cells` grid, interpolated linearly."""
    grid = rng.random(cells)
    return _interp_matrix(height, cells[0]) @ grid @ _interp_matrix(width, cells[1]).T


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A float [H, W] pattern in [0, 1]: smooth noise, stripes, checker or gradient."""
    style = rng.integers(4)
    if style == 0:
        return smooth_noise(rng, height, width, (int(rng.integers(3, 7)), int(rng.integers(3, 7))))
    theta = rng.uniform(0, np.pi)
    ys, xs = np.mgrid[0:height, 0:width]
    t = (xs * np.cos(theta) + ys * np.sin(theta)) / max(height, width)  # ~[-1, 1.5], along a random direction
    if style == 1:
        return 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 6) * t + rng.uniform(0, 2 * np.pi))
    if style == 2:
        period = rng.uniform(0.1, 0.3)
        t2 = (ys * np.cos(theta) - xs * np.sin(theta)) / max(height, width)
        return ((np.floor(t / period) + np.floor(t2 / period)) % 2).astype(np.float64)
    return (t - t.min()) / max(np.ptp(t), 1e-9)


def render_background(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A texture blended between two nearby random colours.

    Returns:
        image: float [H, W, 3] in [0, 255].
        colors: float [2, 3] the two colours the texture blends.
    """
    base = rng.uniform(0, 255, size=3)
    # The second colour stays near the first so that the texture never outshines the shapes.
    colors = np.stack([base, np.clip(base + rng.uniform(-70, 70, size=3), 0, 255)])
    t = _texture(rng, height, width)[..., None]  # (H, W, 1)
    return colors[0] + t * (colors[1] - colors[0]), colors


def _contrasting_color(rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    """A uint8 RGB colour at least MIN_CONTRAST away from every row of `avoid` [K, 3] if one is found."""
    candidates = rng.uniform(0, 255, size=(16, 3))
    distance = np.linalg.norm(candidates[:, None, :] - avoid[None, :, :], axis=2).min(axis=1)  # (16,)
    ok = np.flatnonzero(distance >= MIN_CONTRAST)
    pick = ok[0] if len(ok) else int(distance.argmax())
    return np.round(candidates[pick]).astype(np.uint8)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight boxes of non-empty masks in pixel edges.

    Args:
        masks: bool [N, H, W].

    Returns:
        boxes: float32 [N, 4] (x1, y1, x2, y2) with x2 = last column + 1, y2 = last row + 1.
    """
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for i, mask in enumerate(masks):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes


def _sample_spec(rng: np.random.Generator, kind: str, size: int, radius_range: tuple[float, float],
                 max_offset: float | None) -> ShapeSpec:
    """A random pose; `max_offset` (pixels from the image centre) or, if None, anywhere the shape fits."""
    radius = rng.uniform(*radius_range) * size
    if max_offset is None:
        cx, cy = rng.uniform(radius, size - radius, size=2)
    else:
        limit = max(min(max_offset, size / 2 - radius - 1), 0.0)
        cx, cy = size / 2 + rng.uniform(-limit, limit, size=2)
    return ShapeSpec(kind, float(cx), float(cy), float(radius), float(rng.uniform(0, 2 * np.pi)),
                     float(rng.uniform(*ASPECT_RANGE)))


def _place_shape(rng: np.random.Generator, kind: str, owner: np.ndarray, areas: list[int],
                 radius_range: tuple[float, float], min_visible: float, min_pixels: int,
                 max_tries: int) -> tuple[ShapeSpec, np.ndarray] | None:
    """A pose whose mask [H, W] leaves every earlier object `min_visible` of its area, or None.

    Args:
        owner: int64 [H, W] index of the object on top of each pixel, -1 for background.
        areas: unoccluded pixel count of each earlier object.
    """
    for _ in range(max_tries):
        spec = _sample_spec(rng, kind, owner.shape[0], radius_range, None)
        mask = rasterize_shape(spec, owner.shape)
        if mask.sum() < min_pixels:
            continue
        visible = np.bincount(owner[~mask & (owner >= 0)], minlength=len(areas))  # (K,) pixels left to each
        if np.all(visible >= min_visible * np.asarray(areas, dtype=np.float64)):
            return spec, mask
    return None


def render_scene(rng: np.random.Generator, image_size: int, shape_classes: tuple[str, ...] = SHAPE_KINDS[:8],
                 max_objects: int = 4, min_objects: int = 1, radius_range: tuple[float, float] = (0.08, 0.22),
                 min_visible: float = 0.5, min_pixels: int = 12, max_tries: int = 20) -> Scene:
    """Paints up to `max_objects` random shapes, back to front, on a textured background.

    A new shape is rejected (and another pose tried) when it would leave an earlier object with less
    than `min_visible` of its own area or is under `min_pixels` pixels, so almost fully occluded
    objects never appear: every painted pixel belongs to an annotated object. A scene can hold fewer
    than `min_objects` objects when `max_tries` poses all fail.

    Args:
        rng: the only source of randomness.
        image_size: side of the square image.
        shape_classes: the kinds to draw from; `labels` index into it.
        max_objects: most objects in the scene.
        min_objects: fewest objects aimed for.
        radius_range: circumradius range as fractions of `image_size`.
        min_visible: smallest visible fraction of an object's own area.
        min_pixels: smallest area of a new object.
        max_tries: poses tried per object before it is skipped.
    """
    height = width = image_size
    canvas, bg_colors = render_background(rng, height, width)
    owner = np.full((height, width), -1, dtype=np.int64)  # index of the object on top, -1 background
    specs: list[ShapeSpec] = []
    areas: list[int] = []
    colors: list[np.ndarray] = []
    labels: list[int] = []
    for _ in range(int(rng.integers(min_objects, max_objects + 1))):
        label = int(rng.integers(len(shape_classes)))
        placed = _place_shape(rng, shape_classes[label], owner, areas, radius_range, min_visible, min_pixels,
                              max_tries)
        if placed is None:
            continue
        spec, mask = placed
        under = np.unique(owner[mask])
        avoid = np.concatenate([bg_colors, np.asarray(colors, dtype=np.float64).reshape(-1, 3)[under[under >= 0]]])
        colors.append(_contrasting_color(rng, avoid))
        owner[mask] = len(specs)
        specs.append(spec)
        areas.append(int(mask.sum()))
        labels.append(label)
    return _assemble_scene(canvas, owner, specs, labels, colors)


def _assemble_scene(canvas: np.ndarray, owner: np.ndarray, specs: list[ShapeSpec], labels: list[int],
                    colors: list[np.ndarray]) -> Scene:
    """Paints the objects over the background canvas [H, W, 3] and derives masks, boxes, semantic."""
    n = len(specs)
    image = np.round(canvas).astype(np.uint8)  # (H, W, 3)
    color_arr = np.asarray(colors, dtype=np.uint8).reshape(n, 3)
    label_arr = np.asarray(labels, dtype=np.int64).reshape(n)
    fg = owner >= 0
    image[fg] = color_arr[owner[fg]]
    masks = owner[None] == np.arange(n)[:, None, None]  # (N, H, W)
    semantic = np.where(fg, label_arr[np.maximum(owner, 0)] + 1, 0).astype(np.int64) if n else np.zeros_like(owner)
    return Scene(image=np.ascontiguousarray(image.transpose(2, 0, 1)), labels=label_arr, masks=masks,
                 boxes=masks_to_boxes(masks), semantic=semantic, colors=color_arr, shapes=specs)


def render_shape_image(rng: np.random.Generator, kind: str, image_size: int,
                       radius_range: tuple[float, float] = (0.3, 0.46), max_offset: float = 0.12) -> Scene:
    """One large, roughly centred shape: a classification sample with its mask.

    Args:
        rng: the only source of randomness.
        kind: one of `SHAPE_KINDS`.
        image_size: side of the square image.
        radius_range: circumradius range as fractions of `image_size`.
        max_offset: largest shift of the centre from the image centre, as a fraction of `image_size`.
    """
    canvas, bg_colors = render_background(rng, image_size, image_size)
    spec = _sample_spec(rng, kind, image_size, radius_range, max_offset * image_size)
    mask = rasterize_shape(spec, image_size)
    owner = np.where(mask, 0, -1)
    color = _contrasting_color(rng, bg_colors)
    return _assemble_scene(canvas, owner, [spec], [SHAPE_KINDS.index(kind)], [color])


def shape_scenes(num_images: int, image_size: int = 64, num_classes: int = DEFAULT_NUM_CLASSES,
                 max_objects: int = 4, seed: int = 0, **kwargs) -> list[Scene]:
    """Multi-object scenes for segmentation and detection, deterministic for a given seed.

    Args:
        num_images: how many scenes.
        image_size: side of the square images.
        num_classes: the first `num_classes` of `SHAPE_KINDS` are drawn.
        max_objects: most objects per scene.
        seed: same seed, same scenes.
        **kwargs: passed on to `render_scene` (min_objects, radius_range, min_visible, ...).
    """
    classes = _check_classes(num_classes, "num_classes")
    rng = np.random.default_rng(seed)
    return [render_scene(rng, image_size, classes, max_objects, **kwargs) for _ in range(num_images)]


def _check_classes(num_classes: int, key: str) -> tuple[str, ...]:
    if not 2 <= num_classes <= len(SHAPE_KINDS):
        raise ConfigError(f"config key {key!r}: shapes has 2 to {len(SHAPE_KINDS)} classes, got {num_classes}")
    return SHAPE_KINDS[:num_classes]


def shape_classification_images(num_samples: int, image_size: int, num_classes: int,
                                 seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Balanced single-shape images, deterministic for a given seed.

    Returns:
        images: Tensor[N, 3, H, W] uint8.
        targets: Tensor[N] int64, each class `num_samples // num_classes` or one more times.
    """
    classes = _check_classes(num_classes, "data.num_classes")
    rng = np.random.default_rng(seed)
    targets = rng.permutation(np.arange(num_samples) % num_classes)
    images = np.empty((num_samples, 3, image_size, image_size), dtype=np.uint8)
    for i, target in enumerate(targets):
        images[i] = render_shape_image(rng, classes[target], image_size).image
    return torch.from_numpy(images), torch.from_numpy(targets.astype(np.int64))


DEFAULT_SCENE_SIZE = 64
DEFAULT_NUM_SCENES = 1000
DEFAULT_MAX_OBJECTS = 4


@DATASETS.register("shapes", tags=("class", "mask", "boxes", "instances"))
def shapes(cfg: DataConfig, target: str = "class") -> DatasetSplits:
    """One shape per image for classification; scenes of several shapes for masks and boxes.

    Classification (`target="class"`): the class is the outline, never the colour or the background.
    `data.num_classes` (default 8, at most 12) picks the first kinds of `SHAPE_KINDS`; `data.size`
    is the image side (default 32); `data.num_samples` the images in all splits (default 3000).
    The stratified split holds 15% test and `data.val_fraction` val (0.1 by default, so 75/10/15;
    `data.val_fraction=0.15` gives 70/15/15), seeded by `data.seed`, which also seeds the images.

    Segmentation (`target="mask"`) and detection (`target="boxes"`): `shape_scenes` of 1 to `data.max_objects`
    (default 4) objects,
    side `data.size` (default 64), `data.num_samples` scenes (default 1000), split at random in the same
    proportions. Masks are class maps with 0 the background and k + 1 shape kind k (classes start with
    "background"); boxes are XYXY pixel edges with one label per object, and `target="instances"` adds each
    object's visible pixels as a bool mask ("masks" Tensor[k, H, W]), for Mask R-CNN.
    """
    if target != "class":
        return _scene_splits(cfg, target)
    num_classes = DEFAULT_NUM_CLASSES if cfg.num_classes is None else cfg.num_classes
    size = DEFAULT_SIZE if cfg.size is None else cfg.size
    num_samples = DEFAULT_NUM_SAMPLES if cfg.num_samples is None else cfg.num_samples
    if size < MIN_SIZE:
        raise ConfigError(f"config key 'data.size': shapes needs images of at least {MIN_SIZE} pixels, got {size}")
    if num_samples < num_classes:
        raise ConfigError(f"config key 'data.num_samples': need at least one image per class "
                          f"({num_classes}), got {num_samples}")
    images, targets = shape_classification_images(num_samples, size, num_classes, cfg.seed)
    classes = list(SHAPE_KINDS[:num_classes])
    return split_in_memory(InMemoryDataset(images, targets, classes), targets.numpy(), TEST_FRACTION, cfg)


def _scene_splits(cfg: DataConfig, target: str) -> DatasetSplits:
    num_classes = DEFAULT_NUM_CLASSES if cfg.num_classes is None else cfg.num_classes
    size = DEFAULT_SCENE_SIZE if cfg.size is None else cfg.size
    num_samples = DEFAULT_NUM_SCENES if cfg.num_samples is None else cfg.num_samples
    if size < MIN_SIZE:
        raise ConfigError(f"config key 'data.size': shapes needs images of at least {MIN_SIZE} pixels, got {size}")
    max_objects = DEFAULT_MAX_OBJECTS if cfg.max_objects is None else cfg.max_objects
    scenes = shape_scenes(num_samples, size, num_classes, max_objects=max_objects, seed=cfg.seed)
    images = torch.from_numpy(np.stack([scene.image for scene in scenes]))
    kinds = list(SHAPE_KINDS[:num_classes])
    if target == "mask":
        targets = torch.from_numpy(np.stack([scene.semantic for scene in scenes])).to(torch.uint8)
        classes = ["background", *kinds]
    else:  # "boxes", or "instances": boxes with a bool mask per object (Mask R-CNN)
        targets = [{"boxes": torch.from_numpy(scene.boxes).float(), "labels": torch.from_numpy(scene.labels)}
                   for scene in scenes]
        if target == "instances":
            for t, scene in zip(targets, scenes):
                t["masks"] = torch.from_numpy(scene.masks)
        classes = kinds
    # Scenes hold several classes, so the split is at random (one stratum), seeded like the images.
    return split_in_memory(InMemoryDataset(images, targets, classes), np.zeros(num_samples), TEST_FRACTION, cfg)
