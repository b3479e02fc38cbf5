"""Pixel, HOG and network features against a reshape, scikit-image's hog per image and a manual forward."""

import numpy as np
import pytest
import torch
from skimage.color import rgb2gray
from skimage.feature import hog
from sklearn.datasets import load_digits
from torch import nn

from zrenie.errors import ShapeError
from zrenie.tasks.classic.features import hog_features, model_features, pixel_features
from zrenie.tasks.classify.model import SimpleCNN


def colour_images(n: int = 3, size: int = 32) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, 3, size, size), dtype=np.uint8)


def test_pixel_features_are_a_reshape():
    digits = load_digits().images[:5]  # (5, 8, 8), levels 0-16
    np.testing.assert_array_equal(pixel_features(digits), digits.reshape(5, 64))
    images = colour_images()
    np.testing.assert_allclose(pixel_features(torch.from_numpy(images)), images.reshape(3, -1) / 255, rtol=1e-6)
    x = torch.rand(4, 2, 5, 5)
    np.testing.assert_array_equal(pixel_features(x), x.reshape(4, -1).numpy())
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\) or \(N, H, W\)"):
        pixel_features(np.zeros((8, 8)))


def test_hog_features_equal_skimage_per_image():
    digits = load_digits().images[:4]
    want = np.stack([hog(d, orientations=9, pixels_per_cell=(2, 2), cells_per_block=(2, 2)) for d in digits])
    np.testing.assert_allclose(hog_features(digits), want)
    want = np.stack([hog(d, orientations=6, pixels_per_cell=(4, 4), cells_per_block=(2, 2)) for d in digits])
    np.testing.assert_allclose(hog_features(digits, orientations=6, pixels_per_cell=(4, 4)), want)
    images = colour_images()
    want = np.stack([hog(rgb2gray(im.transpose(1, 2, 0) / 255), pixels_per_cell=(8, 8), cells_per_block=(2, 2))
                     for im in images])
    got = hog_features(torch.from_numpy(images))
    assert got.shape == (3, 3 * 3 * 36)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_hog_features_refuse_images_smaller_than_a_block():
    with pytest.raises(ValueError, match="8x8 images are smaller than one 12x12 block") as err:
        hog_features(np.zeros((2, 8, 8)), pixels_per_cell=(6, 6))
    assert isinstance(err.value, ShapeError) and "\n" not in str(err.value)
    with pytest.raises(ShapeError, match="1 or 3 channels"):
        hog_features(np.zeros((2, 4, 16, 16)))


def test_model_features_are_the_input_of_the_last_linear_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 3))
    images = torch.rand(7, 1, 8, 8)
    got = model_features(model, images, batch_size=3)
    with torch.no_grad():
        want = model.eval()[:-1](images)  # dropout off: eval mode
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_model_features_of_simple_cnn_restore_training_mode():
    torch.manual_seed(0)
    model = SimpleCNN(num_classes=3, in_channels=1, width=4).train()
    images = torch.rand(5, 1, 8, 8)
    got = model_features(model, images, batch_size=2)
    assert model.training
    model.eval()
    with torch.no_grad():
        want = model.pool(model.stage_features(images)[-1]).flatten(1)  # (5, 16): the input of model.fc
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
    assert model_features(model, images[:0]).shape == (0, 16)
