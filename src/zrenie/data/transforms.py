"""Per-sample train and eval presets for datasets decoded from files, on `torchvision.transforms.v2`.

Each preset maps a uint8 image `(C, H, W)` (1 or 3 channels) to float32 `(C, S, S)` in [0, 1].
Normalisation is left out on purpose: the loader normalises whole batches on the device with the
dataset's mean/std, once, instead of per sample in the workers.

With `target="mask"` or `"boxes"` a preset maps `(image, target)` to `(image, target)` and moves a
`tv_tensors.Mask` or `{"boxes": tv_tensors.BoundingBoxes, "labels": Tensor[k]}` with the image:
geometric steps see both, photometric steps the image alone.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

from zrenie.errors import ConfigError

AUGMENTS = ("none", "light", "standard", "strong")
TARGETS = ("class", "mask", "boxes")

# Train crops keep at least 35% of the image: ImageNet's usual 8% lower bound throws away too
# much of the small, often centred objects of course datasets.
CROP_SCALE = (0.35, 1.0)
# Eval resizes the shorter side to 8/7 of the crop (256 for 224), the ratio of the ImageNet
# evaluation protocol that torchvision's weights are measured with.
EVAL_RESIZE_RATIO = 8 / 7
ERASING_P = 0.25
# TrivialAugment Wide's ops that move pixels; the rest are pointwise or neighbourhood colour ops.
GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


class ColourTrivialAugment(v2.TrivialAugmentWide):
    """TrivialAugment Wide without its geometric ops, for images whose masks or boxes stay put.

    v2's TrivialAugmentWide refuses masks and boxes, and applied to the image alone its shears,
    translations (up to 32 pixels) and rotations (up to 135 degrees) would move objects away from
    their labels. The 9 colour ops keep their magnitudes and are drawn uniformly, as in the paper.
    """

    _AUGMENTATION_SPACE = {name: op for name, op in v2.TrivialAugmentWide._AUGMENTATION_SPACE.items()
                           if name not in GEOMETRIC_OPS}


class JointTransform:
    """Geometric steps on an image and its target together, then photometric steps on the image.

    Args:
        geometric: steps that move pixels (crop, resize, flip, box sanitising); they see the
            image and the target.
        photometric: steps that change pixel values only (dtype, colour, erasing); they see the
            image alone, so a random erasing occludes an object without touching its mask or box.
    """

    def __init__(self, geometric: list[v2.Transform], photometric: list[v2.Transform]):
        self.geometric = v2.Compose(geometric)
        self.photometric = v2.Compose(photometric)

    def __call__(self, image: Tensor, target: Any) -> tuple[Tensor, Any]:
        """Transforms one sample.

        Args:
            image: uint8 Tensor[C, H, W].
            target: `tv_tensors.Mask` Tensor[H, W], or a dict with "boxes"
                (`tv_tensors.BoundingBoxes`, XYXY) and "labels" (Tensor[k]).

        Returns:
            (float32 Tensor[C, S, S] in [0, 1], the target moved with the image; in training,
            boxes left under 1 pixel wide or high by the crop are dropped with their labels).
        """
        # Wrapped as an Image so that v2 never takes a plain labels tensor for the image.
        image, target = self.geometric(tv_tensors.Image(image), target)
        return self.photometric(image).as_subclass(Tensor), target


def _per_box_entries(inputs: Any) -> tuple[Tensor, ...]:
    """The target's per-box tensors that `SanitizeBoundingBoxes` filters with the boxes: labels and, where a
    dataset marks crowd or difficult objects, iscrowd."""
    target = inputs[1]
    return tuple(target[k] for k in ("labels", "iscrowd") if k in target)


def _check(augment: str | None, target: str) -> None:
    if augment is not None and augment not in AUGMENTS:
        raise ConfigError(f"unknown data.augment {augment!r}; expected one of {', '.join(AUGMENTS)}")
    if target not in TARGETS:
        raise ConfigError(f"unknown augmentation target {target!r}; expected one of {', '.join(TARGETS)}")


def _to_float() -> v2.Transform:
    return v2.ToDtype(torch.float32, scale=True)  # uint8 [0, 255] -> float [0, 1]


def train_transform(image_size: int, augment: str, hflip: bool, *,
                    target: str = "class") -> v2.Compose | JointTransform:
    """The training preset.

    Args:
        image_size: side S of the square output.
        augment: "none" resizes the whole image to S x S (no crop, so the aspect ratio is not kept);
            "light" takes a random resized crop of 35-100% of the area, plus a horizontal flip
            when `hflip`; "standard" adds a small colour jitter and random erasing (p=0.25);
            "strong" replaces the jitter by TrivialAugment (Muller & Hutter 2021) before erasing
            (MixUp/CutMix, the rest of the strong preset, act on whole batches in the step).
        hflip: whether a horizontal flip keeps the label (False for digits and text).
        target: "class" transforms the image alone; "mask" and "boxes" move a mask or boxes with
            it. Crop, resize and flip act on both, boxes left with less than 1 pixel of width or
            height after the crop are dropped with their labels (`v2.SanitizeBoundingBoxes`),
            and jitter, TrivialAugment (its colour ops only) and erasing act on the image alone.

    Returns:
        For "class", a transform from uint8 `(C, H, W)` to float32 `(C, S, S)` in [0, 1]; else a
        `JointTransform` from `(image, target)` to `(image, target)`.
    """
    _check(augment, target)
    if augment == "none":
        geometric: list[v2.Transform] = [v2.Resize((image_size, image_size), antialias=True)]
    else:
        geometric = [v2.RandomResizedCrop(image_size, scale=CROP_SCALE, antialias=True)]
        if target == "boxes":
            geometric.append(v2.SanitizeBoundingBoxes(labels_getter=_per_box_entries))
        if hflip:
            geometric.append(v2.RandomHorizontalFlip())
    photometric: list[v2.Transform] = []
    if augment == "strong":
        # on uint8, where every op of its table is defined
        photometric.append(v2.TrivialAugmentWide() if target == "class" else ColourTrivialAugment())
    photometric.append(_to_float())
    if augment == "strong":
        photometric.append(v2.RandomErasing(p=ERASING_P, value=0))
    if augment == "standard":
        # No hue shift: colour is often what tells classes apart (ripe vs unripe, species).
        # On 1-channel images v2 leaves saturation unchanged, so the preset serves both.
        photometric.append(v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2))
        photometric.append(v2.RandomErasing(p=ERASING_P, value=0))
    if target == "class":
        return v2.Compose(geometric + photometric)
    return JointTransform(geometric, photometric)


def eval_size(image_size: int) -> int:
    """Side the shorter edge is resized to before the centre crop: round(S * 8 / 7)."""
    return int(round(image_size * EVAL_RESIZE_RATIO))


def eval_geometry(image_size: int | None, *, target: str = "class", per_sample: bool = True) -> dict[str, Any]:
    """What the evaluation preset does to an image's geometry, as plain data kept in checkpoints.

    `predict` prepares new images from it (`geometry_transform`), so its probabilities come from the
    inputs whose accuracy `eval` reports.

    Args:
        image_size: side S the model sees; None: each image at its own size.
        target: "class" resizes the shorter side to round(S * 8 / 7) and takes the centre S x S;
            "mask" and "boxes" resize the whole image to S x S, since a crop would drop labelled
            pixels and boxes from the score.
        per_sample: False for datasets held in memory, resized whole to S x S when opened.

    Returns:
        `{"resize": None}` (own size), `{"resize": [S, S]}` (the whole image to S x S; with
        `"antialias": False` for datasets in memory) or `{"resize": round(S * 8 / 7), "crop": S}`
        (shorter side, then centre crop), read as torchvision's `Resize` and `CenterCrop` read sizes.
    """
    _check(None, target)
    if image_size is None:
        return {"resize": None}
    if not per_sample:  # `resize_uint8` resized the whole set when it was opened: bilinear, no antialiasing
        return {"resize": [image_size, image_size], "antialias": False}
    if target != "class":
        return {"resize": [image_size, image_size]}
    return {"resize": eval_size(image_size), "crop": image_size}


def geometry_transform(geometry: dict[str, Any]) -> list[v2.Transform]:
    """The resize (antialiased unless it says not) and centre crop that `eval_geometry` describes, for uint8
    or float images."""
    steps: list[v2.Transform] = []
    if geometry.get("resize") is not None:
        steps.append(v2.Resize(geometry["resize"], antialias=geometry.get("antialias", True)))
    if geometry.get("crop") is not None:
        steps.append(v2.CenterCrop(geometry["crop"]))
    return steps


def eval_transform(image_size: int, *, target: str = "class") -> v2.Compose | JointTransform:
    """The evaluation preset of images decoded per sample: the geometry of `eval_geometry`, then float.

    Args:
        image_size: side S of the square output.
        target: "class" resizes the shorter side to round(S * 8 / 7) and takes the centre S x S;
            "mask" and "boxes" resize the whole image and its target to S x S (masks by nearest
            neighbour).

    Returns:
        For "class", a transform from uint8 `(C, H, W)` to float32 `(C, S, S)` in [0, 1]; else a
        `JointTransform` from `(image, target)` to `(image, target)`.
    """
    geometric = geometry_transform(eval_geometry(image_size, target=target))
    if target != "class":
        return JointTransform(geometric, [_to_float()])
    return v2.Compose([*geometric, _to_float()])


def native_transform(hflip: bool) -> JointTransform:
    """Images kept at their own size (`image_size=None`: detectors that resize inside the model), with a
    horizontal flip of image and target when `hflip` (training), then float in [0, 1]."""
    return JointTransform([v2.RandomHorizontalFlip(p=0.5 if hflip else 0.0)], [_to_float()])


def prepare_image(image: Tensor, meta: dict) -> Tensor:
    """Converts channels (RGB <-> gray, BT.601 luma as imgproc computes it), then resizes and crops as the
    run's eval preset does (`meta["eval"]`, see `zrenie.data.transforms.eval_geometry`).

    Runs saved before the preset was kept in checkpoints have no `meta["eval"]`: their images are resized
    whole to S x S, as they were then.

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
    geometry = meta.get("eval", {"resize": None if size is None else [size, size]})
    for step in geometry_transform(geometry):
        image = step(image)
    return image.clamp(0, 1)
