"""The real photos that scikit-image and scikit-learn ship inside their packages: no download needed."""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from zrenie.errors import DataError


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(filename)

    return load


# name -> (loader, what it is). Only files that the installed packages carry: skimage's
# `data_dir` holds these PNG/JPEGs (checked against scikit-image 0.26's wheel), sklearn ships two.
_PHOTOS: dict[str, tuple[Callable[[], np.ndarray], str]] = {
    "astronaut": (_skimage("astronaut"), "Eileen Collins, 512x512 RGB"),
    "coffee": (_skimage("coffee"), "a cup of coffee, 400x600 RGB"),
    "chelsea": (_skimage("chelsea"), "Chelsea the cat, 300x451 RGB"),
    "rocket": (_skimage("rocket"), "a rocket launch, 427x640 RGB"),
    "immunohistochemistry": (_skimage("immunohistochemistry"), "stained tissue, 512x512 RGB"),
    "colorwheel": (_skimage("colorwheel"), "a colour wheel, 370x371 RGB"),
    "camera": (_skimage("camera"), "the cameraman, 512x512 gray"),
    "coins": (_skimage("coins"), "Greek coins, 303x384 gray"),
    "moon": (_skimage("moon"), "the moon's surface, 512x512 gray"),
    "page": (_skimage("page"), "a scanned page, 191x384 gray"),
    "text": (_skimage("text"), "text on a gradient, 172x448 gray"),
    "brick": (_skimage("brick"), "brick texture, 512x512 gray"),
    "grass": (_skimage("grass"), "grass texture, 512x512 gray"),
    "gravel": (_skimage("gravel"), "gravel texture, 512x512 gray"),
    "china": (_sklearn("china.jpg"), "a Chinese temple, 427x640 RGB"),
    "flower": (_sklearn("flower.jpg"), "a flower, 427x640 RGB"),
}


def list_photos() -> list[str]:
    """The names `load_photo` accepts, sorted."""
    return sorted(_PHOTOS)


def describe_photo(name: str) -> str:
    """One line about the photo, e.g. "the cameraman, 512x512 gray"."""
    return _lookup(name)[1]


def _lookup(name: str) -> tuple[Callable[[], np.ndarray], str]:
    if name not in _PHOTOS:
        raise DataError(f"unknown photo {name!r}; available: {', '.join(list_photos())}")
    return _PHOTOS[name]


def load_photo(name: str, channels: int | None = None) -> Tensor:
    """A built-in photo as float `Tensor[C, H, W]` in [0, 1].

    Args:
        name: one of `list_photos()`.
        channels: 3 (gray photos are repeated), 1 (colour photos go through BT.601 luma),
            or None to keep the photo's own (3 for colour, 1 for gray).
    """
    loader, _ = _lookup(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            array = loader()
        except (OSError, ValueError, ModuleNotFoundError) as err:
            raise DataError(f"photo {name!r} could not be loaded ({type(err).__name__}: {err})") from None
    if array.ndim == 2:
        array = array[:, :, None]
    image = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).float().div_(255.0)  # (C, H, W)
    if channels == 3 and image.shape[0] == 1:
        image = image.expand(3, -1, -1).contiguous()
    elif channels == 1 and image.shape[0] == 3:
        from zrenie.imgproc.color import rgb_to_grayscale

        image = rgb_to_grayscale(image)
    elif channels not in (None, 1, 3):
        raise DataError(f"channels: expected 1, 3 or None, got {channels!r}")
    return image
