"""The `photos` built-in: every listed photo loads offline, as float (C, H, W) in [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from sklearn.datasets import load_sample_image

from zrenie.data.builtin.photos import describe_photo, list_photos, load_photo
from zrenie.errors import DataError


@pytest.mark.parametrize("name", list_photos())
def test_every_photo_loads(name):
    image = load_photo(name)
    assert image.dim() == 3 and image.shape[0] in (1, 3)
    assert 0 <= image.min() and image.max() <= 1
    assert f"{image.shape[1]}x{image.shape[2]}" in describe_photo(name)


def test_photos_are_the_packages_bytes():
    assert np.array_equal((load_photo("camera")[0].numpy() * 255).round(), skimage.data.camera())
    assert np.array_equal((load_photo("china").permute(1, 2, 0).numpy() * 255).round(), load_sample_image("china.jpg"))


def test_channels_argument():
    assert load_photo("camera", channels=3).shape == (3, 512, 512)
    assert load_photo("astronaut", channels=1).shape == (1, 512, 512)


def test_unknown_photo_lists_the_names():
    with pytest.raises(DataError, match="astronaut"):
        load_photo("lena")
