"""Canny equals cv2.Canny pixel for pixel on 8-bit images, on both backends, at any size.

OpenCV works on integer Sobel gradients; zrenie reproduces that arithmetic for images on the
8-bit grid, so gradient ties break the same way (in float, 2.2% of edge pixels differed with L1).
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
import torch

from zrenie.errors import ConfigError, ShapeError
from zrenie.imgproc import edges

from ._photos import PHOTOS, small_uint8

BACKENDS = ("torch", "auto")


def _both(gray8: np.ndarray, low: float, high: float, kernel_size: int, l2: bool) -> None:
    """Asserts that both backends give cv2.Canny's edges of a uint8 (H, W) image."""
    ref = cv2.Canny(gray8, 255 * low, 255 * high, apertureSize=kernel_size, L2gradient=l2) > 0
    image = torch.from_numpy(gray8).float().div(255)[None]
    for backend in BACKENDS:
        ours = edges.canny(image, low, high, sigma=0, kernel_size=kernel_size, l2_gradient=l2, backend=backend)
        assert np.array_equal(ours[0].numpy() > 0, ref), (backend, gray8.shape, low, high, kernel_size, l2)


@pytest.mark.parametrize("name", PHOTOS)
def test_photos_give_opencvs_edges_for_every_aperture_and_norm(name):
    gray = cv2.cvtColor(small_uint8(name), cv2.COLOR_RGB2GRAY)
    for kernel_size, l2, (low, high) in itertools.product((3, 5, 7), (False, True), ((0.1, 0.3), (0.25, 0.5))):
        _both(gray, low, high, kernel_size, l2)


def test_random_images_give_opencvs_edges():
    generator = np.random.default_rng(12)
    for index in range(12):
        height, width = generator.integers(6, 40, 2)
        noise = generator.integers(0, 256, (height, width)).astype(np.uint8)
        image = noise if index % 2 else cv2.GaussianBlur(noise, (0, 0), 1.5)  # ties are frequent in both
        for kernel_size, l2 in itertools.product((3, 5, 7), (False, True)):
            _both(image, 0.1, 0.4, kernel_size, l2)


@pytest.mark.parametrize("size", [(1, 1), (1, 9), (3, 2), (5, 4), (9, 1)])
def test_images_smaller_than_the_kernel_give_opencvs_edges(size):
    generator = np.random.default_rng(size[0] * 10 + size[1])
    image = generator.integers(0, 256, size).astype(np.uint8)
    for kernel_size, l2 in itertools.product((3, 5, 7), (False, True)):
        _both(image, 0.05, 0.2, kernel_size, l2)


def test_default_sigma_works_on_tiny_images():
    image = torch.rand(2, 1, 3, 2, generator=torch.Generator().manual_seed(1))
    for backend in BACKENDS:
        out = edges.canny(image, backend=backend)  # sigma=1: a 9-tap blur over a 3x2 image
        assert out.shape == (2, 1, 3, 2) and set(out.unique().tolist()) <= {0.0, 1.0}
    blurred = edges._blur(image.double(), 1.0)
    ref = cv2.GaussianBlur(image[0, 0].double().numpy(), (9, 9), 1.0, borderType=cv2.BORDER_REPLICATE)
    assert np.abs(blurred[0, 0].numpy() - ref).max() <= 1e-12


def test_grid_images_in_other_float_forms_take_the_integer_path():
    gray8 = cv2.cvtColor(small_uint8("coffee"), cv2.COLOR_RGB2GRAY)
    ref = cv2.Canny(gray8, 0.2 * 255, 0.4 * 255) > 0
    u8 = torch.from_numpy(gray8)[None]
    for image in (u8.double() / 255, u8.float() * (1 / 255), (u8.double() / 255).float()):
        for backend in BACKENDS:
            out = edges.canny(image, 0.2, 0.4, sigma=0, l2_gradient=False, backend=backend)
            assert np.array_equal(out[0].numpy() > 0, ref)


def test_auto_equals_torch_off_the_grid():
    image = torch.rand(2, 3, 24, 30, generator=torch.Generator().manual_seed(3))  # gray of RGB is off the grid
    for sigma, l2 in itertools.product((0.0, 1.0), (False, True)):
        auto = edges.canny(image, 0.1, 0.3, sigma=sigma, l2_gradient=l2)
        assert torch.equal(auto, edges.canny(image, 0.1, 0.3, sigma=sigma, l2_gradient=l2, backend="torch"))
    with pytest.raises(ConfigError, match="grid"):
        edges.canny(image, sigma=0, backend="opencv")
    with pytest.raises(ConfigError, match="OpenCV"):
        edges.canny(image[:, :1], sigma=1.0, backend="opencv")  # cv2.Canny has no pre-blur


def test_empty_batch_and_range_policy():
    for backend in BACKENDS:
        assert edges.canny(torch.rand(0, 3, 5, 6), backend=backend).shape == (0, 1, 5, 6)
        assert edges.canny(torch.rand(0, 1, 5, 6), sigma=0, backend=backend).dtype == torch.float32
    with pytest.raises(ShapeError, match=r"expected values in \[0, 1\], found"):
        edges.canny(torch.rand(1, 8, 8) * 3)
    with pytest.raises(ShapeError, match="kernel_size"):
        edges.canny(torch.rand(1, 8, 8), kernel_size=4)
