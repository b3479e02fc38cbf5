"""Morphology equals OpenCV at every image size, border and iteration count, on both backends."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
import torch

from zrenie.errors import ConfigError
from zrenie.imgproc import morphology

OPS = {
    "erode": (morphology.erode, cv2.MORPH_ERODE),
    "dilate": (morphology.dilate, cv2.MORPH_DILATE),
    "opening": (morphology.opening, cv2.MORPH_OPEN),
    "closing": (morphology.closing, cv2.MORPH_CLOSE),
    "gradient": (morphology.morphological_gradient, cv2.MORPH_GRADIENT),
    "top_hat": (morphology.top_hat, cv2.MORPH_TOPHAT),
    "black_hat": (morphology.black_hat, cv2.MORPH_BLACKHAT),
}
ELEMENTS = {"rect3": np.ones((3, 3)), "rect5": np.ones((5, 5)),
            "ellipse5": cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)),
            "cross4x3": cv2.getStructuringElement(cv2.MORPH_CROSS, (4, 3))}
BORDERS = {"ignore": {}, "reflect": {"borderType": cv2.BORDER_REFLECT_101, "borderValue": 0},
           "replicate": {"borderType": cv2.BORDER_REPLICATE, "borderValue": 0},
           "constant": {"borderType": cv2.BORDER_CONSTANT, "borderValue": 0}}


def _check(image: np.ndarray, element: np.ndarray, border: str, iterations: int, names=OPS) -> None:
    """Asserts every op on (H, W, C) `image` equals cv2.morphologyEx, on both backends."""
    tensor = torch.from_numpy(image).permute(2, 0, 1)
    kernel = torch.from_numpy(element).float()
    for name in names:
        op, code = OPS[name]
        ref = cv2.morphologyEx(image, code, element.astype(np.uint8), iterations=iterations, **BORDERS[border])
        ref = ref.reshape(image.shape)
        for backend in ("torch", "auto"):
            ours = op(tensor, kernel, border, iterations=iterations, backend=backend).permute(1, 2, 0).numpy()
            assert np.array_equal(ours, ref), (name, image.shape, element.shape, border, iterations, backend)


@pytest.mark.parametrize("size", [(1, 1), (1, 9), (3, 2), (5, 4)])
def test_images_smaller_than_the_element(size):
    generator = np.random.default_rng(size[0] * 10 + size[1])
    image = (generator.standard_normal((*size, 2)) * 50).astype(np.float32)  # any finite value
    for element, border in itertools.product(("rect3", "rect5", "ellipse5"), BORDERS):
        _check(image, ELEMENTS[element], border, 1)


@pytest.mark.parametrize("element", ELEMENTS)
def test_iterations(element):
    generator = np.random.default_rng(5)
    image = generator.random((7, 9, 1)).astype(np.float32)
    for iterations, border in itertools.product((0, 2, 3), ("ignore", "reflect", "replicate")):
        _check(image, ELEMENTS[element], border, iterations)


def test_float64_and_an_off_centre_element():
    generator = np.random.default_rng(7)
    image = generator.standard_normal((6, 8, 3))
    # An element whose window can miss the image: OpenCV's default border value, not +-inf, fills it.
    _check(image, np.array([[0.0, 0.0, 0.0, 1.0]]), "ignore", 1, ("erode", "dilate"))
    _check(image, ELEMENTS["ellipse5"], "reflect", 2)


def test_layouts_dtypes_and_empty_batches():
    image = torch.rand(2, 3, 11, 13, generator=torch.Generator().manual_seed(2))
    for op, _ in OPS.values():
        reference = op(image, 3, backend="torch")
        assert torch.equal(op(image.contiguous(memory_format=torch.channels_last), 3), reference)
        assert torch.equal(op(image[:, :, 1:, 2:], 3), op(image[:, :, 1:, 2:], 3, backend="torch"))
        assert op(image.half(), 3).dtype == torch.float16
        for backend in ("torch", "auto"):
            assert op(image[:0], 5, backend=backend).shape == (0, 3, 11, 13)


def test_opencv_backend_needs_a_tensor_without_gradient():
    image = torch.rand(1, 1, 6, 6, requires_grad=True)
    with pytest.raises(ConfigError, match="gradient"):
        morphology.erode(image, 3, backend="opencv")
    morphology.erode(image, 3).sum().backward()  # auto keeps the differentiable torch code
    assert image.grad is not None


def test_border_index_is_opencvs_border_interpolate():
    for size, border, code in itertools.product((1, 2, 3, 5), ("reflect", "replicate"),
                                                (cv2.BORDER_REFLECT_101, cv2.BORDER_REPLICATE)):
        if (border == "reflect") != (code == cv2.BORDER_REFLECT_101):
            continue
        index = morphology.border_index(size, 7, 9, border).tolist()
        assert index == [cv2.borderInterpolate(p, size, code) for p in range(-7, size + 9)]
